"""Custom Great Expectations for return values, vectorised on pandas.

GX's own strftime expectation parses value by value (about 10 s per million rows here); returns carry
millions of dates, so these map expectations parse whole columns at once with pandas.
"""
from __future__ import annotations

from typing import ClassVar

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
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


class ExpectColumnValuesToBeNumbersOrSymbolsWithin(ColumnMapExpectation):
    """A published figure in its unit's range (a percentage in 0-100, a count not negative), or a symbol."""

    symbols: list[str] = []
    min_value: float | None = None
    max_value: float | None = None
    map_metric: ClassVar[str] = "column_values.csreturns_is_number_or_symbol_within"
    success_keys: ClassVar[tuple[str, ...]] = ("symbols", "min_value", "max_value", "mostly")
