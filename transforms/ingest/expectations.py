"""Custom Great Expectations for return values, on pandas and on SQL (DuckDB through SQLAlchemy).

GX's own strftime expectation parses value by value (about 10 s per million rows here); returns carry
millions of dates, so these map expectations parse whole columns at once: with pandas on a dataframe
batch, and as one DuckDB expression (``try_strptime``, ``TRY_CAST``) when GX runs the suite in DuckDB
(``transforms.ingest.validate``). Both partials accept and refuse the same text (tests/test_engine_equivalence.py).

Also: DuckDB support for GX's own regex expectations (GX 1.24 has no DuckDB regex dialect and reports
"Regex is not supported for dialect duckdb"): ``enable_duckdb_regex`` maps them to ``regexp_matches``,
which, like GX's pandas ``str.contains``, matches anywhere in the value unless the pattern is anchored.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ClassVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import (
    ColumnMapMetricProvider,
    column_condition_partial,
)


class ColumnValuesAreDates(ColumnMapMetricProvider):
    condition_metric_name = "column_values.csreturns_is_date"
    condition_value_keys = ("date_format",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, date_format, **kwargs):
        return pd.to_datetime(column, format=date_format, errors="coerce").notna()

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, date_format, **kwargs):
        return sa.func.try_strptime(column, date_format).is_not(None)


class ExpectColumnValuesToBeDates(ColumnMapExpectation):
    """Each value is a real calendar date written in the return's date format (31/02/2024 fails)."""

    date_format: str
    map_metric: ClassVar[str] = "column_values.csreturns_is_date"
    success_keys: ClassVar[tuple[str, ...]] = ("date_format", "mostly")


class ColumnValuesAreWholeNumbers(ColumnMapMetricProvider):
    condition_metric_name = "column_values.csreturns_is_whole_number"
    condition_value_keys = ("min_value", "max_value")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, min_value=None, max_value=None, **kwargs):
        number = pd.to_numeric(column, errors="coerce")
        ok = number.notna() & (number == number.round())
        if min_value is not None:
            ok &= number >= min_value
        if max_value is not None:
            ok &= number <= max_value
        return ok

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, min_value=None, max_value=None, **kwargs):
        return _sql_number_ok(_sql_number(column), min_value, max_value, whole=True)


class ExpectColumnValuesToBeWholeNumbers(ColumnMapExpectation):
    """Each value is a whole number, within the schema's bounds where it declares them."""

    min_value: float | None = None
    max_value: float | None = None
    map_metric: ClassVar[str] = "column_values.csreturns_is_whole_number"
    success_keys: ClassVar[tuple[str, ...]] = ("min_value", "max_value", "mostly")


class ColumnValuesAreNumbers(ColumnMapMetricProvider):
    condition_metric_name = "column_values.csreturns_is_number"
    condition_value_keys = ("symbols",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, symbols=(), **kwargs):
        text = column.astype("str").str.replace(",", "", regex=False).str.strip()
        return pd.to_numeric(text, errors="coerce").notna() | text.str.lower().isin(list(symbols))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, symbols=(), **kwargs):
        text = sa.func.trim(sa.func.replace(column, ",", ""))
        return sa.or_(_sql_number_ok(_sql_number(text)), sa.func.lower(text).in_(list(symbols) or [""]))


class ExpectColumnValuesToBeNumbersOrSymbols(ColumnMapExpectation):
    """Published statistics: a number, or one of the publication's suppression symbols (c, z, x, k...)."""

    symbols: list[str] = []
    map_metric: ClassVar[str] = "column_values.csreturns_is_number"
    success_keys: ClassVar[tuple[str, ...]] = ("symbols", "mostly")


