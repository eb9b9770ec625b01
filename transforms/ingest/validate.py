"""Great Expectations checks built from the schema, and the split of each table into clean and quarantined rows.

Suites are generated per table and return year (codes change by year), never written by hand. Every row
a row-level expectation rejects is quarantined with its field, rule and a message naming the value; the
rest of the table loads, typed as the schema says.

The suites run where the data is: each batch is staged into an in-process DuckDB database as one table
and GX validates it through its SQL execution engine (SQLAlchemy with ``duckdb-engine``); failing rows
come back by their batch row number (``unexpected_index_column_names``), never as a pandas index.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
logging.getLogger("great_expectations").setLevel(logging.WARNING)

from transforms.schema import UNITS, Collection, Table, breakdowns, measures  # noqa: E402

if TYPE_CHECKING:
    import great_expectations as gx


def _gx():
    """Great Expectations, imported when a suite is first built (about 40% of a task's start-up under
    load: the read and load tasks, which import this module through the stages, never pay it)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from transforms.ingest import expectations as custom

    return gx, gxe, custom

log = logging.getLogger(__name__)

TRUE_VALUES = {"true", "1", "y", "yes"}
FALSE_VALUES = {"false", "0", "n", "no"}
# Case-management systems write True, TRUE and true alike; typed_sql lower-cases before converting.
BOOLEAN_SPELLINGS = sorted({s for v in TRUE_VALUES | FALSE_VALUES for s in (v, v.upper(), v.title())})
GEOGRAPHIC_LEVELS = ["National", "Regional", "Local authority", "Local authority district",
                     "Parliamentary constituency", "Ward", "Local skills improvement plan area"]


@dataclass
class TableVerdict:
    """What validation decided for one table of one file."""

    table: str
    rows_in: int
    clean: pa.Table                    # the clean rows as given (text), batch columns kept
    quarantined: pd.DataFrame          # source_row, field, rule, message, failures, raw
    gx_success: bool
    gx_result: dict[str, Any] = field(default_factory=dict)
    structure_ok: bool = True
    typed: pa.Table | None = None       # the clean rows typed in DuckDB (``typed_arrow``), batch column kept
    typed_all: pa.Table | None = None   # every row typed the same way, in batch order (what the DfE rules see)

    @property
    def expectations_met(self) -> str:
        stats = self.gx_result.get("statistics", {})
        return f"{stats.get('successful_expectations', 0)}/{stats.get('evaluated_expectations', 0)}"


DUCKDB_URL = "duckdb:///:memory:csreturns_gx"   # a named in-process database: GX's engine and ours share it
BATCH_TABLE = "landed_batch"
ROW_ID = "_gx_row"                                # the batch row number GX returns failing rows by


