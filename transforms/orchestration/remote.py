"""Remote landing areas: councils' SFTP outboxes and S3-compatible buckets, fetched into the local landing area.

A source is declared in ``CSRETURNS_SOURCES`` (JSON, read at DAG-parse time, no network)::

    {"kent": {"conn_id": "kent_sftp", "path": "/outbox"},
     "partners": {"conn_id": "partners_s3", "path": "s3://returns-bucket/landing/"}}

and reached only through an Airflow connection (``AIRFLOW_CONN_<ID>`` or any secrets backend) and the
provider's hook: ``SFTPHook`` for ``sftp`` connections, ``S3Hook`` for S3 and S3-compatible stores.
Below the remote folder the layout is the landing area's own (``<la_code>/...``, ``published/...``), and a
file lands at the same relative path.

Fetch once: every fetch writes an immutable manifest (``LANDING/.remote/<source>/manifest/<id>.parquet``:
remote path, size, mtime, version, sha256, action, fetched_at). A remote file whose version (the S3 ETag,
or size and mtime over SFTP, which has no checksum) matches the manifest is not downloaded again. A file
that is downloaded is hashed while it streams to a temporary file beside the landing area, and lands
(``os.replace``, so collection DAGs never see half a file) only if its sha256 is new for that path, both
in the landing area and in the ledger. Reconciliation then says, for every remote file, what became of it.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import secrets
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.triggers.base import BaseTrigger, TriggerEvent

from transforms import settings

SOURCES_ENV = "CSRETURNS_SOURCES"
REMOTE_FOLDER = ".remote"          # under LANDING; hidden, so collection DAGs never read it
MANIFEST_SCHEMA = pa.schema([
    ("fetch_id", pa.string()), ("source", pa.string()), ("remote_path", pa.string()), ("relpath", pa.string()),
    ("size", pa.int64()), ("mtime", pa.timestamp("s", tz="UTC")), ("version", pa.string()),
    ("sha256", pa.string()), ("action", pa.string()), ("fetched_at", pa.timestamp("us", tz="UTC")),
])
# action: "fetched" (landed) or "already_here" (same bytes already in the landing area or the ledger)
RECONCILED = ("not_fetched", "awaiting_load", "loaded", "partly_loaded", "rejected", "duplicate", "superseded")


@dataclass(frozen=True)
class Source:
    """One remote landing area."""

    name: str
    conn_id: str
    path: str                   # SFTP folder, or s3://bucket/prefix
    schedule: str = "@hourly"
    settle_seconds: int = 120   # SFTP: leave files modified this recently (still uploading) for the next run
    poke_interval: int = 300
    wait_timeout: int = 3000    # the sensor gives up (skipped, not failed) before the next scheduled run
    deferrable: bool = False    # wait in the triggerer instead of rescheduling pokes on a worker

    @property
    def kind(self) -> str:
        return "s3" if self.path.startswith("s3://") else "sftp"

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        bucket, _, prefix = self.path.removeprefix("s3://").partition("/")
        return bucket, (prefix.rstrip("/") + "/" if prefix.strip("/") else "")


def sources(env: str | None = None) -> dict[str, Source]:
    """The sources declared in ``CSRETURNS_SOURCES`` (or in ``env``, the same JSON); none when unset."""
    declared = (settings.current() if env is None else settings.current({SOURCES_ENV: env})).sources_spec()
    out = {}
    for name, spec in declared.items():
        if not name.replace("_", "").isalnum():
            raise ValueError(f"{SOURCES_ENV}: source name {name!r} must be letters, digits and underscores")
        out[name] = Source(name=name, **spec)
    return out


@dataclass(frozen=True)
class RemoteFile:
    relpath: str      # below the source's folder: the path it lands at
    size: int
    mtime: float
    version: str      # changes whenever the file does


# -- the two kinds of remote, thin over the providers' hooks --------------------------------------------
class _Sftp:
    def __init__(self, source: Source):
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        self.root = source.path.rstrip("/") or "/"
        # one retry policy, the fetch task's (exponential backoff), rather than the hook's own on top of it
        self.hook = SFTPHook(ssh_conn_id=source.conn_id, conn_retry_attempts=1)

    @contextmanager
    def session(self) -> Iterator["_Sftp"]:
        with self.hook.get_managed_conn() as sftp:
            self.sftp = sftp
            yield self

    def files(self) -> list[RemoteFile]:
        found, pending = [], [""]
        while pending:
            rel = pending.pop()
            for entry in self.sftp.listdir_attr(posixpath.join(self.root, rel) if rel else self.root):
                child = posixpath.join(rel, entry.filename) if rel else entry.filename
                if stat.S_ISDIR(entry.st_mode or 0):
                    pending.append(child)
                elif stat.S_ISREG(entry.st_mode or 0):
                    found.append(_sftp_file(child, entry.st_size, entry.st_mtime))
        return found

    def remote_path(self, relpath: str) -> str:
        return posixpath.join(self.root, relpath)

    def download(self, relpath: str, fh) -> None:
        self.sftp.getfo(self.remote_path(relpath), fh)


def _sftp_file(relpath: str, size: int | None, mtime: float | None) -> RemoteFile:
    """The same version string whichever client listed it (paramiko here, asyncssh in the triggerer)."""
    return RemoteFile(relpath, size or 0, float(mtime or 0), f"{size or 0}:{int(mtime or 0)}")


class _S3:
    def __init__(self, source: Source):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.bucket, self.prefix = source.bucket_and_prefix
        self.hook = S3Hook(aws_conn_id=source.conn_id)

    @contextmanager
    def session(self) -> Iterator["_S3"]:
        self.client = self.hook.get_conn()
        yield self

    def files(self) -> list[RemoteFile]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # a "folder" marker some tools create
                found.append(RemoteFile(obj["Key"][len(self.prefix):], obj["Size"],
                                        obj["LastModified"].timestamp(), obj["ETag"].strip('"')))
        return found

    def remote_path(self, relpath: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{relpath}"

    def download(self, relpath: str, fh) -> None:
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + relpath)["Body"]
        for chunk in body.iter_chunks(1 << 20):
            fh.write(chunk)


def remote_area(source: Source):
    return _S3(source) if source.kind == "s3" else _Sftp(source)


# -- the manifest ----------------------------------------------------------------------------------------
def _folder(landing: Path, source: Source) -> Path:
    return Path(landing) / REMOTE_FOLDER / source.name


def manifest(landing: Path, source: Source) -> list[dict]:
    """Every manifest row of a source, oldest first."""
    rows = []
    for f in sorted((_folder(landing, source) / "manifest").glob("*.parquet")):
        rows.extend(pq.read_table(f, schema=MANIFEST_SCHEMA).to_pylist())
    return rows


def _latest(rows: list[dict]) -> dict[str, dict]:
    return {row["relpath"]: row for row in rows}  # rows are oldest first: the last one wins


def _write_manifest(landing: Path, source: Source, fetch_id: str, rows: list[dict]) -> Path | None:
    if not rows:
        return None
    folder = _folder(landing, source) / "manifest"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{fetch_id}.parquet"
    tmp = target.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), tmp)
    os.replace(tmp, target)
    return target


# -- what to fetch ---------------------------------------------------------------------------------------
def _lands_safely(relpath: str) -> bool:
    """Only plain relative paths: no ``..`` out of the landing area, nothing hidden (partial uploads)."""
    parts = relpath.split("/")
    return bool(relpath) and not relpath.startswith("/") and all(p and p not in (".", "..") and not p.startswith(".")
                                                                 for p in parts)


def _due(files: list[RemoteFile], latest: dict[str, dict], source: Source, now: float) -> list[RemoteFile]:
    settle = source.settle_seconds if source.kind == "sftp" else 0  # an S3 object appears whole
    return [f for f in files if _lands_safely(f.relpath) and not (settle and now - f.mtime < settle)
            and latest.get(f.relpath, {}).get("version") != f.version]


def unfetched(source: Source, landing: Path) -> list[str]:
    """Remote files that are new or changed since the last fetch (what the sensor waits for)."""
    with remote_area(source).session() as remote:
        files = remote.files()
    return [f.relpath for f in _due(files, _latest(manifest(landing, source)), source, time.time())]


def fetch(source: Source, landing: Path, repo: Path | None = None) -> list[dict]:
    """Download what is new or changed, land what has new bytes, and record it all in the manifest."""
    from transforms.ingest.landing import sha256_of
    from transforms.store.repository import Repository, new_load_id

    landing = Path(landing)
    seen = Repository(repo).seen() if repo else set()
    latest = _latest(manifest(landing, source))
    incoming = _folder(landing, source) / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    fetch_id, rows = new_load_id(), []
    try:
        with remote_area(source).session() as remote:
            for f in _due(remote.files(), latest, source, time.time()):
                tmp = incoming / f"{secrets.token_hex(8)}.part"
                digest = hashlib.sha256()
                try:
                    with open(tmp, "wb") as fh:
                        remote.download(f.relpath, _Hashing(fh, digest))
                        fh.flush()
                        os.fsync(fh.fileno())
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
                sha = digest.hexdigest()
                target = landing / f.relpath
                if (f.relpath, sha) in seen or (target.is_file() and sha256_of(target) == sha):
                    tmp.unlink()
                    action = "already_here"
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, target)
                    action = "fetched"
                rows.append({"fetch_id": fetch_id, "source": source.name, "remote_path": remote.remote_path(f.relpath),
                             "relpath": f.relpath, "size": f.size,
                             "mtime": datetime.fromtimestamp(int(f.mtime), timezone.utc), "version": f.version,
                             "sha256": sha, "action": action, "fetched_at": datetime.now(timezone.utc)})
    finally:  # what did arrive before a failure is kept, so a retry does not download it again
        _write_manifest(landing, source, fetch_id, rows)
    return rows


class _Hashing:
    """A file object that hashes what is written through it (one pass over the download)."""

    def __init__(self, fh, digest):
        self.fh, self.digest = fh, digest

    def write(self, data) -> int:
        self.digest.update(data)
        return self.fh.write(data)


# -- reconciliation --------------------------------------------------------------------------------------
def reconcile(source: Source, landing: Path, repo: Path) -> list[dict]:
    """For every file on the remote (and every one fetched that has since gone from it), what became of
    it: not fetched yet, fetched but awaiting load, or its status in the ledger."""
    from transforms.store.repository import Repository

    with remote_area(source).session() as remote:
        files = {f.relpath: f for f in remote.files() if _lands_safely(f.relpath)}
    latest = _latest(manifest(landing, source))
    ledger = Repository(repo).ledger()
    status: dict[tuple[str, str], tuple[str, str]] = {}
    for row in ledger.sort_values("load_id").itertuples():  # the latest outcome, but a file ingested twice
        key = (row.relpath, row.sha256)                       # stays "loaded", not "duplicate" of itself
        if row.status != "duplicate" or key not in status:
            status[key] = (row.status, row.load_id)
    out = []
    for relpath in sorted(set(files) | set(latest)):
        record, remote_file = latest.get(relpath), files.get(relpath)
        if remote_file is not None and (record is None or record["version"] != remote_file.version):
            state, load_id = "not_fetched", None
        else:
            state, load_id = status.get((relpath, record["sha256"]), ("awaiting_load", None))
        out.append({"source": source.name, "relpath": relpath, "sha256": record["sha256"] if record else None,
                    "on_remote": remote_file is not None, "status": state, "load_id": load_id})
    return out


def summary(reconciled: list[dict]) -> dict[str, int]:
    return {s: n for s in RECONCILED if (n := sum(1 for r in reconciled if r["status"] == s))}


# -- waiting in the triggerer (deferrable sensor) --------------------------------------------------------
async def _sftp_files_async(source: Source) -> list[RemoteFile]:
    """The SFTP listing over the provider's asyncssh hook, so a wait costs the triggerer no thread."""
    from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

    root = source.path.rstrip("/") or "/"
    found, pending = [], [""]
    async with SFTPHookAsync(sftp_conn_id=source.conn_id).get_managed_conn() as sftp:
        while pending:
            rel = pending.pop()
            for entry in await sftp.readdir(posixpath.join(root, rel) if rel else root):
                if entry.filename in (".", ".."):
                    continue
                child = posixpath.join(rel, entry.filename) if rel else entry.filename
                mode = entry.attrs.permissions or 0
                if stat.S_ISDIR(mode):
                    pending.append(child)
                elif stat.S_ISREG(mode):
                    found.append(_sftp_file(child, entry.attrs.size, entry.attrs.mtime))
    return found


