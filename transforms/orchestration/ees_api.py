"""Published statistics pulled from DfE's Explore Education Statistics (EES) public API.

An EES dataset declared in ``schemas/ees/`` with its ``data_set_id`` (the API's id of the data set, a GUID)
is polled by the ``fetch_ees`` DAG through the Airflow HTTP connection ``ees_api`` (host
``https://api.education.gov.uk/statistics``; e.g. ``AIRFLOW_CONN_EES_API='https://api.education.gov.uk/statistics'``).
The API (v1) is used as DfE documents it:

- ``GET /v1/data-sets/{dataSetId}``: the data set's summary, whose ``latestVersion.version`` ("2.1") and
  ``latestVersion.published`` (ISO timestamp) say what is current;
- ``GET /v1/data-sets/{dataSetId}/versions?page=N&pageSize=M``: every version, paged
  (``{"paging": {"page", "pageSize", "totalResults", "totalPages"}, "results": [{"version", "type",
  "status", "published", ...}]}``);
- ``GET /v1/data-sets/{dataSetId}/csv?dataSetVersion=V``: the version as CSV, in the same layout as the
  files EES offers for download (``time_period, geographic_level, ..., old_la_code, la_name, ...``).

Fetch once per version: a version in the fetch manifest (``LANDING/.remote/ees_api/manifest/<fetch>.parquet``:
dataset, data set id, version, published, relpath, sha256, bytes, fetched_at) is never downloaded again. A new
version's CSV streams to a temporary file and lands with ``os.replace`` as
``LANDING/published/<name>_v<version>.csv``, a name the dataset's ``match`` pattern recognises, so the
collection DAG of that dataset ingests it and a newer version replaces the older one's rows. Transient HTTP
failures (429, 5xx, dropped connections) are retried with exponential backoff inside one task try; the
task itself retries with the policy's backoff.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from transforms import schema

CONN_ID = "ees_api"
MANIFEST_FOLDER = Path(".remote") / "ees_api" / "manifest"
MANIFEST_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("data_set_id", pa.string()), ("version", pa.string()),
    ("published", pa.string()), ("relpath", pa.string()), ("sha256", pa.string()), ("bytes", pa.int64()),
    ("fetched_at", pa.timestamp("us", tz="UTC")),
])
RETRY_STATUSES = (429, 500, 502, 503, 504)


class EesApiError(RuntimeError):
    """The API answered in a way this client cannot use (an unknown data set, a response of another shape)."""


@dataclass(frozen=True)
class Declared:
    """An EES dataset that schemas/ declares with its API data set id."""
    collection: str
    dataset: str
    data_set_id: str
    match: str


def declared() -> list[Declared]:
    """Every EES dataset in ``schemas/ees/`` that names its ``data_set_id``, in collection order."""
    out = []
    for coll in schema.collections().values():
        if coll.kind != "ees" or not coll.spec.get("data_set_id"):
            continue
        match = coll.spec["match"]
        out.append(Declared(coll.id, coll.dataset, coll.spec["data_set_id"],
                            match[0] if isinstance(match, list) else match))
    return out


def landed_name(match: str, dataset: str, version: str) -> str:
    """A file name for ``version`` that the dataset's ``match`` pattern recognises, e.g. pattern
    ``c1_children_in_need_referrals*`` and version 2.1 give ``c1_children_in_need_referrals_v2.1.csv``."""
    safe = re.sub(r"[^0-9A-Za-z.]+", "-", version)
    stem = match.lower().removesuffix(".csv").rstrip("*")
    for candidate in (f"{stem}_v{safe}.csv", f"{stem}v{safe}.csv"):
        if "*" not in stem and "?" not in stem and fnmatch.fnmatch(candidate, match.lower()):
            return candidate
    raise EesApiError(f"no file name for dataset {dataset} version {version} matches its pattern {match!r}")


class EesApi:
    """A small client of the EES public API at ``base_url`` (e.g. ``https://api.education.gov.uk/statistics``).

    ``session``: a ``requests.Session`` (default: a new one); transient failures are retried ``retries``
    times with exponential backoff from ``backoff`` seconds. Raises ``EesApiError`` for a 4xx answer or a
    response without the documented fields, ``requests.RequestException`` once retries are spent.
    """

    def __init__(self, base_url: str, session=None, retries: int = 4, backoff: float = 0.5, timeout: float = 60):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=RETRY_STATUSES,
                      allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False)
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, HTTPAdapter(max_retries=retry))
        self.timeout = timeout

    @classmethod
    def from_connection(cls, conn_id: str = CONN_ID, **kwargs) -> "EesApi":
        """The client for an Airflow HTTP connection (host, schema, port and headers in its extra)."""
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method="GET", http_conn_id=conn_id)
        session = hook.get_conn()
        return cls(hook.base_url, session=session, **kwargs)

    def _get(self, path: str, params: dict | None = None, stream: bool = False):
        response = self.session.get(f"{self.base_url}{path}", params=params, timeout=self.timeout, stream=stream)
        if 400 <= response.status_code < 500:
            raise EesApiError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
        response.raise_for_status()
        return response

    def data_set(self, data_set_id: str) -> dict:
        """``/v1/data-sets/{id}``; raises ``EesApiError`` when it has no ``latestVersion.version``."""
        body = self._get(f"/v1/data-sets/{data_set_id}").json()
        if not (body.get("latestVersion") or {}).get("version"):
            raise EesApiError(f"data set {data_set_id}: no latestVersion.version in the answer")
        return body

    def versions(self, data_set_id: str, page_size: int = 20) -> list[dict]:
        """Every version of the data set (all pages), as the API lists them."""
        out, page = [], 1
        while True:
            body = self._get(f"/v1/data-sets/{data_set_id}/versions",
                             {"page": page, "pageSize": page_size}).json()
            out += body.get("results", [])
            paging = body.get("paging") or {}
            if page >= int(paging.get("totalPages") or 1):
                return out
            page += 1

    def download_csv(self, data_set_id: str, version: str, target: Path) -> tuple[str, int]:
        """Stream version ``version`` as CSV to ``target`` (via a temporary file and ``os.replace``).
        Returns (sha256, bytes)."""
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        digest, size = hashlib.sha256(), 0
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._get(f"/v1/data-sets/{data_set_id}/csv", {"dataSetVersion": version}, stream=True) as r, \
                    open(tmp, "wb") as fh:
                for chunk in r.iter_content(1 << 16):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return digest.hexdigest(), size


def manifest(landing: Path) -> list[dict]:
    """Every fetch manifest row, oldest first."""
    rows = []
    for f in sorted((Path(landing) / MANIFEST_FOLDER).glob("*.parquet")):
        rows.extend(pq.read_table(f, schema=MANIFEST_SCHEMA).to_pylist())
    return rows


def check_versions(api: EesApi, datasets: list[Declared], landing: Path) -> list[dict]:
    """For each dataset, its latest version and whether the manifest already has it:
    ``[{"dataset", "data_set_id", "match", "version", "published", "new"}]``."""
    have = {(r["data_set_id"], r["version"]) for r in manifest(landing)}
    out = []
    for d in datasets:
        latest = api.data_set(d.data_set_id)["latestVersion"]
        out.append({"dataset": d.dataset, "data_set_id": d.data_set_id, "match": d.match,
                    "version": str(latest["version"]), "published": str(latest.get("published") or ""),
                    "new": (d.data_set_id, str(latest["version"])) not in have})
    return out


def fetch_new_versions(api: EesApi, checked: list[dict], landing: Path) -> list[dict]:
    """Download each ``new`` version once into ``LANDING/published/`` and record it in the manifest.
    Returns the manifest rows written (one per version landed)."""
    landing = Path(landing)
    have = {(r["data_set_id"], r["version"]) for r in manifest(landing)}
    rows = []
    for item in checked:
        key = (item["data_set_id"], item["version"])
        if not item["new"] or key in have:
            continue
        name = landed_name(item["match"], item["dataset"], item["version"])
        sha, size = api.download_csv(item["data_set_id"], item["version"], landing / "published" / name)
        rows.append({"dataset": item["dataset"], "data_set_id": item["data_set_id"], "version": item["version"],
                     "published": item["published"], "relpath": f"published/{name}", "sha256": sha,
                     "bytes": size, "fetched_at": datetime.now(timezone.utc)})
        have.add(key)
        _write_manifest(landing, rows[-1:])  # one file per landed version: a later failure keeps the earlier
    return rows


def _write_manifest(landing: Path, rows: list[dict]) -> Path:
    folder = landing / MANIFEST_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time_ns() // 1000
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000)) + f".{now % 1_000_000:06d}-{secrets.token_hex(3)}"
    target = folder / f"{stamp}.parquet"
    tmp = folder / f".{stamp}.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), tmp)
    os.replace(tmp, target)
    return target
