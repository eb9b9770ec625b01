"""Great Expectations results as small self-contained HTML pages, one per load, under ``REPO/validations``.

GX's own Data Docs pull their CSS and JavaScript from CDNs and render unstyled offline, so the pages are
built here from the JSON results the validate stage keeps (``validations/<load_id>/<table>.json``). They
show what was checked and how many rows failed, never the failing values: those can be identifiers, and
the quarantine (which pseudonymises them) is the place to look for rows.

Each DAG run also gets an index (``validations/runs/<dag_id>/<run_id>/``: one marker per load) so the
Airflow UI can show the results of a run on its own tab (see ``csreturns_ui.py``).
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

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
    if result.get("success"):
        return "<span class='ok'>met</span>"
    detail = result.get("result") or {}
    if "unexpected_count" in detail:
        return (f"<span class='fail'>{detail['unexpected_count']:,} of {detail.get('element_count', 0):,} rows "
                f"({detail.get('unexpected_percent') or 0:.2f}%)</span>")
    error = (result.get("exception_info") or {}).get("exception_message")
    return f"<span class='fail'>not met</span>{' - ' + html.escape(str(error)) if error else ''}"


def render_load(validations: Path, load_id: str) -> str:
    """One file's validation: per table, every expectation with its rule, field and outcome."""
    tables = load_results(validations, load_id)
    if not tables:
        raise KeyError(load_id)
    relpath = next(iter(tables.values()))["file"]
    parts = [f"<p class='muted'>load {html.escape(load_id)}</p>"]
    for name, info in tables.items():
        gx, stats = info.get("gx") or {}, (info.get("gx") or {}).get("statistics", {})
        together = info.get("validated_with_files", 1)
        parts.append(
            f"<h2>{html.escape(name)}</h2><p>{info['rows_in']:,} rows, {info['rows_quarantined']:,} quarantined. "
            f"Suite <code>{html.escape(str(gx.get('suite_name', '')))}</code>: "
            f"{stats.get('successful_expectations', 0)}/{stats.get('evaluated_expectations', 0)} expectations met"
            + (f" (validated together with {together - 1} other file(s) of the same batch; counts are for the batch)"
               if together > 1 else "") + ".</p>")
        rows = []
        for result in gx.get("results", []):
            config = result.get("expectation_config") or {}
            meta = config.get("meta") or {}
            rows.append(f"<tr><td>{html.escape(meta.get('rule', ''))}</td><td>{html.escape(meta.get('field', ''))}</td>"
                        f"<td><code>{html.escape(config.get('type', ''))}</code></td><td>{_outcome(result)}</td>"
                        f"<td>{html.escape(meta.get('message', ''))}</td></tr>")
        parts.append("<table><tr><th>rule</th><th>field</th><th>expectation</th><th>outcome</th><th>meaning</th></tr>"
                     + "".join(rows) + "</table>")
    return _doc(f"Validation of {relpath}", "".join(parts))


def write_load_page(validations: Path, load_id: str) -> Path:
    page = validations / load_id / PAGE
    page.write_text(render_load(validations, load_id), encoding="utf-8")
    return page


def _summary_rows(validations: Path, load_ids: list[str], prefix: str) -> str:
    rows = []
    for load_id in load_ids:
        try:
            tables = load_results(validations, load_id)
        except KeyError:
            continue
        if not tables:
            continue
        met = sum(t.get("gx", {}).get("statistics", {}).get("successful_expectations", 0) for t in tables.values())
        evaluated = sum(t.get("gx", {}).get("statistics", {}).get("evaluated_expectations", 0) for t in tables.values())
        quarantined = sum(t["rows_quarantined"] for t in tables.values())
        rows_in = sum(t["rows_in"] for t in tables.values())
        css = "ok" if met == evaluated else "fail"
        rows.append(f"<tr><td><a href='{prefix}{load_id}/'>{html.escape(next(iter(tables.values()))['file'])}</a></td>"
                    f"<td>{html.escape(', '.join(tables))}</td><td class='n'>{rows_in:,}</td>"
                    f"<td class='n'>{quarantined:,}</td><td class='{css}'>{met}/{evaluated}</td>"
                    f"<td class='muted'>{load_id}</td></tr>")
    if not rows:
        return "<p>No validation results.</p>"
    return ("<table><tr><th>file</th><th>tables</th><th>rows</th><th>quarantined</th><th>expectations met</th>"
            "<th>load</th></tr>" + "".join(rows) + "</table>")


def render_index(validations: Path, limit: int = 200, prefix: str = "") -> str:
    """The latest loads first (load ids sort by arrival time)."""
    load_ids = sorted((p.name for p in validations.iterdir() if LOAD_ID.match(p.name)), reverse=True) \
        if validations.exists() else []
    note = f"<p class='muted'>The latest {limit} of {len(load_ids)} loads.</p>" if len(load_ids) > limit else ""
    return _doc("Validation results", note + _summary_rows(validations, load_ids[:limit], prefix))


def run_folder(validations: Path, dag_id: str, run_id: str) -> Path:
    return validations / "runs" / _safe(dag_id) / _safe(run_id)


def record_run(validations: Path, dag_id: str, run_id: str, load_ids: list[str]) -> None:
    """Mark which loads a DAG run validated; mapped tasks write their own markers, so no locking."""
    folder = run_folder(validations, dag_id, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    for load_id in load_ids:
        (folder / load_id).touch()


def render_run(validations: Path, dag_id: str, run_id: str, prefix: str) -> str:
    folder = run_folder(validations, dag_id, run_id)
    load_ids = sorted(p.name for p in folder.iterdir() if LOAD_ID.match(p.name)) if folder.exists() else []
    return _doc(f"Validation results of {dag_id}, run {run_id}", _summary_rows(validations, load_ids, prefix))


def publish_validations(repo_root: Path | str, load_ids: list[str], dag_id: str, run_id: str) -> list[str]:
    """After the validate task: write each load's page, index it under the run, and return the paths
    (relative to the plugin's prefix) to print in the task log."""
    validations = Path(repo_root) / "validations"
    load_ids = [load_id for load_id in load_ids if (validations / load_id).exists()]
    for load_id in load_ids:
        write_load_page(validations, load_id)
    record_run(validations, dag_id, run_id, load_ids)
    return [f"validations/{load_id}/" for load_id in load_ids]
