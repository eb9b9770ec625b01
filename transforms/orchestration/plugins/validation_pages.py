"""Great Expectations results as small self-contained HTML pages, one per load, under ``REPO/validations``.

GX's own Data Docs pull their CSS and JavaScript from CDNs and render unstyled offline, so the pages are
built here from the JSON results the validate stage keeps (``validations/<load_id>/<table>.json``). They
show what was checked and how many rows failed, never the failing values: those can be identifiers, and
the quarantine (which pseudonymises them) is the place to look for rows.

The index lists every file received, rejected ones with their reason, from the ledger, filtered by council,
collection and year and paged. Each DAG run also gets an index (``validations/runs/<dag_id>/<run_id>/``: one marker per load) so the
Airflow UI can show the results of a run on its own tab (see ``csreturns_ui.py``).
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import urlencode

URL_PREFIX = "/csreturns"  # where the Airflow plugin serves these pages on the api-server
LOAD_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
PAGE = "index.html"
STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.ok{color:#1a7f37}.fail{color:#b42318;font-weight:600}.muted{color:#666}td.n{text-align:right}"""


def _safe(part: str) -> str:
    """A run id (``manual__2026-11-23T07:00:00+00:00``) as one path component."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", part)


def _doc(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def load_results(validations: Path, load_id: str) -> dict[str, dict]:
    if not LOAD_ID.match(load_id):
        raise KeyError(load_id)
    folder = validations / load_id
    return {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))}


def _outcome(result: dict) -> str:
    """A per-file result (``file_outcome``): met, or how many of the file's rows failed."""
    if result.get("success"):
        return "<span class='ok'>met</span>"
    if result.get("unexpected_count") is not None:
        n, total = result["unexpected_count"], result.get("element_count") or 0
        share = f" ({100 * n / total:.2f}%)" if total else ""
        return f"<span class='fail'>{n:,} of {total:,} rows{share}</span>"
    return "<span class='fail'>not met</span>"


def _file_outcome(info: dict) -> dict:
    """This file's own expectation results; results kept before they were written per file are worked
    out from the batch's (exact when the file was validated alone)."""
    if "file_outcome" in info:
        return info["file_outcome"]
    from transforms.ingest.validate import described

    results = []
    for r in (info.get("gx") or {}).get("results", []):
        config, detail = r.get("expectation_config") or {}, r.get("result") or {}
        meta = config.get("meta") or {}
        results.append({"type": config.get("type", ""), "rule": meta.get("rule", ""), "field": meta.get("field", ""),
                        "message": described(meta.get("message", "")), "success": bool(r.get("success")),
                        "unexpected_count": detail.get("unexpected_count"),
                        "element_count": detail.get("element_count", info.get("rows_in", 0))})
    return {"statistics": {"evaluated_expectations": len(results),
                           "successful_expectations": sum(1 for r in results if r["success"])}, "results": results}


def render_load(validations: Path, load_id: str) -> str:
    """One file's validation: per table, every expectation with its rule, field and this file's outcome."""
    tables = load_results(validations, load_id)
    if not tables:
        raise KeyError(load_id)
    relpath = next(iter(tables.values()))["file"]
    parts = [f"<p class='muted'>load {html.escape(load_id)}</p>"]
    for name, info in tables.items():
        gx, outcome = info.get("gx") or {}, _file_outcome(info)
        stats = outcome["statistics"]
        together = info.get("validated_with_files", 1)
        parts.append(
            f"<h2>{html.escape(name)}</h2><p>{info['rows_in']:,} rows, {info['rows_quarantined']:,} quarantined. "
            f"Suite <code>{html.escape(str(gx.get('suite_name', '')))}</code>: "
            f"{stats['successful_expectations']}/{stats['evaluated_expectations']} expectations met by this file"
            + (f" (checked in one run with {together - 1} other file(s) of the same table and year)"
               if together > 1 else "") + ".</p>")
        rows = [f"<tr><td>{html.escape(r['rule'])}</td><td>{html.escape(r['field'])}</td>"
                f"<td><code>{html.escape(r['type'])}</code></td><td>{_outcome(r)}</td>"
                f"<td>{html.escape(r['message'])}</td></tr>" for r in outcome["results"]]
        parts.append("<table><tr><th>rule</th><th>field</th><th>expectation</th><th>outcome</th><th>meaning</th></tr>"
                     + "".join(rows) + "</table>")
    return _doc(f"Validation of {relpath}", "".join(parts))


def write_load_page(validations: Path, load_id: str) -> Path:
    page = validations / load_id / PAGE
    page.write_text(render_load(validations, load_id), encoding="utf-8")
    return page


def _text(value) -> str:
    """A ledger cell as escaped text; missing (None or NaN) is empty."""
    return "" if value is None or value != value else html.escape(str(value))