class DuckdbValidator:
    """One GX SQL datasource on an in-process DuckDB database, reused for every batch of the process.

    GX 1.24 on duckdb-engine needs three things done (TECH_NOTES, 2026-11-29): a persisted connection (its
    results are fetched after the connection is given back, and duckdb-engine's cursor is the connection),
    regex through ``regexp_matches`` (``enable_duckdb_regex``), and every failing row id asked for
    (``partial_unexpected_count`` raised to the batch size, or GX returns 20 and drops the rest). The table
    asset always names the same table, so what GX resolved or reflected is forgotten whenever a batch is
    staged (``expectations.new_batch``). With the GX version ``expectations.GX_VERSION``,
    ``expectations.install_run_speedups`` also cuts GX's fixed cost per run (see the note there): same
    results. Every reach into GX's private internals is in ``expectations.py``.
    """

    def __init__(self) -> None:
        import sqlalchemy as sa
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from transforms.ingest.expectations import enable_duckdb_regex, install_run_speedups, persist_duckdb_connections

        gx = _gx()[0]

        persist_duckdb_connections()
        enable_duckdb_regex()
        self.speedups = install_run_speedups()
        # the table must exist before GX will add an asset over it
        self._boot = sa.create_engine(DUCKDB_URL, poolclass=sa.pool.StaticPool, max_identifier_length=1024)
        boot = self._boot.raw_connection()
        boot.driver_connection.execute(f"CREATE OR REPLACE TABLE {BATCH_TABLE} ({ROW_ID} BIGINT)")
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        # Annex A headers run past PostgreSQL's 63 characters, which duckdb-engine inherits: SQLAlchemy would
        # shorten their labels and DuckDB then cannot find the column
        source = context.data_sources.add_sql("csreturns_duckdb", connection_string=DUCKDB_URL,
                                              kwargs={"max_identifier_length": 1024})
        self.batch_definition = source.add_table_asset("landed", table_name=BATCH_TABLE) \
            .add_batch_definition_whole_table("whole_table")
        self.engine = source.get_execution_engine()
        with self.engine.get_connection() as connection:      # the persisted one GX's queries go through
            self.duckdb = connection.connection.driver_connection

    def stage(self, table: pa.Table) -> None:
        """Make ``table`` (with its row numbers added) the batch GX validates next."""
        numbered = table.append_column(ROW_ID, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        self.duckdb.abort()     # DuckDB 2.0 refuses new work while GX's last result is not fetched to its end
        self.duckdb.register("csreturns_incoming", numbered)
        try:
            self.duckdb.execute(f"CREATE OR REPLACE TABLE {BATCH_TABLE} AS SELECT * FROM csreturns_incoming")
        finally:
            self.duckdb.unregister("csreturns_incoming")
        # GX's connection may be inside a transaction that SQLAlchemy rolls back when a connection goes
        # back to the pool (its column reflection does that): commit, or the next batch sees this one undone
        try:
            self.duckdb.commit()
        except duckdb.TransactionException:
            pass
        from transforms.ingest.expectations import new_batch

        new_batch(self.engine, BATCH_TABLE, numbered.column_names if self.speedups else None)

    def duplicated_rows(self, columns: list[str]) -> list[int]:
        """Row numbers of the staged batch whose values in ``columns`` recur, by GX's SQL definition (a
        row with an empty key value is nobody's duplicate): GX's SQL engine reports that a compound key is
        not unique but returns no row ids for multicolumn expectations."""
        quoted = ['"' + c.replace('"', '""') + '"' for c in columns]
        self.duckdb.abort()
        rows = self.duckdb.execute(
            f"SELECT {ROW_ID} FROM {BATCH_TABLE} WHERE {' AND '.join(q + ' IS NOT NULL' for q in quoted)} "
            f"QUALIFY count(*) OVER (PARTITION BY {', '.join(quoted)}) > 1 ORDER BY {ROW_ID}").fetchall()
        return [r[0] for r in rows]

    def validate(self, table: pa.Table, suite: gx.ExpectationSuite):
        self.stage(table)
        batch = self.batch_definition.get_batch()
        # Two passes: every expectation's verdict first (GX bundles the counts into a query or two per
        # column), then the failing rows' ids only for the expectations that failed: most pass, and in
        # COMPLETE format each expectation costs several queries of its own.
        with self._run():
            result = batch.validate(suite, result_format={"result_format": "BOOLEAN_ONLY"})
        failed = [i for i, r in enumerate(result.results) if not r.success]
        if failed:
            again = gx_suite(f"{suite.name}.failing", [result.results[i].expectation_config for i in failed])
            with self._run():
                detail = batch.validate(again, result_format={
                    "result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID],
                    "partial_unexpected_count": max(table.num_rows, 20), "return_unexpected_index_query": False})
            for i, r in zip(failed, detail.results):
                result.results[i] = r
        return result

    def _run(self):
        from contextlib import nullcontext

        from transforms.ingest.expectations import run_speedups

        return run_speedups() if self.speedups else nullcontext()


def gx_suite(name: str, configurations: list) -> gx.ExpectationSuite:
    """A suite of the given expectation configurations (those of an earlier result), as expectations."""
    gx = _gx()[0]
    return gx.ExpectationSuite(name=name, expectations=[c.to_domain_obj() for c in configurations])


@lru_cache(maxsize=1)
def duckdb_validator() -> DuckdbValidator:
    return DuckdbValidator()


def _meta(field_name: str | None, rule: str, message: str) -> dict[str, str]:
    return {"field": field_name or "", "rule": rule, "message": message}


def _public_meta(field_name: str | None, rule: str, message: str) -> dict[str, str]:
    """A check of published statistics: no personal data, so the failing value is quoted as it is."""
    return {**_meta(field_name, rule, message), "quote": "public"}


QUOTABLE = 8   # a code-list value this short, of a column that holds no personal data, is quoted in messages


def shown_value(value, quote: bool | str) -> str:
    """A failing value as a message shows it (issue 11, kind 6): quoted when ``quote`` is ``"public"``
    (published statistics, up to 40 characters) or true (a code column without privacy) and it is a short
    code-like token; otherwise described by its shape, so that no identifier, date of birth, postcode or
    over-long cell of a return reaches a message."""
    if value is None or (isinstance(value, float) and value != value):
        return "(empty)"
    text = str(value)
    if quote == "public" and len(text) <= 40:
        return repr(text)
    if quote and len(text) <= QUOTABLE and text.replace(".", "").replace("-", "").isalnum():
        return repr(text)
    kinds = [w for w, ok in (("digits", any(c.isdigit() for c in text)), ("letters", any(c.isalpha() for c in text)),
                             ("other characters", any(not c.isalnum() for c in text))) if ok]
    return f"(a value of {len(text)} character{'s' if len(text) != 1 else ''}: {', '.join(kinds) or 'none'})"


def build_suite(table: Table, date_format: str, batch_column: str | None = None) -> gx.ExpectationSuite:
    """The GX suite for a table as collected in ``table.year``. With ``batch_column``, rows of several
    files are validated together and keys need only be unique within each file. A check the column's
    ``dfe_rules`` names carries DfE's rule code in its meta (``dfe_code``)."""
    gx, gxe, custom = _gx()
    expectations: list = []
    for col in table.columns:
        name = col.name
        start = len(expectations)
        if col.required:
            expectations.append(gxe.ExpectColumnToExist(column=name, meta=_meta(name, "structure", "required column")))
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(
                column=name, meta=_meta(name, "required", f"{name} is required but empty")))
        if col.codes:
            allowed = sorted(col.codes)
            expectations.append(gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=allowed,
                meta={**_meta(name, "code_list", f"{name} {{value!r}} is not a valid code"
                            f"{' for ' + str(table.year) if table.year else ''} ({', '.join(allowed)})"),
                      "quote": "no" if col.privacy else "yes"}))
        if col.type == "date":
            expectations.append(custom.ExpectColumnValuesToBeDates(
                column=name, date_format=date_format,
                meta=_meta(name, "date", f"{name} {{value!r}} is not a date in the form "
                           f"{date_format.replace('%d', 'dd').replace('%m', 'mm').replace('%Y', 'yyyy')}")))
        elif col.type == "integer":
            bounds = "" if col.min is None and col.max is None else f" between {col.min} and {col.max}"
            expectations.append(custom.ExpectColumnValuesToBeWholeNumbers(
                column=name, min_value=col.min, max_value=col.max,
                meta=_meta(name, "whole_number", f"{name} {{value!r}} is not a whole number{bounds}")))
        elif col.type == "boolean":
            expectations.append(gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=BOOLEAN_SPELLINGS,
                meta=_meta(name, "boolean", f"{name} {{value!r}} is not true/false or 1/0")))
        if col.max_length:
            expectations.append(gxe.ExpectColumnValueLengthsToBeBetween(
                column=name, max_value=col.max_length,
                meta=_meta(name, "max_length", f"{name} {{value!r}} is longer than {col.max_length} characters")))
        if col.pattern:
            expectations.append(gxe.ExpectColumnValuesToMatchRegex(
                column=name, regex=col.pattern,
                meta=_meta(name, "pattern", f"{name} {{value!r}} does not match {col.pattern}")))
        dfe = dict(col.dfe_rules)
        for e in expectations[start:]:
            if e.meta and e.meta.get("rule") in dfe:
                e.meta["dfe_code"] = dfe[e.meta["rule"]]
    keys = list(table.keys)
    if keys:
        label = ", ".join(keys)
        if batch_column:
            keys.append(batch_column)
        if len(keys) == 1:
            expectations.append(gxe.ExpectColumnValuesToBeUnique(
                column=keys[0], meta=_meta(keys[0], "duplicate_key", f"more than one row has this {label}")))
        else:
            expectations.append(gxe.ExpectCompoundColumnsToBeUnique(
                column_list=keys, meta=_meta(label, "duplicate_key", f"more than one row has this {label}")))
    return gx.ExpectationSuite(name=f"{table.relation}.{table.year or 'latest'}", expectations=expectations)


