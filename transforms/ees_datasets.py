"""Published EES datasets as collections: each schema under ``schemas/ees/`` (and ``population.yaml``)
declares one dataset's breakdowns and measures with their units.

All EES files still land in the one long ``published_statistics`` relation (indicators select from it by
dataset id); what a dataset schema adds is a stricter GX suite (its declared measures are expected, and
each must be a number in its unit's range or a suppression symbol) and a wide view per dataset, one row
per row of the source file, for analysts who want the publication's own shape.
"""
from __future__ import annotations

from typing import ClassVar

import great_expectations as gx
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial

from transforms import schema
from transforms.sql import literal
from transforms.validate import _meta, build_published_suite

# unit -> (min, max, what it is). Bounds are what no published figure of that unit can break.
UNITS = {
    "count": (0, None, "number of children, workers or events (EES rounds many to the nearest 10)"),
    "percent": (0, 100, "percentage"),
    "rate": (0, None, "rate per 10,000 (or as the measure name says)"),
    "fte": (0, None, "full-time equivalent"),
    "days": (0, None, "days"),
    "ratio": (0, None, "ratio (e.g. cases per case-holding FTE)"),
    "amount": (0, None, "amount in pounds"),
    "number": (None, None, "number (may be negative)"),
}
KEY_DOC = {
    "time_period": ("VARCHAR", "EES time period (YYYY or YYYYYY)"),
    "time_identifier": ("VARCHAR", "EES time identifier"),
    "geographic_level": ("VARCHAR", "National, Regional or Local authority"),
    "country_code": ("VARCHAR", "Country code"), "country_name": ("VARCHAR", "Country"),
    "region_code": ("VARCHAR", "Region code"), "region_name": ("VARCHAR", "Region"),
    "old_la_code": ("VARCHAR", "3-digit old LA code"), "new_la_code": ("VARCHAR", "9-character ONS LA code"),
    "la_name": ("VARCHAR", "Local authority"),
}
TAIL_DOC = {
    "period_end": ("DATE", "Last day of the period the figures describe"),
    "published_on": ("DATE", "When the figures became public (declared in the dataset's schema)"),
    "suppressed": ("MAP(VARCHAR, VARCHAR)", "Measures published as a symbol instead of a number (measure -> c, z, x, k ...)"),
    "source_row": ("BIGINT", "Row in the source file"),
    "load_id": ("VARCHAR", "The arrival that loaded it (see load_ledger)"),
}


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


def measures(coll: schema.Collection) -> dict[str, dict]:
    """Declared measures (lower case, as the EES reader names columns) with their unit."""
    out = {}
    for name, spec in (coll.spec.get("measures") or {}).items():
        spec = dict(spec or {})
        if spec.get("unit", "number") not in UNITS:
            raise schema.SchemaError(f"{coll.path.name}: measure {name} has unknown unit {spec.get('unit')!r} "
                                     f"(one of {', '.join(UNITS)})")
        out[str(name).lower()] = spec
    return out


def breakdowns(coll: schema.Collection) -> list[str]:
    return [str(b).lower() for b in coll.spec.get("breakdowns") or []]


def view_name(coll: schema.Collection) -> str:
    return coll.spec.get("view", coll.id)


def build_ees_suite(coll: schema.Collection, found: list[str]) -> gx.ExpectationSuite:
    """The catch-all EES checks, plus: every declared measure and breakdown is present (a structure
    check: a missing one is reported, the rows still load) and each declared measure is in range."""
    expectations = list(build_published_suite(coll, [m for m in found if m not in measures(coll)]).expectations)
    symbols = sorted(str(s).lower() for s in coll.spec["suppression_symbols"])
    for name in [*breakdowns(coll), *measures(coll)]:
        expectations.append(gx.expectations.ExpectColumnToExist(
            column=name, meta=_meta(name, "structure", f"{coll.id} declares {name}")))
    for name, spec in measures(coll).items():
        if name not in found:
            continue
        low, high, _ = UNITS[spec.get("unit", "number")]
        low, high = spec.get("min", low), spec.get("max", high)
        bounds = "" if low is None and high is None else f" in {low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        expectations.append(ExpectColumnValuesToBeNumbersOrSymbolsWithin(
            column=name, symbols=symbols, min_value=low, max_value=high,
            meta=_meta(name, "number_or_symbol", f"{name} {{value!r}} is neither a {spec.get('unit', 'number')}"
                       f"{bounds} nor a suppression symbol")))
    return gx.ExpectationSuite(name=f"{coll.id}.published_statistics", expectations=expectations)


def columns(coll: schema.Collection) -> dict[str, tuple[str, str]]:
    """The wide view's columns: name -> (DuckDB type, description)."""
    cols = {"dataset": ("VARCHAR", "Dataset id in published_statistics"), **KEY_DOC}
    for b in breakdowns(coll):
        cols[b] = ("VARCHAR", f"Breakdown column {b} of the source file")
    for name, spec in measures(coll).items():
        unit = spec.get("unit", "number")
        text = spec.get("description") or name.replace("_", " ").capitalize()
        cols[name] = ("DOUBLE", f"{text} ({UNITS[unit][2]}; null where suppressed"
                                f"{', UNCONFIRMED measure' if not coll.spec.get('confirmed') else ''})")
    cols.update(TAIL_DOC)
    return cols


def create_view(con, coll: schema.Collection) -> None:
    """One row per row of the source file, measures as columns (from ``published_statistics``)."""
    ds = literal(coll.dataset)
    select = [f"{literal(coll.dataset)} AS dataset"]
    select += [f'any_value("{k}") AS "{k}"' for k in KEY_DOC]
    select += [f"any_value(breakdowns[{literal(b)}]) AS \"{b}\"" for b in breakdowns(coll)]
    select += [f'max(value) FILTER (WHERE measure = {literal(m)}) AS "{m}"' for m in measures(coll)]
    select += ["any_value(period_end) AS period_end", "any_value(published_on) AS published_on",
               "map_from_entries(list({'k': measure, 'v': value_symbol}) FILTER (WHERE value_symbol IS NOT NULL)) AS suppressed",
               "source_row", "load_id"]
    con.execute(f'CREATE VIEW "{view_name(coll)}" AS SELECT {", ".join(select)} FROM published_statistics '
                f"WHERE dataset = {ds} GROUP BY load_id, source_row")


def collections() -> list[schema.Collection]:
    return [c for c in schema.collections().values() if c.kind == "ees"]


def dictionary_rows() -> list[tuple]:
    rows = []
    for coll in collections():
        for name, (sql_type, text) in columns(coll).items():
            rows.append((view_name(coll), name, sql_type, text, None, name if name in measures(coll) else None, coll.id))
    return rows


def relation_rows() -> list[tuple]:
    return [(view_name(c), c.id, "LA / period / breakdown",
             f"{c.title}: published_statistics for dataset {c.dataset}, one row per source row, measures as columns"
             + ("" if c.spec.get("confirmed") else " (UNCONFIRMED: declared from public descriptions)"))
            for c in collections()]
