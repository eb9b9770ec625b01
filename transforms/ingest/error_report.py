"""The DfE validation error report a council's data team works from, in DfE's terms: one row per failing record
and DfE rule, with the file as landed and its line, as CSV and XLSX (``csreturns errors``), and one CSV per
loaded file for the Airflow ``check_rules`` task.

Two sources make one list: the whole-return rules (``schemas/rules/``, kept per check by ``rules``) and the
row checks of the GX suites whose column declares the DfE code of that check (``dfe_rules:`` in the schema,
e.g. an ethnicity that is not a valid code is DfE's 103). Rows are grouped as DfE's collection portal groups
them: ``error`` (must be fixed before the return is accepted) before ``query`` (fix or explain). The XLSX
has an ``errors`` and a ``queries`` sheet, a ``summary`` sheet (count per rule) and an ``about`` sheet.

Child ids in it are pseudonyms; the council finds the child through the row of its own file. No value of
the return (a date of birth, a postcode) appears in it: row checks carry DfE's message or name the field.
``error_report`` raises ``NoReturn`` when no return has been received for that council, collection and year,
so a report is never an empty "clean" list for a return that never arrived.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from transforms import schema
from transforms.ingest.rules import current_errors, rules
from transforms.store.repository import Partition, Repository

REPORTS_DIR = "errors"         # REPO/errors/<collection>/<la_code>/<year>/: per-file reports (Airflow task)
REPORT_COLUMNS = ["severity", "la", "year", "file", "source_row", "child_id", "table", "fields", "code", "message"]
SUMMARY_COLUMNS = ["severity", "code", "message", "records"]
PSEUDONYM_NOTE = ("child_id is pseudonymised (a keyed hash): find the child through source_row, the line of "
                  "your own file named in 'file'.")
CHECK_WORDS = {"required": "is missing", "code_list": "is not a valid code", "date": "is not a valid date",
               "whole_number": "is not a valid whole number", "boolean": "is not a valid yes/no value",
               "pattern": "is not in the required format"}
_SEVERITY_ORDER = {"error": 0, "query": 1}


class NoReturn(LookupError):
    """No return has been received (loaded or partly loaded) for the council, collection and year."""


def received_loads(repo: Repository, collection_id: str, la_code: str, return_year: int) -> pd.DataFrame:
    """Ledger rows of the files received for a return that loaded at least in part."""
    ledger = repo.ledger()
    if ledger.empty:
        return ledger
    mask = ((ledger["collection"] == collection_id) & (ledger["la_code"] == str(la_code))
            & (ledger["return_year"] == int(return_year)) & ledger["status"].isin(["loaded", "partly_loaded"]))
    return ledger[mask]


def _row_check_errors(repo: Repository, collection_id: str, la_code: str, return_year: int) -> pd.DataFrame:
    """Quarantined rows of the return's current loads whose failed row check has a DfE code."""
    coll = schema.collection(collection_id)
    loads = {repo.current_load(Partition(collection_id, n, la_code, return_year)) for n in coll.table_names}
    rows = []
    declared = {r.code: r for r in rules(collection_id)}
    short = {coll.relation(n): n for n in coll.table_names}
    for load_id in sorted(x for x in loads if x):
        path = repo.quarantine_dir / f"{load_id}.parquet"
        if not path.exists():
            continue
        quarantined = pd.read_parquet(path, columns=["table_name", "source_row", "failures"])
        for relation, source_row, failures in quarantined.itertuples(index=False):
            table_name = short.get(relation, relation)
            try:
                columns = {c.name: c for c in coll.table(table_name, return_year).columns}
            except KeyError:
                continue
            for failure in failures if failures is not None else []:
                column = columns.get(failure["field"])
                code = dict(column.dfe_rules).get(failure["rule"]) if column is not None else None
                if code is None:
                    continue
                rule = declared.get(code)
                rows.append({"load_id": load_id, "child_id": None, "table_name": table_name,
                             "source_row": source_row, "fields": failure["field"], "code": code,
                             "message": rule.message if rule else f"{failure['field']} {CHECK_WORDS[failure['rule']]}.",
                             "severity": rule.severity if rule else "error"})
    return pd.DataFrame(rows, columns=["load_id", "child_id", "table_name", "source_row", "fields", "code",
                                       "message", "severity"])