def build_published_suite(coll: Collection, measures: list[str]) -> gx.ExpectationSuite:
    gx, gxe, custom = _gx()
    symbols = sorted(str(s).lower() for s in coll.spec["suppression_symbols"])
    expectations = [gxe.ExpectColumnToExist(column=c, meta=_public_meta(c, "structure", "required column"))
                    for c in coll.spec["required_columns"]]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(column="time_period", meta=_public_meta("time_period", "required", "time_period is empty")),
        gxe.ExpectColumnValuesToMatchRegex(
            column="time_period", regex=r"^\d{4}(?:\d{2})?$",
            meta=_public_meta("time_period", "pattern", "time_period {value!r} is not YYYY or YYYYYY")),
        gxe.ExpectColumnValuesToBeInSet(
            column="geographic_level", value_set=GEOGRAPHIC_LEVELS,
            meta=_public_meta("geographic_level", "code_list", "geographic_level {value!r} is not a known EES level")),
    ]
    expectations += [custom.ExpectColumnValuesToBeNumbersOrSymbols(
        column=m, symbols=symbols,
        meta=_public_meta(m, "number_or_symbol", f"{m} {{value!r}} is neither a number nor a suppression symbol"))
        for m in measures]
    return gx.ExpectationSuite(name=f"{coll.id}.published_statistics", expectations=expectations)


