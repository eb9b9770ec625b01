"""Published EES datasets as collections: each schema under ``schemas/ees/`` (and ``population.yaml``)
declares one dataset's breakdowns and measures with their units.

All EES files land in the one long ``published_statistics`` relation (indicators select from it by
dataset id); a dataset schema adds a stricter GX suite (``transforms.ingest.validate.build_ees_suite``)
and, here, a wide view per dataset, one row per row of the source file, for analysts who want the
publication's own shape.
"""
from __future__ import annotations

from transforms import schema
from transforms.schema import UNITS, breakdowns, measures
from transforms.sql import literal

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


def view_name(coll: schema.Collection) -> str:
    return coll.spec.get("view", coll.id)


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