class ColumnValuesAreNumbersOrSymbolsWithin(ColumnMapMetricProvider):
    condition_metric_name = "column_values.csreturns_is_number_or_symbol_within"
    condition_value_keys = ("symbols", "min_value", "max_value")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, symbols=(), min_value=None, max_value=None, **kwargs):
        text = column.astype("str").str.replace(",", "", regex=False).str.strip()
        number = pd.to_numeric(text, errors="coerce")
        ok = number.notna()
        if min_value is not None:
            ok &= number >= min_value
        if max_value is not None:
            ok &= number <= max_value
        return ok | text.str.lower().isin(list(symbols))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, symbols=(), min_value=None, max_value=None, **kwargs):
        text = sa.func.trim(sa.func.replace(column, ",", ""))
        return sa.or_(_sql_number_ok(_sql_number(text), min_value, max_value),
                      sa.func.lower(text).in_(list(symbols) or [""]))


class ExpectColumnValuesToBeNumbersOrSymbolsWithin(ColumnMapExpectation):
    """A published figure in its unit's range (a percentage in 0-100, a count not negative), or a symbol."""

    symbols: list[str] = []
    min_value: float | None = None
    max_value: float | None = None
    map_metric: ClassVar[str] = "column_values.csreturns_is_number_or_symbol_within"
    success_keys: ClassVar[tuple[str, ...]] = ("symbols", "min_value", "max_value", "mostly")



class _TryDouble(FunctionElement):
    """``TRY_CAST(trim(x) AS DOUBLE)``: DuckDB's reading of a number, NULL where there is none."""

    type = sa.Float()
    inherit_cache = True
    name = "csreturns_try_double"


@compiles(_TryDouble)
def _compile_try_double(element, compiler, **kw):
    return f"TRY_CAST(trim(CAST({compiler.process(element.clauses, **kw)} AS VARCHAR)) AS DOUBLE)"


def _sql_number(text):
    return _TryDouble(text)


def _sql_number_ok(number, min_value=None, max_value=None, whole: bool = False):
    """A finite number (pandas reads "nan" as missing; DuckDB as NaN), whole and within bounds if asked."""
    ok = [number.is_not(None), sa.not_(sa.func.isnan(number))]
    if whole:
        ok.append(number == sa.func.round(number))
    if min_value is not None:
        ok.append(number >= min_value)
    if max_value is not None:
        ok.append(number <= max_value)
    return sa.and_(*ok)


def enable_duckdb_regex() -> None:
    """Let GX's regex expectations run on DuckDB (``regexp_matches``); idempotent."""
    from great_expectations.expectations.metrics.column_map_metrics import (
        column_values_match_regex as match,
    )
    from great_expectations.expectations.metrics.column_map_metrics import (
        column_values_not_match_regex as not_match,
    )

    for module in (match, not_match):
        original = module.get_dialect_regex_expression
        if getattr(original, "csreturns_duckdb", False):
            continue

        def regex_expression(column, regex, dialect, positive=True, _original=original):
            if getattr(getattr(dialect, "dialect", None), "name", "") == "duckdb" or \
                    getattr(dialect, "name", "") == "duckdb":
                found = sa.func.regexp_matches(column, sa.literal(regex))
                return found if positive else sa.not_(found)
            return _original(column, regex, dialect, positive)

        regex_expression.csreturns_duckdb = True
        module.get_dialect_regex_expression = regex_expression