def build_ees_suite(coll: Collection, found: list[str]) -> gx.ExpectationSuite:
    """The catch-all EES checks, plus: every declared measure and breakdown is present (a structure
    check: a missing one is reported, the rows still load) and each declared measure is in range."""
    gx, gxe, custom = _gx()
    expectations = list(build_published_suite(coll, [m for m in found if m not in measures(coll)]).expectations)
    symbols = sorted(str(s).lower() for s in coll.spec["suppression_symbols"])
    for name in [*breakdowns(coll), *measures(coll)]:
        expectations.append(gxe.ExpectColumnToExist(
            column=name, meta=_public_meta(name, "structure", f"{coll.id} declares {name}")))
    for name, spec in measures(coll).items():
        if name not in found:
            continue
        low, high, _ = UNITS[spec.get("unit", "number")]
        low, high = spec.get("min", low), spec.get("max", high)
        bounds = "" if low is None and high is None else f" in {low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        expectations.append(custom.ExpectColumnValuesToBeNumbersOrSymbolsWithin(
            column=name, symbols=symbols, min_value=low, max_value=high,
            meta=_public_meta(name, "number_or_symbol", f"{name} {{value!r}} is neither a {spec.get('unit', 'number')}"
                       f"{bounds} nor a suppression symbol")))
    return gx.ExpectationSuite(name=f"{coll.id}.published_statistics", expectations=expectations)