def _summary_rows(validations: Path, ledger, prefix: str) -> str:
    """One row per file (``ledger``: rows of ``Repository.ledger()``): its fate, rows and, for a file that
    reached validation, this file's expectation counts with a link to its page; a rejected file its reason."""
    rows = []
    for row in ledger.itertuples():
        try:
            tables = load_results(validations, row.load_id)
        except KeyError:
            tables = {}
        if tables:
            stats = [_file_outcome(t)["statistics"] for t in tables.values()]
            met = sum(s["successful_expectations"] for s in stats)
            evaluated = sum(s["evaluated_expectations"] for s in stats)
            name = f"<a href='{prefix}{row.load_id}/'>{_text(row.relpath)}</a>"
            checks = f"<td class='{'ok' if met == evaluated else 'fail'}'>{met}/{evaluated}</td>"
        else:
            name, checks = _text(row.relpath), "<td class='muted'>not validated</td>"
        css = "fail" if row.status == "rejected" else ""
        year = "" if row.return_year is None or row.return_year != row.return_year else int(row.return_year)
        counts = [0 if v is None or v != v else int(v) for v in (row.rows_in, row.rows_quarantined)]
        rows.append(f"<tr><td>{name}</td><td>{_text(row.la_code)}</td><td>{_text(row.collection)}</td><td>{year}</td>"
                    f"<td class='{css}'>{_text(row.status)}</td><td class='n'>{counts[0]:,}</td>"
                    f"<td class='n'>{counts[1]:,}</td>{checks}<td>{_text(row.reason)}</td>"
                    f"<td class='muted'>{row.load_id}</td></tr>")
    if not rows:
        return "<p>No files.</p>"
    return ("<table><tr><th>file</th><th>council</th><th>collection</th><th>year</th><th>status</th><th>rows</th>"
            "<th>quarantined</th><th>expectations met</th><th>reason</th><th>load</th></tr>"
            + "".join(rows) + "</table>")


def _ledger(repo_root: Path):
    from transforms.store.repository import Repository

    return Repository(repo_root).ledger()


PER_PAGE = 200


def render_index(repo_root: Path, la_code: str | None = None, collection: str | None = None,
                 year: int | None = None, page: int = 1, per_page: int = PER_PAGE, prefix: str = "") -> str:
    """Every file received, the latest first (load ids sort by arrival time), rejected ones included,
    filtered by council (``la_code``), ``collection`` and return ``year``, ``per_page`` to a ``page``
    (1-based), with links to the other pages and a form to filter."""
    ledger = _ledger(repo_root)
    if la_code:
        ledger = ledger[ledger["la_code"] == la_code]
    if collection:
        ledger = ledger[ledger["collection"] == collection]
    if year:
        ledger = ledger[ledger["return_year"] == int(year)]
    ledger = ledger.sort_values("load_id", ascending=False)
    pages = max(1, -(-len(ledger) // per_page))
    page = min(max(1, int(page)), pages)
    shown = ledger.iloc[(page - 1) * per_page: page * per_page]
    query = {k: v for k, v in (("la_code", la_code), ("collection", collection), ("year", year)) if v}

    def link(n: int, text: str) -> str:
        return f"<a href='?{html.escape(urlencode({**query, 'page': n}))}'>{text}</a>"

    form = ("<form method='get'>council <input name='la_code' size='4' value='{}'> collection <input "
            "name='collection' size='14' value='{}'> year <input name='year' size='5' value='{}'> "
            "<button>filter</button> <a href='?'>all</a></form>").format(
                *(html.escape(str(v or "")) for v in (la_code, collection, year)))
    nav = (f"<p class='muted'>{len(ledger):,} file(s); page {page} of {pages}"
           + (" " + link(page - 1, "&larr; newer") if page > 1 else "")
           + (" " + link(page + 1, "older &rarr;") if page < pages else "") + "</p>")
    return _doc("Validation results", form + nav + _summary_rows(repo_root / "validations", shown, prefix) + nav)


def run_folder(validations: Path, dag_id: str, run_id: str) -> Path:
    return validations / "runs" / _safe(dag_id) / _safe(run_id)


def record_run(validations: Path, dag_id: str, run_id: str, load_ids: list[str]) -> None:
    """Mark which loads a DAG run validated; mapped tasks write their own markers, so no locking."""
    folder = run_folder(validations, dag_id, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    for load_id in load_ids:
        (folder / load_id).touch()


def render_run(repo_root: Path, dag_id: str, run_id: str, prefix: str) -> str:
    """The files one DAG run took in (rejected ones too), as ``render_index`` lists them."""
    folder = run_folder(repo_root / "validations", dag_id, run_id)
    load_ids = sorted(p.name for p in folder.iterdir() if LOAD_ID.match(p.name)) if folder.exists() else []
    ledger = _ledger(repo_root)
    ledger = ledger[ledger["load_id"].isin(load_ids)]
    return _doc(f"Validation results of {dag_id}, run {run_id}",
                _summary_rows(repo_root / "validations", ledger, prefix))


def publish_validations(repo_root: Path | str, load_ids: list[str], dag_id: str, run_id: str) -> list[str]:
    """After the validate task: write each load's page, index it under the run, and return the paths
    (relative to the plugin's prefix) to print in the task log."""
    validations = Path(repo_root) / "validations"
    record_run(validations, dag_id, run_id, load_ids)          # rejected files too: the run's tab lists them
    checked = [load_id for load_id in load_ids if (validations / load_id).exists()]
    for load_id in checked:
        write_load_page(validations, load_id)
    return [f"validations/{load_id}/" for load_id in checked]