# -- Great Expectations internals (written against GX 1.24.1) -----------------------------------------------
# Everything in csreturns that reaches into GX's private internals is here (with ``enable_duckdb_regex`` above),
# pinned by tests/test_gx_internals.py, which fails on another GX version or if a result changes. What GX on
# DuckDB needs to work at all (``persist_duckdb_connections``, ``new_batch``) is always done; what only makes it
# faster is installed by ``install_run_speedups`` when the installed GX is ``GX_VERSION`` (any other version
# runs plain GX there: slower, the same results).
#
# Why: a GX run costs about 0.1 s before DuckDB does any work, and an SSDA903 batch takes 21 runs (11 tables, a
# second pass for those with failures). What costs most touches no data (bench/README.md, "GX's fixed cost"):
#
# 1. ``Expectation.configuration`` rebuilds an ``ExpectationConfiguration`` from the pydantic model on every
#    access, and building one expectation's metric graph reads it about 50 times (``_get_domain_kwargs`` once
#    per key, ``registry.get_metric_kwargs`` through a fresh ``to_domain_obj()`` per metric). Within a run an
#    expectation object answers with the configuration it built first, and a configuration object with the
#    expectation it built first: GX builds them from one another and only reads them while it validates.
# 2. Metric ids: ``IDDict.to_id`` passes a metric's kwargs through ``convert_to_json_serializable`` (a long
#    isinstance chain per value) and MD5, about 80 times per expectation for a few distinct kwargs. Within a
#    run an id is kept by the kwargs' JSON text, only for kwargs plain ``json.dumps`` takes (JSON's own types,
#    which the conversion leaves as they are: equal text, equal id).
# 3. The second pass (COMPLETE, failed expectations only) recomputed every metric the first pass had resolved
#    on the same staged batch (row count, per-column counts, the columns): GX keeps a metric cache but reads it
#    only for dependencies. Within a run ``ValidationGraph.resolve`` starts from the engine's metric cache, which
#    ``DuckdbValidator`` empties whenever it stages a batch.
# 4. Column reflection: GX's ``table.column_types`` asks the SQLAlchemy inspector, which on DuckDB 2.0 runs three
#    pg_catalog queries that find nothing, then falls back to ``SELECT * ... LIMIT 1`` for the column names
#    (about 20 ms a run, for names csreturns staged itself). ``StagedInspector`` answers with those names: what
#    the fallback returns (names only, no types).
#
# 1-3 are active only within ``run_speedups()`` (``DuckdbValidator`` runs GX inside it); 4 per engine.

GX_VERSION = "1.24.1"

_MEMO: ContextVar[dict | None] = ContextVar("csreturns_gx_memo", default=None)


def gx_version_supported() -> bool:
    import great_expectations as gx

    return gx.__version__ == GX_VERSION


class StagedInspector:
    """What GX's column reflection needs of a SQLAlchemy inspector, for the staged batch only: its column names.

    GX 1.24.1 on DuckDB 2.0: ``inspector.get_columns`` finds nothing (duckdb-engine reflects through pg_catalog),
    and GX falls back to reading the names from a one-row query; this gives GX the same names without the four
    queries. Anything else is asked of a real inspector over ``engine``."""

    def __init__(self, engine, table: str, columns: list[str]) -> None:
        self._engine, self._table, self._columns = engine, table, list(columns)
        self.dialect = engine.dialect

    def get_pk_constraint(self, table_name, schema=None, **kw) -> dict:
        if str(table_name) != self._table or schema is not None:
            return self._real().get_pk_constraint(table_name, schema=schema, **kw)
        return {"constrained_columns": [], "name": None}

    def get_columns(self, table_name, schema=None, **kw) -> list[dict]:
        if str(table_name) != self._table or schema is not None:
            return self._real().get_columns(table_name, schema=schema, **kw)
        return [{"name": name} for name in self._columns]

    def _real(self):
        return sa.inspect(self._engine)

    def __getattr__(self, name):
        return getattr(self._real(), name)


class _DuckdbDialectName(str):
    """GX's persisted-connection dialects are an enum; this str answers ``.value`` like its members."""

    value = "duckdb"