def split(arrow: pa.Table, table_name: str, suite: gx.ExpectationSuite,
          typed_all: pa.Table | None = None) -> TableVerdict:
    """Run the suite and divide the rows: any failed row-level expectation quarantines the row.

    ``arrow``: the rows as text (a reader's output: ``source_row``, the data columns, ``_``-prefixed batch
    columns carried through). ``typed_all``: every row typed (``typed_arrow``, same order); its clean rows
    come back as ``TableVerdict.typed`` (Arrow; the batch columns kept). ``TableVerdict.clean`` is the clean
    rows as given (Arrow); only the quarantined rows become Python values."""
    columns = arrow.column_names
    data_columns = [c for c in columns if c != "source_row" and not c.startswith("_")]
    extra = [c for c in columns if c.startswith("_")]  # batch bookkeeping, carried through
    if not arrow.num_rows:
        return TableVerdict(table_name, 0, arrow, _empty_quarantine(extra), True,
                            {"statistics": {"evaluated_expectations": 0, "successful_expectations": 0}})
    result = duckdb_validator().validate(arrow, suite)
    failures: dict[int, list[dict[str, str]]] = {}
    structure_ok = True
    for r in result.results:
        meta = r.expectation_config.meta or {}
        if meta.get("rule") == "structure":
            structure_ok &= bool(r.success)
            continue
        if r.success:
            continue
        listed = r.result.get("unexpected_index_list")
        if listed is None and r.expectation_config.kwargs.get("column_list") and not _exception_message(r):
            indices = duckdb_validator().duplicated_rows(list(r.expectation_config.kwargs["column_list"]))
        else:
            indices = [row[ROW_ID] for row in listed or []]
        failed_to_run = _exception_message(r)
        if failed_to_run and all(c in columns for c in _columns_of(r)):
            # a missing column is the structure check's to report; anything else is the engine failing,
            # and must not pass as "no failing rows"
            raise RuntimeError(f"GX could not evaluate {r.expectation_config.type} on "
                               f"{', '.join(_columns_of(r))}: {failed_to_run}")
        column = r.expectation_config.kwargs.get("column")
        values = (arrow.column(column).take(pa.array(indices, pa.int64())).to_pylist() if column in columns
                  else [None] * len(indices))
        template = meta.get("message", r.expectation_config.type)
        quote = {"yes": True, "public": "public"}.get(meta.get("quote"), False)
        for idx, value in zip(indices, values):
            failures.setdefault(int(idx), []).append(
                {"field": meta.get("field", ""), "rule": meta.get("rule", r.expectation_config.type),
                 "message": template.replace("{value!r}", shown_value(value, quote))})
    bad = sorted(failures)
    quarantine = _empty_quarantine(extra)
    clean, typed = arrow, typed_all
    if bad:
        rows = arrow.take(pa.array(bad, pa.int64()))
        quarantine = pd.DataFrame({
            "source_row": rows.column("source_row").to_pylist(),
            "field": [", ".join(dict.fromkeys(f["field"] for f in failures[i])) for i in bad],
            "rule": [", ".join(dict.fromkeys(f["rule"] for f in failures[i])) for i in bad],
            "message": ["; ".join(f["message"] for f in failures[i]) for i in bad],
            "failures": [failures[i] for i in bad],
            "raw": rows.select(data_columns).to_pylist(),
            **{c: rows.column(c).to_numpy() for c in extra},
        })
        keep = np.ones(arrow.num_rows, dtype=bool)
        keep[bad] = False
        clean = arrow.filter(pa.array(keep))
        if typed_all is not None:  # every row typed once (the DfE rules see them all); the clean ones a filter
            typed = typed_all.filter(pa.array(keep))
    return TableVerdict(table_name, arrow.num_rows, clean, quarantine, bool(result.success),
                        _compact_result(result), structure_ok, typed, typed_all)


def described(template: str) -> str:
    """An expectation's message as a sentence about the check, not a row: ``"LS {value!r} is not a valid
    code"`` -> ``"LS is not a valid code"`` (the failing values stay in the quarantine, pseudonymised)."""
    return template.replace(" {value!r}", "").replace("{value!r}", "a value")