async def unfetched_async(source: Source, landing: Path) -> list[str]:
    """``unfetched`` for the triggerer. S3 has no async hook here (the provider's needs aiobotocore), so
    its listing runs in a thread."""
    if source.kind != "sftp":
        return await asyncio.to_thread(unfetched, source, landing)
    files = await _sftp_files_async(source)
    latest = await asyncio.to_thread(lambda: _latest(manifest(landing, source)))
    return [f.relpath for f in _due(files, latest, source, time.time())]


class NewRemoteFilesTrigger(BaseTrigger):
    """Fires when a remote landing area has files not yet fetched; polls every ``poke_interval``."""

    def __init__(self, source: dict, landing: str, poke_interval: float):
        super().__init__()
        self.source, self.landing, self.poke_interval = source, landing, poke_interval

    def serialize(self):
        return (f"{__name__}.NewRemoteFilesTrigger",
                {"source": self.source, "landing": self.landing, "poke_interval": self.poke_interval})

    async def run(self):
        source = Source(**self.source)
        while True:
            pending = await unfetched_async(source, Path(self.landing))
            if pending:
                yield TriggerEvent({"status": "found", "pending": pending})
                return
            await asyncio.sleep(self.poke_interval)


def _landing() -> Path:
    """The landing area of the running task: its ``landing`` param, else ``CSRETURNS_LANDING``."""
    from airflow.sdk import get_current_context

    return Path(get_current_context()["params"].get("landing") or settings.current().landing)


class RemoteFilesSensor(BaseSensorOperator):
    """Waits for files not yet fetched from a remote landing area: by rescheduling (the worker slot is
    free between pokes), or, for a source declared ``"deferrable": true``, in the triggerer, where
    the wait costs no worker at all. A wait that times out is skipped (``soft_fail``), not failed."""

    def __init__(self, *, source, **kwargs):
        super().__init__(**kwargs)
        self.source = source

    def poke(self, context) -> PokeReturnValue:
        pending = unfetched(self.source, _landing())
        print(f"{len(pending)} new or changed file(s) on {self.source.path}" + "".join(f"\n  {p}" for p in pending[:50]))
        return PokeReturnValue(is_done=bool(pending), xcom_value=len(pending))

    def execute(self, context):
        from dataclasses import asdict

        if not self.source.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(trigger=NewRemoteFilesTrigger(asdict(self.source), str(_landing().resolve()), self.poke_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event=None) -> int:
        print(f"{len(event['pending'])} new or changed file(s) on {self.source.path}")
        return len(event["pending"])