def error_report(repo: Repository, collection_id: str, la_code: str, return_year: int,
                 load_id: str | None = None) -> pd.DataFrame:
    """One row per failing record and DfE rule, with the file (as landed) and its line: ``REPORT_COLUMNS``,
    errors before queries (``load_id``: only the rows of that file). Raises ``NoReturn`` when nothing of the
    return has been received."""
    received = received_loads(repo, collection_id, la_code, return_year)
    if received.empty:
        raise NoReturn(f"no {collection_id} return has been received for council {la_code}, year {return_year}: "
                       "nothing to report (land the return first)")
    severity = {r.code: r.severity for r in rules(collection_id)}
    errors = current_errors(repo, collection_id, la_code, int(return_year))
    errors = errors.assign(severity=errors["code"].map(severity).fillna("error"))
    row_checks = _row_check_errors(repo, collection_id, la_code, int(return_year))
    frames = [f for f in (row_checks, errors) if not f.empty]
    errors = pd.concat(frames, ignore_index=True) if frames else errors
    # the rules see every row as received, quarantined ones too: a row check and the whole-return rule of
    # the same DfE code on the same row are one failure (the row check's wording, naming the field, kept)
    errors = errors.drop_duplicates(["load_id", "table_name", "source_row", "code"])
    if load_id is not None:
        errors = errors[errors["load_id"] == load_id]
    ledger = repo.ledger()
    files = dict(zip(ledger["load_id"], ledger["relpath"])) if not ledger.empty else {}
    report = pd.DataFrame({
        "severity": errors["severity"], "la": str(la_code), "year": int(return_year),
        "file": errors["load_id"].map(files), "source_row": errors["source_row"].astype("Int64"),
        "child_id": errors["child_id"], "table": errors["table_name"], "fields": errors["fields"],
        "code": errors["code"], "message": errors["message"]}, columns=REPORT_COLUMNS)
    order = report["severity"].map(_SEVERITY_ORDER)
    return (report.assign(_order=order).sort_values(["_order", "file", "source_row", "code"], na_position="first")
            .drop(columns="_order").reset_index(drop=True))


def summary(report: pd.DataFrame) -> pd.DataFrame:
    """Failing records per rule (``SUMMARY_COLUMNS``), errors first, then the most frequent."""
    if report.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    counts = (report.groupby(["severity", "code", "message"], dropna=False).size().rename("records").reset_index())
    counts["_order"] = counts["severity"].map(_SEVERITY_ORDER)
    return counts.sort_values(["_order", "records", "code"], ascending=[True, False, True]) \
        .drop(columns="_order").reset_index(drop=True)[SUMMARY_COLUMNS]


def write_report(report: pd.DataFrame, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>.csv`` and ``<stem>.xlsx`` (sheets ``errors``, ``queries``, ``summary`` and ``about``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.xlsx"
    report.to_csv(csv_path, index=False)
    n_errors, n_queries = int((report["severity"] == "error").sum()), int((report["severity"] == "query").sum())
    about = pd.DataFrame({"about": [
        f"DfE validation: {n_errors} error(s) and {n_queries} quer(y/ies), one row per failing record and rule.",
        "Errors must be corrected before DfE accepts the return; queries must be corrected or explained.",
        PSEUDONYM_NOTE,
        "source_row is the line of the row (CSV) or of its element (XML) in the file as it was landed."]})
    with pd.ExcelWriter(xlsx_path, engine="openpyxl") as writer:
        report[report["severity"] == "error"].to_excel(writer, sheet_name="errors", index=False)
        report[report["severity"] == "query"].to_excel(writer, sheet_name="queries", index=False)
        summary(report).to_excel(writer, sheet_name="summary", index=False)
        about.to_excel(writer, sheet_name="about", index=False)
    return csv_path, xlsx_path


def report_folder(repo: Repository, collection_id: str, la_code: str, return_year: int) -> Path:
    """Where a return's error reports are kept: ``REPO/errors/<collection>/<la_code>/<year>/``."""
    return repo.root / REPORTS_DIR / collection_id / str(la_code) / str(int(return_year))


def write_file_reports(repo: Repository, ledger_rows: Iterable[dict]) -> list[Path]:
    """The error report of each file loaded, as CSV beside the repository
    (``REPO/errors/<collection>/<la_code>/<year>/<file name>.<load_id>.csv``; header only when it is clean)."""
    written = []
    for row in ledger_rows:
        if row.get("status") not in ("loaded", "partly_loaded") or not rules(row.get("collection") or ""):
            continue
        report = error_report(repo, row["collection"], row["la_code"], int(row["return_year"]), row["load_id"])
        folder = report_folder(repo, row["collection"], row["la_code"], row["return_year"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{Path(row['relpath']).name}.{row['load_id']}.csv"
        report.to_csv(path, index=False)
        written.append(path)
    return written
