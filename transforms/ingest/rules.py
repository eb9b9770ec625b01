"""DfE validation rules (SSDA903, CIN census) as SQL over one loaded return, and the errors they find.

Row-level checks (a code, a date, a required field) run in the GX suites; the rules here need a whole
return at once: episode chains, dates across tables, last year's return, working days. They are declared in
``schemas/rules/<collection>.yaml`` (DfE code and message verbatim, tables, source fields,
first_year/last_year, ``sql``) and run in DuckDB on the return AS RECEIVED (``check_received``, called by
the validate stage before the row checks quarantine anything and before minimisation: full dates of birth
and postcodes, every row), all returns of a batch at once (``run_batch``). Only verdicts are kept; they
become the return's errors when its load commits (``check_return``). A return checked again without its
files (last year's return changed) is checked on the repository's rows (``run_return``).

What a rule's SQL sees (one connection per return; see ``connect``):

- each table of the collection under its short name (``header``, ``episodes``, ``children``, ...) holding
  only this return's rows, with catalogue column names (``Column.out``) plus ``source_row``, ``load_id``,
  ``la_code``, ``return_year`` and the nested-table sequence keys (``cin_episode_seq``, ...). Every column of
  every year is present (NULL where not collected that year);
- ``previous_<table>``: the same council's return for ``return_year - 1`` (empty, same columns, if none);
- named parameters ``$return_year`` (INTEGER), ``$collection_start`` (DATE, 1 April of return_year - 1),
  ``$collection_end`` (DATE, 31 March of return_year);
- ``codes(table_name, field, code, column_name)``: the codes valid for this return year, from the schema
  (``Collection.table(name, year)``, so yearly ``changes:`` apply); ``field`` is the source field name
  (``PLACE``, ``ReferralSource``), ``column_name`` the catalogue column (``place``, ``referral_source``);
- ``bank_holidays(day DATE)`` and the macro ``working_days_between(a, b)``: working days after ``a`` up to
  and including ``b`` (Mon-Fri less English bank holidays; 0 on the same day, NULL when either is NULL),
  equal to ``transforms.workdays.working_days_between`` (also when b < a: negative, numpy's convention);
- the macro ``given_child_id(child_id)``: the id as the council sent it. Compare child ids with ``=`` as
  they are; a rule about the id's own form (length, characters) must read ``given_child_id(child_id)``,
  because in a batch of returns (``run_batch``) each id is qualified by its return.

The SELECT returns one row per failure: ``table_name`` (short name), ``source_row`` (NULL for a return-level
failure), ``child_id`` (may be NULL). The engine adds load_id, collection, code, la_code, return_year, fields
and message. A rule whose SQL fails is a bug in the rule, and raises ``RuleError`` naming its code.

Public API:

- ``rules(collection_id) -> list[Rule]`` (validated and cached), ``rule(collection_id, code) -> Rule``,
  ``collections_with_rules() -> list[str]``, ``catalogue_rules() -> DataFrame`` (``validation_rules``);
- ``check(collection_id, code, tables, previous=None, return_year=...) -> DataFrame[table_name, source_row,
  child_id]`` runs one rule on rows given as {table: DataFrame | list of dicts} (for tests and the cases);
  ``check_rule(Rule(...), tables, previous, return_year)`` the same for a rule not in a file;
- ``received_arrow``/``received_frame``/``received_tables``: a return's raw tables as the rules see them
  (typed by the DuckDB query that types the clean rows for the load, ``validate.typed_sql``);
  ``run_batch([ReturnTables, ...]) -> [DataFrame]`` every rule over many returns in one connection;
  ``check_received(repo, landed_files)`` the ingest's call (verdicts staged under ``PENDING_DIR``);
- ``run_return(repo, collection_id, la_code, return_year, load_id) -> DataFrame`` (``ERRORS_COLUMNS``) runs
  every rule that applies to the year against the repository's current partitions;
- ``check_return(repo, ...)`` keeps the staged verdicts of the return as received, or runs ``run_return``
  when there are none, and keeps the result (immutable Parquet per load, see ``ERRORS_DIR``);
  ``check_returns(repo, ledger_rows)`` does so once per return touched by a batch of loads;
- ``error_report(repo, collection_id, la_code, return_year)`` and ``write_report(frame, out_dir, stem)``:
  the report a council's data team works from (CSV and XLSX).
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BeforeValidator, Field, model_validator

from transforms import schema, workdays
from transforms.store.repository import Partition, Repository, new_load_id

RULES_DIR = schema.SCHEMA_DIR / "rules"
ERRORS_DIR = "rule_errors"     # REPO/rule_errors/<load_id>.parquet: the failures one check found
RUNS_DIR = "rule_runs"         # REPO/rule_runs/<load_id>.parquet: one row per check, even when nothing failed

ERRORS_SCHEMA = pa.schema([
    ("load_id", pa.string()), ("collection", pa.string()), ("code", pa.string()), ("la_code", pa.string()),
    ("return_year", pa.int32()), ("child_id", pa.string()), ("table_name", pa.string()),
    ("source_row", pa.int64()), ("fields", pa.string()), ("message", pa.string()), ("run_id", pa.string()),
])
ERRORS_COLUMNS = [f.name for f in ERRORS_SCHEMA if f.name != "run_id"]
RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("load_id", pa.string()), ("collection", pa.string()), ("la_code", pa.string()),
    ("return_year", pa.int32()), ("loads", pa.list_(pa.string())), ("rules_run", pa.int32()),
    ("errors", pa.int64()), ("seconds", pa.float64()), ("checked_at", pa.timestamp("us", tz="UTC")),
])
RULES_DOC = {
    "collection": "Collection id (schemas/)", "code": "DfE validation rule code",
    "message": "DfE's message for the rule", "tables": "Tables of the collection the rule reads",
    "fields": "Fields of the return (as councils send them) the rule is about",
    "first_year": "First return year the rule applies to (null: from the start)",
    "last_year": "Last return year the rule applies to (null: still in force)",
    "note": "How csreturns adapts the rule (e.g. dates of birth kept to the month)",
}
ERRORS_DOC = {
    "load_id": "The load of the file holding the failing row (see load_ledger.relpath)",
    "collection": "Collection id", "code": "DfE validation rule code (see validation_rules)",
    "la_code": "Sending council", "return_year": "Return year",
    "child_id": "Child (pseudonymised: the council finds the child through source_row of its own file)",
    "table_name": "Table of the failing row (short name, e.g. episodes)",
    "source_row": "Line (CSV) or element line (XML) in the source file; null for a return-level failure",
    "fields": "Fields of the return the rule is about", "message": "DfE's message for the rule",
}
SEVERITIES = ("error", "query")  # as DfE's portal groups them: errors block a return, queries need a reason
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def without_values(message: str) -> str:
    """``message`` with every quoted literal replaced by ``'...'`` (DuckDB's errors quote the offending value)."""
    return _QUOTED.sub("'...'", message)


class RuleError(ValueError):
    """A rule file is malformed, or a rule's SQL failed (a bug in the rule: the message names its code)."""


class RuleFileError(RuleError, schema.SchemaError):
    """A rule file is malformed (raised when it loads, naming the file and the rule)."""


@dataclass(frozen=True)
class Rule:
    collection: str
    code: str
    message: str
    tables: tuple[str, ...]
    fields: tuple[str, ...]
    sql: str
    first_year: int | None = None
    last_year: int | None = None
    note: str | None = None
    severity: str = "error"

    def applies_to(self, year: int) -> bool:
        return (self.first_year is None or year >= self.first_year) and (
            self.last_year is None or year <= self.last_year)


# -- rule files ------------------------------------------------------------------------------------
class RuleSpec(schema.SchemaModel):
    """One rule as declared in ``schemas/rules/<collection>.yaml``. A key not declared here is refused when the
    file loads. To add one: declare it below with its type, default and a docstring, carry it onto ``Rule``
    in ``load_rules``, and describe it in ``RULES_DOC`` if the catalogue's ``validation_rules`` shows it."""
    code: Annotated[schema.Text, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]
    """DfE rule code, verbatim; quote it ("101", "8500", "1510Q"). Unique within the file."""
    message: schema.Text
    """DfE's message for the rule, verbatim."""
    tables: Annotated[list[str], Field(min_length=1)]
    """Tables of the collection the SQL reads (short names: episodes, children, ...)."""
    fields: Annotated[list[str], Field(min_length=1)]
    """Fields of the return (as councils send them) the rule is about, for the error report."""
    sql: schema.Text
    """A SELECT returning one row per failure: table_name, source_row, child_id (see the module docstring)."""
    first_year: int | None = None
    """First return year the rule applies to (none: from the start)."""
    last_year: int | None = None
    """Last return year the rule applies to (none: still in force)."""
    note: str | None = None
    """How csreturns adapts the rule (e.g. dates of birth kept to the month)."""
    severity: Literal["error", "query"] | None = None
    """As DfE's portal groups failures: an error blocks the return, a query needs an explanation (none: a
    query when the code ends in Q, else an error)."""

    @model_validator(mode="after")
    def _years(self):
        if self.first_year is not None and self.last_year is not None and self.first_year > self.last_year:
            raise schema.invalid(f"first_year {self.first_year} is after last_year {self.last_year}", whole=True)
        return self


class RuleFile(schema.SchemaModel):
    """A rule file: the collection its rules check, and the rules."""
    collection: schema.Text
    """Collection id (schemas/<collection>.yaml)."""
    rules: list[RuleSpec] = []


def load_rules(path: Path) -> list[Rule]:
    """Read and check one rule file (``RuleFileError``, also a ``schema.SchemaError``, naming the file and the
    rule): known keys of the right types, unique codes, a known collection and its tables."""
    path = Path(path)
    try:
        declared = schema.parse(RuleFile, schema.read_yaml(path) or {}, path)
    except schema.SchemaError as exc:
        raise RuleFileError(str(exc)) from None
    try:
        coll = schema.collection(declared.collection)
    except KeyError:
        raise RuleFileError(f"{schema.shown(path)}: unknown collection {declared.collection!r}") from None
    out, seen = [], set()
    for i, raw in enumerate(declared.rules):
        where = f"{schema.shown(path)}: rules[{i}] ({raw.code})"
        if raw.code in seen:
            raise RuleFileError(f"{where}: code {raw.code} declared twice")
        seen.add(raw.code)
        bad = [t for t in raw.tables if t not in coll.table_names]
        if bad:
            raise RuleFileError(f"{where}: {coll.id} has no table {', '.join(bad)}; "
                                f"it has {', '.join(coll.table_names)}")
        severity = raw.severity or ("query" if raw.code.endswith("Q") else "error")
        out.append(Rule(collection=coll.id, code=raw.code, message=raw.message.strip(), severity=severity,
                        tables=tuple(raw.tables), fields=tuple(raw.fields), sql=raw.sql, first_year=raw.first_year,
                        last_year=raw.last_year, note=raw.note))
    return out


@lru_cache(maxsize=None)
def _all_rules(rules_dir: str) -> dict[str, tuple[Rule, ...]]:
    found: dict[str, tuple[Rule, ...]] = {}
    for path in sorted(Path(rules_dir).glob("*.yaml")):
        loaded = load_rules(path)
        if loaded:
            if loaded[0].collection in found:
                raise RuleError(f"rules for {loaded[0].collection} declared in two files")
            found[loaded[0].collection] = tuple(loaded)
    return found


def collections_with_rules() -> list[str]:
    return list(_all_rules(str(RULES_DIR)))


def rules(collection_id: str) -> list[Rule]:
    """The declared rules of a collection (none if it has no rule file)."""
    return list(_all_rules(str(RULES_DIR)).get(collection_id, ()))


def rule(collection_id: str, code: str) -> Rule:
    for r in rules(collection_id):
        if r.code == str(code):
            return r
    raise KeyError(f"{collection_id} has no rule {code}")


def catalogue_rules() -> pd.DataFrame:
    """``validation_rules``: one row per declared rule."""
    rows = [{"collection": r.collection, "code": r.code, "message": r.message, "tables": list(r.tables),
             "fields": list(r.fields), "first_year": r.first_year, "last_year": r.last_year, "note": r.note}
            for c in collections_with_rules() for r in rules(c)]
    return pd.DataFrame(rows, columns=list(RULES_DOC))


# -- the connection a rule runs in -----------------------------------------------------------------
def collection_period(return_year: int) -> tuple[date, date]:
    return date(return_year - 1, 4, 1), date(return_year, 3, 31)


def table_columns(coll: schema.Collection, name: str) -> dict[str, str]:
    """Every column a table has had in any year (catalogue name -> DuckDB type), as in the catalogue."""
    return dict(_table_columns(coll.id, name))


@lru_cache(maxsize=None)
def _table_columns(collection_id: str, name: str) -> tuple[tuple[str, str], ...]:
    coll = schema.collection(collection_id)
    columns: dict[str, str] = {}
    for year in [None, *coll.change_years]:
        spec = coll.table(name, year)
        for col in spec.columns:
            if col.kept:
                columns.setdefault(col.out, col.duckdb_type)
        for key in spec.sequence_keys:
            columns.setdefault(key, "INTEGER")
    columns.update({"source_row": "BIGINT", "load_id": "VARCHAR", "la_code": "VARCHAR", "return_year": "INTEGER"})
    return tuple(columns.items())


@lru_cache(maxsize=None)
def _codes_frame(collection_id: str, year: int) -> pd.DataFrame:
    coll = schema.collection(collection_id)
    rows = [(t.name, c.name, code, c.out) for t in coll.tables(year) for c in t.columns if c.codes
            for code in c.codes]
    return pd.DataFrame(rows, columns=["table_name", "field", "code", "column_name"])


@lru_cache(maxsize=1)
def _base() -> duckdb.DuckDBPyConnection:
    """An in-memory database holding what never changes: bank holidays, the working-day calendar and the
    ``working_days_between`` macro. Each return gets its own connection to it (``cursor()``), and its
    tables are TEMP tables, private to that connection and gone when it closes."""
    con = duckdb.connect()
    calendar = workdays.working_day_calendar("1980-01-01", "2080-12-31")
    con.register("_calendar_df", calendar)
    con.execute("CREATE TABLE workday_calendar AS SELECT CAST(day AS DATE) AS day, workday_index FROM _calendar_df")
    con.unregister("_calendar_df")
    con.register("_holidays_df", pd.DataFrame({"day": workdays.bank_holidays(1980, 2080)}))
    con.execute("CREATE TABLE bank_holidays AS SELECT CAST(day AS DATE) AS day FROM _holidays_df")
    con.unregister("_holidays_df")
    # index(b) - index(a), where index(d) counts working days from 1980 up to and including d. When b < a,
    # index(b + 1) - index(a + 1), as numpy's busday_count behind transforms.workdays.working_days_between.
    con.execute("""CREATE MACRO _workday_index(d) AS
        (SELECT workday_index FROM workday_calendar WHERE day = CAST(d AS DATE))""")
    con.execute("""CREATE MACRO working_days_between(a, b) AS
        CASE WHEN CAST(b AS DATE) >= CAST(a AS DATE) THEN _workday_index(b) - _workday_index(a)
             ELSE _workday_index(CAST(b AS DATE) + 1) - _workday_index(CAST(a AS DATE) + 1) END""")
    # the child id as the council sent it (in a batch, child ids are qualified by their return: run_batch)
    con.execute("""CREATE MACRO given_child_id(c) AS
        CASE WHEN contains(c, chr(31)) THEN split_part(c, chr(31), 2) ELSE c END""")
    _reference(con)
    return con


def _reference(con: duckdb.DuckDBPyConnection) -> None:
    """Reference data for the rules: ``postcodes``, ``authorities``, ``la_codes`` and the macros
    ``placement_la(postcode)``, ``placement_distance(home, placement)`` (see ``reference_data``)."""
    from transforms.ingest import reference_data

    reference_data.install(con)


def _table_sql(name: str, columns: dict[str, str], source: str | None, present: set[str], la_code, year) -> str:
    """``name`` as a TEMP table with exactly ``columns`` (cast), from ``source`` (a relation) or empty."""
    fixed = {"la_code": f"CAST({_lit(la_code)} AS VARCHAR)", "return_year": f"CAST({int(year)} AS INTEGER)"}
    parts = []
    for c, t in columns.items():
        if source is not None and c in present:
            parts.append(f'CAST("{c}" AS {t}) AS "{c}"')
        elif source is not None and c in fixed:
            parts.append(f'{fixed[c]} AS "{c}"')
        else:
            parts.append(f'CAST(NULL AS {t}) AS "{c}"')
    tail = f"FROM {source}" if source is not None else "WHERE false"
    return f'CREATE TEMP TABLE "{name}" AS SELECT {", ".join(parts)} {tail}'


def _lit(value) -> str:
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


def connect(coll: schema.Collection, return_year: int, current: Mapping[str, str | None],
            previous: Mapping[str, str | None], la_code: str | None = None,
            con: duckdb.DuckDBPyConnection | None = None, only: set[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A connection holding one return: ``current``/``previous`` map each short table name to a relation
    expression to read (e.g. ``read_parquet('...')``) or None for an empty table. ``con`` must be a
    connection to ``_base()`` (e.g. ``_base().cursor()``); by default a new one. ``only``: create just
    these tables (names as the SQL uses them, e.g. ``episodes``, ``previous_episodes``)."""
    con = con or _base().cursor()
    con.register("_codes_df", _codes_frame(coll.id, return_year))
    statements = ["CREATE TEMP TABLE codes AS SELECT * FROM _codes_df"]
    for name in coll.table_names:
        columns = table_columns(coll, name)
        for table, source, year in ((name, current.get(name), return_year),
                                    (f"previous_{name}", previous.get(name), return_year - 1)):
            if only is not None and table not in only:
                continue
            present = ({r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
                       if source is not None else set())
            statements.append(_table_sql(table, columns, source, present, la_code, year))
    con.execute(";\n".join(statements))
    con.unregister("_codes_df")
    _reference_for_return(con, coll, only)
    return con


def _reference_for_return(con: duckdb.DuckDBPyConnection, coll: schema.Collection, only: set[str] | None) -> None:
    """The reference rows this return needs (``return_postcodes``, see ``reference_data``)."""
    from transforms.ingest import reference_data

    if "episodes" in coll.table_names and "pl_post" in table_columns(coll, "episodes"):
        made = {t for n in coll.table_names for t in (n, f"previous_{n}") if only is None or t in only}
        reference_data.install_for_return(con, made)


def _run_rule(con: duckdb.DuckDBPyConnection, r: Rule, return_year: int, keep_la: bool = False) -> pd.DataFrame:
    start, end = collection_period(return_year)
    available = {"return_year": int(return_year), "collection_start": start, "collection_end": end}
    wanted = set(_PARAMETER.findall(r.sql))
    unknown = wanted - set(available)
    if unknown:
        raise RuleError(f"{r.collection} rule {r.code}: unknown parameter(s) ${', $'.join(sorted(unknown))}")
    try:
        frame = con.execute(r.sql, {k: v for k, v in available.items() if k in wanted}).df()
    except duckdb.Error as exc:
        # DuckDB quotes the value it could not cast ("Could not convert string 'A123' to INT32"): a value may be
        # a child's id or date of birth, so every quoted literal is blanked and the original is not chained.
        raise RuleError(f"{r.collection} rule {r.code}: its SQL failed: {without_values(str(exc))}") from None
    missing = {"table_name", "source_row", "child_id"} - set(frame.columns)
    if missing:
        raise RuleError(f"{r.collection} rule {r.code}: the SELECT must return table_name, source_row, child_id "
                        f"(missing {', '.join(sorted(missing))})")
    if keep_la and "la_code" in frame.columns:
        return frame[["table_name", "source_row", "child_id", "la_code"]]
    return frame[["table_name", "source_row", "child_id"]]


# -- one rule, for tests ---------------------------------------------------------------------------
def check(collection_id: str, code: str, tables: Mapping[str, Any], previous: Mapping[str, Any] | None = None,
          return_year: int = 2024) -> pd.DataFrame:
    """Run one rule on the given rows ({short table name: DataFrame or list of dicts}, catalogue column
    names; dates as DATE or 'YYYY-MM-DD'; ``source_row`` defaults to the row's 1-based position). Returns
    the failures (table_name, source_row, child_id), sorted. Raises if the rule does not apply that year."""
    return check_rule(rule(collection_id, code), tables, previous, return_year)


def check_rule(r: Rule, tables: Mapping[str, Any], previous: Mapping[str, Any] | None = None,
               return_year: int = 2024) -> pd.DataFrame:
    """``check`` for a rule given as a ``Rule`` (e.g. one being written, not yet in a rule file)."""
    collection_id, code = r.collection, r.code
    coll = schema.collection(collection_id)
    if not r.applies_to(return_year):
        raise RuleError(f"{collection_id} rule {code} does not apply to {return_year} "
                        f"(first_year {r.first_year}, last_year {r.last_year})")
    frames: dict[str, pd.DataFrame] = {}
    current, prev = {}, {}
    for side, given, target in (("", tables, current), ("previous_", previous or {}, prev)):
        for name, rows in given.items():
            if name not in coll.table_names:
                raise KeyError(f"{collection_id} has no table {name!r}")
            frame = _case_frame(coll, name, rows)
            frames[f"_{side}{name}_df"] = frame
            target[name] = f'"_{side}{name}_df"'
    con = _base().cursor()
    try:
        for view, frame in frames.items():
            con.register(view, frame)
        used = {t for n in coll.table_names for t in (n, f"previous_{n}") if re.search(rf"\b{t}\b", r.sql)}
        connect(coll, return_year, current, prev, "000", con=con, only=used)
        found = _run_rule(con, r, return_year)
    finally:
        con.close()
    return found.sort_values(["table_name", "source_row"], na_position="first").reset_index(drop=True)


def _case_frame(coll: schema.Collection, name: str, rows: Any) -> pd.DataFrame:
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))
    columns = table_columns(coll, name)
    unknown = set(frame.columns) - set(columns)
    if unknown:
        raise KeyError(f"{coll.id}.{name} has no column {', '.join(sorted(unknown))}; "
                       f"it has {', '.join(columns)}")
    if "source_row" not in frame.columns:
        frame["source_row"] = range(1, len(frame) + 1)
    for c in frame.columns:  # text in, typed by the CAST in _table_sql
        if columns[c] == "DATE":
            frame[c] = pd.to_datetime(frame[c], errors="raise").dt.date
        elif columns[c] == "VARCHAR":
            frame[c] = frame[c].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return frame


# -- returns as received, many at once -------------------------------------------------------------
_RETURN_SHIFT = 40  # in a batch, source_row + (index of the return << 40): a row's return is source_row >> 40
_QUALIFIER = "\x1f"  # in a batch, child_id is "<index of the return>\x1f<id>"; given_child_id(child_id) the id


@dataclass
class ReturnTables:
    """One return as the rules see it: ``tables`` and ``previous`` map short table names to typed frames
    (catalogue column names, ``source_row``; see ``received_frame``), ``loads`` each table to the load its
    rows came in (the load a failure is reported against; ``load_id`` for return-level failures)."""
    collection: str
    la_code: str
    return_year: int
    tables: Mapping[str, pd.DataFrame]
    previous: Mapping[str, pd.DataFrame] = None  # type: ignore[assignment]
    loads: Mapping[str, str] = None  # type: ignore[assignment]
    load_id: str | None = None


def received_arrow(coll: schema.Collection, name: str, raw: pa.Table, year: int) -> pa.Table:
    """A raw text table (a reader's output, with ``source_row``) as the rules see it: cosmetic variants made
    canonical (``normalise``), each column typed as far as each value allows (a value that is not a date or a
    number is NULL; the row checks report it), nothing removed and nothing minimised: full dates of birth,
    full postcodes and the council's own child ids. Typed by the query that types the clean rows for the
    load (``validate.typed_sql``). Columns: those of ``table_columns`` the year has."""
    from transforms.ingest.normalise import normalise_table
    from transforms.ingest.validate import typed_arrow

    spec = coll.table(name, year)
    table, _ = normalise_table(raw, spec)
    return _rule_columns(coll, name, typed_arrow(table, spec, coll.date_format))


def _rule_columns(coll: schema.Collection, name: str, typed: pa.Table) -> pa.Table:
    wanted = table_columns(coll, name)
    return typed.select([c for c in typed.column_names if c in wanted])


_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}.get


def received_frame(coll: schema.Collection, name: str, raw: pd.DataFrame, year: int) -> pd.DataFrame:
    """``received_arrow`` for a pandas frame, as pandas (dates as ``datetime.date``, whole numbers nullable)."""
    table = received_arrow(coll, name, pa.Table.from_pandas(raw, preserve_index=False), year)
    return table.to_pandas(types_mapper=_PANDAS_TYPES)


def received_tables(collection_id: str, files: list[Path], year: int, landing: Path) -> dict[str, pd.DataFrame]:
    """Every table in ``files`` (one return's files as landed) read with csreturns' readers and typed as the
    rules see it (``received_frame``); tables split over several files are concatenated."""
    from transforms.ingest.landing import identify
    from transforms.ingest.readers import UnreadableFile
    from transforms.ingest.readers.csv_tables import read_table
    from transforms.ingest.readers.xml_records import read_records

    coll = schema.collection(collection_id)
    frames: dict[str, list[pd.DataFrame]] = {}
    for path in files:
        arrival = identify(path, landing)
        if arrival.format == "csv":
            try:
                raw = read_table(path, coll.table(arrival.table, year)).tables
            except UnreadableFile:  # e.g. a header row only: to the rules, a table without rows
                continue
        else:
            raw = read_records(path, coll, [t for t in coll.tables(year) if t.collected_in(year)]).tables
        for name, df in raw.items():
            frames.setdefault(name, []).append(received_frame(coll, name, df, year))
    return {n: pd.concat(f, ignore_index=True) for n, f in frames.items()}


def run_batch(returns: list[ReturnTables], timings: dict[str, float] | None = None) -> list[pd.DataFrame]:
    """Every rule that applies, on many returns at once: the failures of each return (``ERRORS_COLUMNS``,
    in the order given; ``child_id`` as the return gave it).

    Returns of one collection and year are registered together in ONE DuckDB connection (each row carrying
    its ``la_code``; rows of return i numbered ``source_row + (i << 40)`` so every failure maps back to its
    return), and each rule runs once over all of them: the fixed cost of a query is paid once per batch,
    not once per return. Rules are written to be correct over many councils' rows (child ids compared
    within a council, return-level failures grouped by ``la_code``); ``tests/test_rules.py`` checks that a
    batch finds exactly what the returns checked one by one find. Two returns of the same council and year
    go to separate batches. ``timings``: seconds per rule code, summed over batches."""
    out: list[list[pd.DataFrame]] = [[] for _ in returns]
    groups: dict[tuple[str, int], list[list[int]]] = {}
    for i, r in enumerate(returns):
        chunks = groups.setdefault((r.collection, int(r.return_year)), [])
        for chunk in chunks:
            if all(returns[j].la_code != r.la_code for j in chunk):
                chunk.append(i)
                break
        else:
            chunks.append([i])
    for (collection_id, year), chunks in groups.items():
        for chunk in chunks:
            _run_chunk(collection_id, year, [(i, returns[i]) for i in chunk], out, timings)
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in ERRORS_COLUMNS})
    return [pd.concat(f, ignore_index=True)[ERRORS_COLUMNS] if f else empty.copy() for f in out]


def _arrow_part(coll: schema.Collection, name: str, given) -> pa.Table:
    """One return's table for a batch: an Arrow table as typed (``received_arrow``), or rows as ``check``
    takes them (a DataFrame, typed by ``_case_frame``); ``source_row`` numbered from 1 if absent."""
    if isinstance(given, pa.Table):
        if "source_row" not in given.column_names:
            given = given.append_column("source_row", pa.array(range(1, given.num_rows + 1), pa.int64()))
        return given
    if "source_row" not in given.columns:
        given = given.assign(source_row=range(1, len(given) + 1))
    return pa.Table.from_pandas(_case_frame(coll, name, given), preserve_index=False)


def _qualified_sql(view: str, columns: list[str], k: int, la_code: str) -> str:
    """Return ``k``'s rows in a batch: ``source_row + (k << 40)``, its ``la_code``, child ids qualified by
    the return (the ids of two councils may coincide)."""
    select = []
    for c in columns:
        q = f'"{c}"'
        if c == "source_row":
            select.append(f"CAST({q} AS BIGINT) + {k << _RETURN_SHIFT} AS {q}")
        elif c == "child_id":
            select.append(f"CASE WHEN {q} IS NULL THEN NULL ELSE '{k}' || chr(31) || CAST({q} AS VARCHAR) END AS {q}")
        elif c != "la_code":
            select.append(q)
    select.append(f'{_lit(la_code)} AS "la_code"')
    return f'SELECT {", ".join(select)} FROM "{view}"'


def _run_chunk(collection_id: str, year: int, members: list[tuple[int, ReturnTables]],
               out: list[list[pd.DataFrame]], timings: dict[str, float] | None) -> None:
    coll = schema.collection(collection_id)
    con = _base().cursor()
    try:
        sources: dict[str, dict[str, str]] = {"": {}, "previous_": {}}
        for side in ("", "previous_"):
            for name in coll.table_names:
                parts = []
                for k, (_, r) in enumerate(members):
                    given = (r.tables if side == "" else (r.previous or {})).get(name)
                    if given is None or not len(given):
                        continue
                    view = f"_{side}{name}_{k}"
                    part = _arrow_part(coll, name, given)
                    con.register(view, part)
                    parts.append(_qualified_sql(view, part.column_names, k, r.la_code))
                if parts:
                    sources[side][name] = "(" + " UNION ALL BY NAME ".join(parts) + ")"
        connect(coll, year, sources[""], sources["previous_"], members[0][1].la_code, con=con)
        by_la = {r.la_code: k for k, (_, r) in enumerate(members)}
        found_all = []
        for r in rules(collection_id):
            if not r.applies_to(year):
                continue
            started = time.perf_counter()
            found = _run_rule(con, r, year, keep_la=True)
            if timings is not None:
                timings[r.code] = timings.get(r.code, 0.0) + time.perf_counter() - started
            if not found.empty:
                found_all.append(found.assign(code=r.code, fields=", ".join(r.fields), message=r.message))
    finally:
        con.close()
    if not found_all:
        return
    found = pd.concat(found_all, ignore_index=True)
    rows = pd.to_numeric(found["source_row"]).astype("Int64")
    index = rows // (1 << _RETURN_SHIFT)
    if index.isna().any():
        if len(members) == 1:
            index = index.fillna(0)
        elif "la_code" in found.columns:
            index = index.fillna(found["la_code"].map(by_la).astype("Int64"))
        if index.isna().any():
            codes = sorted(set(found.loc[index.isna(), "code"]))
            raise RuleError(f"{collection_id} rule(s) {', '.join(codes)}: a return-level failure must select "
                            "la_code when many returns are checked at once")
    found["source_row"] = rows - index * (1 << _RETURN_SHIFT)
    found["child_id"] = given_child_ids(found["child_id"])
    found["collection"], found["return_year"] = collection_id, int(year)
    for k, part in found.groupby(index.to_numpy()):
        i, ret = members[int(k)]
        loads = ret.loads or {}
        load_of = {t: loads.get(t) or ret.load_id for t in part["table_name"].unique()}
        part = part.assign(load_id=part["table_name"].map(load_of), la_code=ret.la_code)
        out[i].append(part[ERRORS_COLUMNS])


def given_child_ids(qualified: pd.Series) -> pd.Series:
    """Child ids as their return gave them: ``"<return>\\x1f<id>"`` -> ``"<id>"`` (an id without the
    qualifier is kept whole; empty stays None), as text, in Arrow's regex engine rather than row by row."""
    text = qualified.astype("string[pyarrow]")
    given = text.str.replace(f"^[^{_QUALIFIER}]*{_QUALIFIER}", "", n=1, regex=True)
    return given.astype(object).where(given.notna(), None)


# -- the ingest's call: returns as received, before quarantine and minimisation ----------------------
PENDING_DIR = "rule_pending"   # REPO/rule_pending/<collection>/<la_code>/<year>.parquet: verdicts awaiting the load


def check_received(repo: Repository, files: list, typed: Mapping[tuple[str, str], pa.Table] | None = None
                   ) -> list[dict]:
    """The DfE rules on every return a batch of landed files (``LandedFile``, read, not yet validated)
    brings, as received: every row (also those the row checks will quarantine), full dates of birth and
    postcodes, the council's own child ids. The one call the ingest makes (``stages.validate_batch``).

    A return's tables come from the batch's files; a table of the return not in the batch, and last year's
    return, from the repository (minimised: dates of birth to the month; its pseudonymised child ids are
    matched back to the ids of the received rows). Only verdicts are kept: per failure the load, table,
    source row, DfE code, message and the child's pseudonymised id, staged under ``PENDING_DIR`` until
    ``check_returns`` (after the load commits) makes them the return's current errors. Returns one summary
    dict per return checked. ``typed``: tables already typed by the validation (``validate.split``'s
    ``typed_all``, by load id and table name), used instead of reading and typing the staged files again."""
    from transforms.ingest.privacy import Pseudonymiser

    by_return: dict[tuple[str, str, int], dict[str, tuple[str, str]]] = {}
    for landed in files:
        arrival = landed.arrival
        if not landed.readable or not arrival.la_code or arrival.return_year is None or not rules(arrival.collection):
            continue
        key = (arrival.collection, arrival.la_code, int(arrival.return_year))
        tables = by_return.setdefault(key, {})
        for name, path in landed.raw.items():
            if name not in tables or landed.load_id > tables[name][0]:  # the newest file of a table wins
                tables[name] = (landed.load_id, path)
    if not by_return:
        return []
    for key in by_return:  # an earlier check's verdicts are not these files': never published for them
        _pending_path(repo, *key).unlink(missing_ok=True)
    pseudonymiser = Pseudonymiser.for_repository(repo.root)
    started = time.perf_counter()
    batch, tokens = [], []
    for (collection_id, la_code, year), given in sorted(by_return.items()):
        coll = schema.collection(collection_id)
        current = {n: _rule_columns(coll, n, typed[(load, n)]) if typed and (load, n) in typed
                   else received_arrow(coll, n, pq.read_table(path), year) for n, (load, path) in given.items()}
        ids = [f["child_id"].cast(pa.string()) for f in current.values() if "child_id" in f.column_names]
        ids = pd.Series(pc.unique(pa.chunked_array(ids, pa.string())).drop_null().to_pylist(), dtype=object)
        token_of = dict(zip(ids, pseudonymiser.tokens(ids, scope=la_code)))
        raw_of = {t: i for i, t in token_of.items()}
        for name in coll.table_names:
            if name not in current:
                stored = _stored(repo, coll, name, la_code, year, raw_of)
                if stored is not None:
                    current[name] = stored
        previous = {n: _as_received(coll, n, f, current, pseudonymiser) for n in coll.table_names
                    if (f := _stored(repo, coll, n, la_code, year - 1, raw_of)) is not None}
        loads = {n: load for n, (load, _) in given.items()}
        loads.update({n: repo.current_load(Partition(collection_id, n, la_code, year)) for n in coll.table_names
                      if n not in loads})
        batch.append(ReturnTables(collection_id, la_code, year, current, previous, loads, max(loads[n] for n in given)))
        tokens.append(token_of)
    found = run_batch(batch)
    seconds = time.perf_counter() - started
    out = []
    for ret, errors, token_of in zip(batch, found, tokens):
        tokens_of_ids = errors["child_id"].map(token_of)   # an id not received (None, a stored token) stays as it is
        errors = errors.assign(child_id=tokens_of_ids.where(tokens_of_ids.notna(), errors["child_id"]))
        path = _pending_path(repo, ret.collection, ret.la_code, ret.return_year)
        _write_atomic(pa.Table.from_pandas(errors.assign(run_id=ret.load_id), schema=ERRORS_SCHEMA,
                                           preserve_index=False), path)
        out.append({"collection": ret.collection, "la_code": ret.la_code, "return_year": ret.return_year,
                    "load_id": ret.load_id, "errors": len(errors), "seconds": round(seconds, 3)})
    return out


def _pending_path(repo: Repository, collection_id: str, la_code: str, return_year: int) -> Path:
    return repo.root / PENDING_DIR / collection_id / la_code / f"{int(return_year)}.parquet"


def _stored(repo: Repository, coll: schema.Collection, name: str, la_code: str, year: int,
            raw_of: dict[str, str]) -> pd.DataFrame | None:
    """A table of the repository's current partition, child ids matched back to the received ones."""
    path = repo.partition_file(Partition(coll.id, name, la_code, year))
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    frame = frame[[c for c in frame.columns if c in table_columns(coll, name)]]
    if "child_id" in frame.columns:
        frame["child_id"] = frame["child_id"].map(lambda t: None if t is None or t != t else raw_of.get(t, t))
    return frame


def _as_received(coll: schema.Collection, name: str, stored: pd.DataFrame, current: dict[str, Any],
                 pseudonymiser) -> pd.DataFrame:
    """Last year's rows (minimised) made comparable with this year's as received: a date kept to its month
    that is the month of the child's date this year becomes that date (rules such as 203 compare them: a
    child whose date of birth is unchanged must not fail for its day), and a nationally pseudonymised id
    (UPN) whose token is that of an id received this year becomes that id. Anything else stays as stored."""
    out = stored.copy()
    current = {n: _columns_pd(f) for n, f in current.items()}
    for col in coll.table(name, None).columns:
        if col.out not in out.columns or col.privacy not in ("month", "pseudonymise_national"):
            continue
        if col.privacy == "month" and "child_id" in out.columns:
            known: dict = {}
            for frame in current.values():
                if col.out in frame.columns and "child_id" in frame.columns:
                    pairs = frame[["child_id", col.out]].dropna()
                    known.update(zip(pairs["child_id"], pairs[col.out]))
            full = out["child_id"].map(known)
            same_month = full.map(lambda d: d.replace(day=1) if d is not None and d == d else None) == out[col.out]
            out[col.out] = out[col.out].where(~same_month, full)
        elif col.privacy == "pseudonymise_national":
            values = pd.Series(pd.concat([f[col.out] for f in current.values() if col.out in f.columns]
                                         or [pd.Series(dtype=object)]).dropna().unique())
            back = dict(zip(pseudonymiser.tokens(values), values))
            out[col.out] = out[col.out].map(lambda t: t if t is None or t != t else back.get(t, t))
    return out


def _columns_pd(frame):
    """A DataFrame as it is; an Arrow table as an object whose columns come as pandas when asked for."""
    return frame if isinstance(frame, pd.DataFrame) else _ArrowColumns(frame)


class _ArrowColumns:
    """Columns of an Arrow table as pandas, converted when asked for (what ``_as_received`` reads)."""

    def __init__(self, table: pa.Table) -> None:
        self.table, self.columns = table, table.column_names

    def __getitem__(self, key):
        if isinstance(key, list):
            return self.table.select(key).to_pandas()
        return self.table[key].to_pandas()


def _take_pending(repo: Repository, collection_id: str, la_code: str, return_year: int) -> pd.DataFrame | None:
    path = _pending_path(repo, collection_id, la_code, return_year)
    if not path.exists():
        return None
    return pq.read_table(path).to_pandas()[ERRORS_COLUMNS]


# -- a whole return from the repository ------------------------------------------------------------
def _partition_source(repo: Repository, coll: schema.Collection, name: str, la_code: str, year: int) -> str | None:
    path = repo.partition_file(Partition(coll.id, name, la_code, year))
    return f"read_parquet({_lit(path.as_posix())})" if path.exists() else None


def run_return(repo: Repository, collection_id: str, la_code: str, return_year: int, load_id: str,
               timings: dict[str, float] | None = None) -> pd.DataFrame:
    """Every rule that applies to ``return_year``, over the repository's current partitions of this return
    (and the same council's previous year). One row per failure, ``ERRORS_COLUMNS``; ``load_id`` is the
    load of the partition the failing row is in (``load_id`` given for return-level failures)."""
    coll = schema.collection(collection_id)
    current = {n: _partition_source(repo, coll, n, la_code, return_year) for n in coll.table_names}
    previous = {n: _partition_source(repo, coll, n, la_code, return_year - 1) for n in coll.table_names}
    con = connect(coll, return_year, current, previous, la_code)
    frames = []
    try:  # one partition is one load: the load of a failing row is its table's
        loads = {n: con.execute(f'SELECT any_value(load_id) FROM "{n}"').fetchone()[0] for n in coll.table_names}
        for r in rules(collection_id):
            if not r.applies_to(return_year):
                continue
            started = time.perf_counter()
            found = _run_rule(con, r, return_year)
            if timings is not None:
                timings[r.code] = time.perf_counter() - started
            if found.empty:
                continue
            found = found.assign(code=r.code, fields=", ".join(r.fields), message=r.message)
            frames.append(found)
    finally:
        con.close()
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ERRORS_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out["load_id"] = out["table_name"].map(lambda t: loads.get(t) or load_id)
    out["collection"], out["la_code"], out["return_year"] = collection_id, la_code, int(return_year)
    out["source_row"] = out["source_row"].astype("Int64")
    out["child_id"] = out["child_id"].map(lambda v: None if pd.isna(v) else str(v))
    return out[ERRORS_COLUMNS]


def check_return(repo: Repository, collection_id: str, la_code: str, return_year: int, load_id: str) -> dict:
    """Run the rules and keep what they found: ``rule_errors/<load_id>.parquet`` and a ``rule_runs`` row
    (written even when nothing failed, so a clean resubmission clears the earlier errors). Files swapped in
    with ``os.replace`` and never edited (checking the same load again replaces its files); the latest check
    of a return (by ``run_id``, taken before reading the partitions) is the one the catalogue shows."""
    run_id = new_load_id()
    started = time.perf_counter()
    pending = _take_pending(repo, collection_id, la_code, return_year)
    if pending is not None:  # checked as received (check_received), before the load
        errors = pending
    else:                    # e.g. last year's return changed: this one again, from the repository
        errors = run_return(repo, collection_id, la_code, return_year, load_id)
    coll = schema.collection(collection_id)
    loads = sorted({x for n in coll.table_names
                    if (x := repo.current_load(Partition(collection_id, n, la_code, return_year)))})
    seconds = time.perf_counter() - started
    errors_table = pa.Table.from_pandas(errors.assign(run_id=run_id), schema=ERRORS_SCHEMA, preserve_index=False)
    _write_atomic(errors_table, repo.root / ERRORS_DIR / f"{load_id}.parquet")
    run = {"run_id": run_id, "load_id": load_id, "collection": collection_id, "la_code": la_code,
           "return_year": int(return_year), "loads": loads, "rules_run": sum(r.applies_to(return_year) for r in rules(collection_id)),
           "errors": len(errors), "seconds": round(seconds, 3), "checked_at": datetime.now(timezone.utc)}
    _write_atomic(pa.Table.from_pylist([run], schema=RUNS_SCHEMA), repo.root / RUNS_DIR / f"{load_id}.parquet")
    if pending is not None:
        _pending_path(repo, collection_id, la_code, return_year).unlink(missing_ok=True)
    return {**run, "checked_at": run["checked_at"].isoformat()}


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write ``path`` whole or not at all. The temporary file is the writer's own (two ingests may check the same
    return at once: a shared temporary name let one replace the other's and fail with FileNotFoundError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def check_returns(repo: Repository, ledger_rows: Iterable[dict]) -> list[dict]:
    """Once per return (collection, council, year) that a batch of loads changed, after the loads are
    committed: SSDA903 CSV tables arrive as one file per table, and the rules need the whole return."""
    latest: dict[tuple, str] = {}
    looked_at: set[tuple] = set()    # next years already looked for (a return's files are many rows)
    for row in ledger_rows:
        if not row.get("la_code") or row.get("return_year") is None:
            continue
        key = (row["collection"], row["la_code"], int(row["return_year"]))
        if row.get("status") not in ("loaded", "partly_loaded") and not (
                row.get("status") == "rejected" and _pending_path(repo, *key).exists()):
            continue  # a file whose every row failed a row check was still checked as received
        if rules(key[0]):
            latest[key] = max(latest.get(key, ""), row["load_id"])
            # next year's rules read this return as last year's: check it again if it is loaded
            following = (key[0], key[1], key[2] + 1)
            if following not in latest and following not in looked_at and _is_loaded(repo, *following):
                latest[following] = ""
            looked_at.add(following)
    return [check_return(repo, c, la, y, load_id or latest_load(repo, c, la, y))
            for (c, la, y), load_id in sorted(latest.items())]


def _is_loaded(repo: Repository, collection_id: str, la_code: str, return_year: int) -> bool:
    return latest_load(repo, collection_id, la_code, return_year) is not None


def latest_load(repo: Repository, collection_id: str, la_code: str, return_year: int) -> str | None:
    """The newest load among a return's current partitions (the return's loads, by arrival time)."""
    loads = [repo.current_load(Partition(collection_id, n, la_code, return_year))
             for n in schema.collection(collection_id).table_names]
    return max((x for x in loads if x), default=None)


# -- reading what was found ------------------------------------------------------------------------
# Errors of the latest check of each return ({runs}, {errors}: relations over rule_runs/ and rule_errors/).
ERRORS_VIEW_SQL = """CREATE VIEW {name} AS
    WITH latest AS (SELECT max(run_id) AS run_id FROM {runs}
                    GROUP BY collection, la_code, return_year)
    SELECT e.load_id, e.collection, e.code, e.la_code, CAST(e.return_year AS INTEGER) AS return_year,
           e.child_id, e.table_name, e.source_row, e.fields, e.message
    FROM {errors} e JOIN latest USING (run_id)"""


def current_errors(repo: Repository, collection_id: str | None = None, la_code: str | None = None,
                   return_year: int | None = None) -> pd.DataFrame:
    """The errors of the latest check of each return (what the catalogue's ``validation_errors`` shows)."""
    runs_dir, errors_dir = repo.root / RUNS_DIR, repo.root / ERRORS_DIR
    if not list(runs_dir.glob("*.parquet")):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ERRORS_COLUMNS})
    con = duckdb.connect()
    try:
        con.execute(ERRORS_VIEW_SQL.format(
            name="validation_errors",
            runs=f"read_parquet({_lit((runs_dir / '*.parquet').as_posix())})",
            errors=f"read_parquet({_lit((errors_dir / '*.parquet').as_posix())})"))
        where, params = [], []
        for column, value in (("collection", collection_id), ("la_code", la_code), ("return_year", return_year)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM validation_errors" + (f" WHERE {' AND '.join(where)}" if where else "")
        return con.execute(sql + " ORDER BY collection, la_code, return_year, table_name, source_row, code",
                           params).df()
    finally:
        con.close()


def build_catalogue(con: duckdb.DuckDBPyConnection, repo: Repository) -> None:
    """``validation_rules`` (a table, from the rule files) and ``validation_errors`` (a live view over the
    kept errors: only each return's latest check, so a resubmission's errors replace the earlier ones)."""
    con.register("_rules_df", catalogue_rules())
    con.execute("""CREATE TABLE validation_rules AS SELECT CAST(collection AS VARCHAR) AS collection,
        CAST(code AS VARCHAR) AS code, CAST(message AS VARCHAR) AS message, CAST(tables AS VARCHAR[]) AS tables,
        CAST(fields AS VARCHAR[]) AS fields, CAST(first_year AS INTEGER) AS first_year,
        CAST(last_year AS INTEGER) AS last_year, CAST(note AS VARCHAR) AS note
        FROM _rules_df ORDER BY collection, code""")
    con.unregister("_rules_df")
    runs_dir, errors_dir = repo.root / RUNS_DIR, repo.root / ERRORS_DIR
    if list(runs_dir.glob("*.parquet")) and list(errors_dir.glob("*.parquet")):
        con.execute(ERRORS_VIEW_SQL.format(
            name="validation_errors",
            runs=f"read_parquet({_lit((runs_dir / '*.parquet').as_posix())})",
            errors=f"read_parquet({_lit((errors_dir / '*.parquet').as_posix())})"))
    else:
        empty = pa.Table.from_pylist([], schema=ERRORS_SCHEMA).drop_columns(["run_id"])
        con.register("_errors_empty", empty)
        con.execute("CREATE TABLE validation_errors AS SELECT * FROM _errors_empty")
        con.unregister("_errors_empty")
