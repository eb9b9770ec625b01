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
