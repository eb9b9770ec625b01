"""The DfE validation-rule error report a council's data team works from: one row per failing record and
rule, with the file as landed and its line, as CSV and XLSX (``csreturns errors``), and one CSV per loaded
file for the Airflow ``check_rules`` task. Child ids in it are pseudonyms; the council finds the child
through the row of its own file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from transforms.ingest.rules import current_errors, rules
from transforms.store.repository import Repository

REPORTS_DIR = "errors"         # REPO/errors/<collection>/<la_code>/<year>/: per-file reports (Airflow task)
REPORT_COLUMNS = ["la", "year", "file", "source_row", "child_id", "table", "fields", "code", "message"]
PSEUDONYM_NOTE = ("child_id is pseudonymised (a keyed hash): find the child through source_row, the line of "
                  "your own file named in 'file'.")


def error_report(repo: Repository, collection_id: str, la_code: str, return_year: int,
                 load_id: str | None = None) -> pd.DataFrame:
    """One row per failing record and rule, with the file (as landed) and its line: ``REPORT_COLUMNS``
    (``load_id``: only the rows of that file)."""
    errors = current_errors(repo, collection_id, la_code, int(return_year))
    if load_id is not None:
        errors = errors[errors["load_id"] == load_id]
    ledger = repo.ledger()
    files = dict(zip(ledger["load_id"], ledger["relpath"])) if not ledger.empty else {}
    report = pd.DataFrame({
        "la": errors["la_code"], "year": errors["return_year"],
        "file": errors["load_id"].map(files), "source_row": errors["source_row"], "child_id": errors["child_id"],
        "table": errors["table_name"], "fields": errors["fields"], "code": errors["code"],
        "message": errors["message"]}, columns=REPORT_COLUMNS)
    return report.sort_values(["file", "source_row", "code"], na_position="first").reset_index(drop=True)


def write_report(report: pd.DataFrame, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>.csv`` and ``<stem>.xlsx`` (an 'errors' sheet and an 'about' sheet saying ids are pseudonyms)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.xlsx"
    report.to_csv(csv_path, index=False)
    about = pd.DataFrame({"about": [
        f"Validation errors: {len(report)} row(s), one per failing record and DfE rule.", PSEUDONYM_NOTE,
        "source_row is the line of the row (CSV) or of its element (XML) in the file as it was landed."]})
    with pd.ExcelWriter(xlsx_path, engine="openpyxl") as writer:
        report.to_excel(writer, sheet_name="errors", index=False)
        about.to_excel(writer, sheet_name="about", index=False)
    return csv_path, xlsx_path


def write_file_reports(repo: Repository, ledger_rows: Iterable[dict]) -> list[Path]:
    """The error report of each file loaded, as CSV beside the repository
    (``REPO/errors/<collection>/<la_code>/<year>/<file name>.<load_id>.csv``; header only when it is clean)."""
    written = []
    for row in ledger_rows:
        if row.get("status") not in ("loaded", "partly_loaded") or not rules(row.get("collection") or ""):
            continue
        report = error_report(repo, row["collection"], row["la_code"], int(row["return_year"]), row["load_id"])
        folder = repo.root / REPORTS_DIR / row["collection"] / row["la_code"] / str(row["return_year"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{Path(row['relpath']).name}.{row['load_id']}.csv"
        report.to_csv(path, index=False)
        written.append(path)
    return written