def persist_duckdb_connections() -> None:
    """GX fetches a query's rows after giving its connection back to the pool, and duckdb-engine's cursor is the
    connection: GX must keep one connection for DuckDB, as it does for SQLite (its private list of such
    dialects, ``_PERSISTED_CONNECTION_DIALECTS``); idempotent. TECH_NOTES, 2026-11-29."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as sae

    if "duckdb" not in sae._PERSISTED_CONNECTION_DIALECTS:
        sae._PERSISTED_CONNECTION_DIALECTS = (*sae._PERSISTED_CONNECTION_DIALECTS, _DuckdbDialectName("duckdb"))


def new_batch(execution_engine, table: str, columns: list[str] | None) -> None:
    """A new batch is staged as ``table`` (always the same name): GX forgets the metrics it resolved and the
    columns it reflected for the last one. With ``columns`` (the staged table's, in order) GX reflects the new
    batch through a ``StagedInspector`` (4 of the note above); None: through SQLAlchemy."""
    execution_engine._metric_cache.clear()
    execution_engine._inspector = None
    use_staged_inspector(execution_engine, None if columns is None else
                         StagedInspector(execution_engine.engine, table, columns))


def use_staged_inspector(execution_engine, inspector: StagedInspector | None) -> None:
    """Make ``execution_engine`` reflect the staged batch through ``inspector`` (None: through SQLAlchemy again).
    GX resets its own inspector whenever it loads a batch, so the engine's ``get_inspector`` is replaced."""
    if inspector is None:
        execution_engine.__dict__.pop("get_inspector", None)
    else:
        execution_engine.get_inspector = lambda: inspector


@contextmanager
def run_speedups():
    """Within the block, 1-3 of the note above: each expectation builds its configuration once, each
    configuration its expectation once, each metric kwargs its id once, and a validation graph starts from the
    metrics its engine already resolved on this batch. Outside it, GX as released. The memo is a context
    variable: each thread's runs have their own."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def _memoised(kind: str, original):
    def getter(self):
        memo = _MEMO.get()
        if memo is None:
            return original(self)
        key = (kind, id(self))
        hit = memo.get(key)
        if hit is not None and hit[0] is self:
            return hit[1]
        value = original(self)
        memo[key] = (self, value)     # keeps ``self`` alive, so its id is not reused within the run
        return value
    getter.csreturns_memoised = True
    return getter


def _memoised_id(original):
    def to_id(self, id_keys=None, id_ignore_keys=None):
        memo = _MEMO.get()
        if memo is None or id_keys is not None or id_ignore_keys is not None or len(self) < 2:
            return original(self, id_keys, id_ignore_keys)
        try:
            key = ("id", type(self), json.dumps(self, sort_keys=True, allow_nan=False))
        except (TypeError, ValueError):
            return original(self, id_keys, id_ignore_keys)
        value = memo.get(key)
        if value is None:
            value = memo[key] = original(self, id_keys, id_ignore_keys)
        return value
    to_id.csreturns_memoised = True
    return to_id


def _resolve_from_cache(original):
    def resolve(self, runtime_configuration=None, min_graph_edges_pbar_enable=0, show_progress_bars=True):
        cache = getattr(self._execution_engine, "_metric_cache", None)
        if not cache or _MEMO.get() is None:
            return original(self, runtime_configuration=runtime_configuration,
                            min_graph_edges_pbar_enable=min_graph_edges_pbar_enable,
                            show_progress_bars=show_progress_bars)
        resolved = {}
        for edge in self.edges:
            for metric in (edge.left, edge.right):
                if metric is not None and metric.id in cache:
                    resolved[metric.id] = cache[metric.id]
        aborted = self._resolve(metrics=resolved, runtime_configuration=runtime_configuration,
                                min_graph_edges_pbar_enable=min_graph_edges_pbar_enable,
                                show_progress_bars=show_progress_bars)
        return resolved, aborted
    resolve.csreturns_from_cache = True
    return resolve


def install_run_speedups() -> bool:
    """Install 1-3 of the note above, active only within ``run_speedups()``; idempotent. False, and nothing
    installed, on another GX version (``DuckdbValidator`` then uses no ``StagedInspector`` either)."""
    if not gx_version_supported():
        return False
    from great_expectations.core.id_dict import IDDict
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.validator.validation_graph import ValidationGraph

    if not getattr(Expectation.configuration.fget, "csreturns_memoised", False):
        Expectation.configuration = property(_memoised("configuration", Expectation.configuration.fget))
    if not getattr(ExpectationConfiguration.to_domain_obj, "csreturns_memoised", False):
        ExpectationConfiguration.to_domain_obj = _memoised("expectation", ExpectationConfiguration.to_domain_obj)
    if not getattr(IDDict.to_id, "csreturns_memoised", False):
        IDDict.to_id = _memoised_id(IDDict.to_id)
    if not getattr(ValidationGraph.resolve, "csreturns_from_cache", False):
        ValidationGraph.resolve = _resolve_from_cache(ValidationGraph.resolve)
    return True