def file_outcome(gx_result: dict[str, Any], failures: list[list[dict[str, str]]], rows_in: int) -> dict[str, Any]:
    """What GX's run over a whole batch says about one of its files: each expectation with the rows of this
    file that failed it (``failures``: the ``failures`` lists of the file's quarantined rows, matched by field
    and rule), and ``statistics`` counting the expectations this file met. Structure expectations (columns
    present) are the batch's, shared by every file in it. Shape: ``{"statistics": {"evaluated_expectations",
    "successful_expectations"}, "results": [{"type", "rule", "field", "message", "success",
    "unexpected_count", "element_count"}]}``."""
    failed: dict[tuple[str, str], int] = {}
    for row in failures:
        for key in {(f.get("field", ""), f.get("rule", "")) for f in row}:
            failed[key] = failed.get(key, 0) + 1
    results = []
    for r in gx_result.get("results", []):
        config = r.get("expectation_config") or {}
        meta = config.get("meta") or {}
        rule, field_name = meta.get("rule", config.get("type", "")), meta.get("field", "")
        if rule == "structure" or (r.get("exception_info") or {}).get("raised_exception"):
            success, unexpected = bool(r.get("success")), None
        else:
            unexpected = failed.get((field_name, rule), 0)
            success = unexpected == 0
        results.append({"type": config.get("type", ""), "rule": rule, "field": field_name,
                        "message": described(meta.get("message", "")), "success": success,
                        "unexpected_count": unexpected, "element_count": rows_in})
    return {"statistics": {"evaluated_expectations": len(results),
                           "successful_expectations": sum(1 for r in results if r["success"])},
            "results": results}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def typed_sql(table: Table, date_format: str, present: list[str], source: str) -> str:
    """The DuckDB query that types the rows of ``source`` (text columns ``present``) as the schema says:
    dates with the return's format, whole numbers and numbers from their text, booleans from true/false,
    1/0, y/n, yes/no in any case; output column names; ``_``-prefixed batch columns kept; rows in the
    relation's order. A value that does not convert is an empty cell (NULL): for a clean row it passed
    validation, so it was empty."""
    lowered = {"true": sorted(TRUE_VALUES), "false": sorted(FALSE_VALUES)}
    select = []
    for col in table.columns:
        q = _quoted(col.name)
        if col.name not in present:
            expr = "NULL"
        elif col.type == "date":
            expr = f"CAST(try_strptime({q}, {_literal(date_format)}) AS DATE)"
        elif col.type == "integer":
            expr = f"CAST(TRY_CAST(trim({q}) AS DOUBLE) AS BIGINT)"
        elif col.type == "number":
            expr = f"TRY_CAST(trim({q}) AS DOUBLE)"
        elif col.type == "boolean":
            expr = (f"CASE WHEN lower({q}) IN ({', '.join(map(_literal, lowered['true']))}) THEN TRUE "
                    f"WHEN lower({q}) IN ({', '.join(map(_literal, lowered['false']))}) THEN FALSE END")
        else:
            expr = q
        select.append(f"{expr} AS {_quoted(col.out)}")
    select += [f"CAST({_quoted(k)} AS INTEGER) AS {_quoted(k)}" for k in table.sequence_keys]
    select.append("CAST(source_row AS BIGINT) AS source_row")
    select += [_quoted(c) for c in present if c.startswith("_")]
    return f"SELECT {', '.join(select)} FROM {source}"


_TYPING = threading.local()


def typed_arrow(table: pa.Table, spec: Table, date_format: str) -> pa.Table:
    """Every row of a raw text table (a reader's output, ``source_row`` and any ``_`` columns kept) typed by
    ``typed_sql`` in a DuckDB connection of this thread's own, in the table's order: what the DfE rules see
    (a value that is not a date or a number is NULL) and, filtered to the clean rows, what is loaded."""
    con = getattr(_TYPING, "con", None)
    if con is None:
        con = _TYPING.con = duckdb.connect()
    con.register("_raw_table", table)
    try:
        return con.sql(typed_sql(spec, date_format, table.column_names, "_raw_table")).to_arrow_table()
    finally:
        con.unregister("_raw_table")


def _columns_of(r) -> list[str]:
    kwargs = r.expectation_config.kwargs
    return [kwargs["column"]] if kwargs.get("column") else list(kwargs.get("column_list") or [])


def _exception_message(r) -> str | None:
    """GX keeps an exception either at the top of ``exception_info`` or per metric that failed."""
    info = r.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _empty_quarantine(extra: list[str] = ()) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in
                         ["source_row", "field", "rule", "message", "failures", "raw", *extra]})


_VALUES_SEEN = ("unexpected_list", "unexpected_index_list", "unexpected_index_query", "partial_unexpected_list",
                "partial_unexpected_counts", "partial_unexpected_index_list", "details")


def _compact(result: dict[str, Any]) -> dict[str, Any]:
    """Keep GX's result as evidence without any of the values it saw: they are raw, un-pseudonymised child
    data (a duplicated CHILD id, a date of birth), and the quarantine already keeps the failing rows, protected."""
    for r in result.get("results", []):
        res = r.get("result") or {}
        for key in _VALUES_SEEN:
            res.pop(key, None)
    return result


def _compact_result(result) -> dict[str, Any]:
    """``_compact(result.to_json_dict())``, with the values dropped before GX serialises them (a column of bad
    values in a large file is as many list entries, each passed through GX's JSON conversion, then dropped)."""
    for r in result.results:
        for key in _VALUES_SEEN:
            (r.result or {}).pop(key, None)
    return _compact(result.to_json_dict())
