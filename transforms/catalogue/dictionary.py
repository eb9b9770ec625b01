"""The column dictionary: what every relation of the catalogue is and what each of its columns holds.

Derived from ``schemas/`` and the analytics modules' own column documentation, never edited by hand: the
catalogue holds it as ``column_dictionary`` and ``relations`` (and comments on each relation), and
``csreturns docs`` writes it as Markdown (docs/columns.md).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from transforms import schema
from transforms.analytics import council_risk, early_warning, indicators
from transforms.catalogue import councils, ees_views, holdings
from transforms.ingest import rules

# Relations computed from the returns rather than read from Parquet: name -> (grain, description, columns).
DERIVED = {**indicators.RELATIONS, **early_warning.RELATIONS, **council_risk.RELATIONS, **councils.RELATIONS}

LEDGER_DOC = {
    "load_id": "Identifier of this arrival (sortable by time); every loaded row carries it",
    "path": "Where the file was found", "relpath": "Path relative to the landing area",
    "sha256": "Checksum of the bytes received", "bytes": "File size", "format": "csv, xml or ees_csv",
    "collection": "Collection recognised (published for every EES file: its dataset says which ees_ collection owns it)",
    "table": "Table recognised (null when the file holds several)",
    "tables": "Tables the file holds", "dataset": "Published dataset (published statistics only)",
    "la_code": "3-digit old LA code of the sending council", "return_year": "Return year (ending 31 March)",
    "year_source": "How the year was found: folder, header, name or content",
    "received_at": "When the file was ingested (UTC)",
    "status": "loaded, partly_loaded (some rows quarantined), rejected, duplicate, or superseded (loaded, and "
              "every row since replaced by a resubmission: see superseded_by)",
    "rows_in": "Data rows in the file",
    "rows_loaded": "Rows the file loaded; those of the loads not superseded are the rows the repository holds",
    "rows_quarantined": "Rows kept in quarantine instead (rows_in = rows_loaded + rows_quarantined)",
    "gx_success": "Whether every Great Expectations expectation passed",
    "reason": "Why a file was rejected or is a duplicate", "duplicate_of": "Load that first brought these bytes",
    "replaces": "Earlier loads whose partitions this load replaced (resubmission)",
    "superseded_by": "For a superseded load: the later load that replaced the last of its rows",
    "normalised": "Values made canonical before validation, per 'FIELD: kind' (a code's case or .0 tail, an id's spaces, a postcode's spacing): how many",
}
QUARANTINE_DOC = {
    "load_id": "The arrival the row came in", "collection": "Collection", "table_name": "Relation the row was for",
    "la_code": "Sending council", "return_year": "Return year",
    "source_row": "Line (CSV) or element line (XML) in the source file; null for a whole-file rejection",
    "field": "Field(s) that failed", "rule": "Rule(s) broken (code_list, date, required, duplicate_key, ...)",
    "message": "What is wrong, naming the value", "failures": "Every failure of the row",
    "raw": "The raw values (identifiers pseudonymised, other sensitive values withheld unless they failed)",
}
PUBLISHED_DOC = {
    "dataset": "Published dataset id (schemas/published.yaml)", "time_period": "EES time period (YYYY or YYYYYY)",
    "time_identifier": "EES time identifier", "geographic_level": "National, Regional or Local authority",
    "country_code": "Country code", "country_name": "Country", "region_code": "Region code",
    "region_name": "Region", "old_la_code": "3-digit old LA code", "new_la_code": "9-character ONS LA code",
    "la_name": "Local authority", "breakdowns": "Breakdown columns of the source file (e.g. age group) as a map",
    "measure": "Measure (source column name)", "value": "Value (null where suppressed)",
    "value_symbol": "Suppression symbol where the cell was not a number (c, z, x, k, low, ...)",
    "period_end": "Last day of the period the figure describes",
    "published_on": "When the figure became public (declared per dataset): early warning never uses it before",
    "source_row": "Row in the source file", "load_id": "The arrival that loaded it",
}

DICTIONARY_DOC = {
    "relation": "Relation (view or table) in this catalogue", "column_name": "Column",
    "type": "DuckDB type", "description": "What the column holds", "codes": "Valid codes (latest year) and labels",
    "source_field": "Field name in the return as councils send it", "collection": "Collection id (schemas/)",
}
RELATIONS_DOC = {
    "relation": "Relation in this catalogue", "collection": "Collection id (schemas/)",
    "grain": "What one row is", "description": "What the relation holds",
}


def dictionary() -> pd.DataFrame:
    """Every relation and column, derived from the schemas (also written to docs/columns.md)."""
    rows = []
    for coll in schema.collections().values():
        if coll.is_published:
            continue
        for table in coll.tables():
            if coll.kind == "reference":  # national lookups: no sending council; the year is the edition's
                rows.append((table.relation, "return_year", "INTEGER", "Year of the model or snapshot (file name or year=YYYY folder)", None, None, coll.id))
            else:
                rows.append((table.relation, "la_code", "VARCHAR", "3-digit old LA code of the sending council", None, None, coll.id))
                rows.append((table.relation, "return_year", "INTEGER", "Return year (the year ending 31 March)", None, None, coll.id))
            for col in table.columns:
                if not col.kept:
                    continue
                codes = ", ".join(f"{k}" + (f" ({v})" if v else "") for k, v in col.codes.items()) if col.codes else None
                rows.append((table.relation, col.out, col.duckdb_type, col.description, codes,
                             col.name, coll.id))
            for key in table.sequence_keys:
                rows.append((table.relation, key, "INTEGER", f"Position of the {key.removesuffix('_seq')} within its parent (1-based)", None, None, coll.id))
            rows.append((table.relation, "source_row", "BIGINT", "Line or XML element line in the source file", None, None, coll.id))
            rows.append((table.relation, "load_id", "VARCHAR", "The arrival that loaded this row (see load_ledger)", None, None, coll.id))
    for relation, (_, _, columns) in DERIVED.items():
        for name, (sql_type, text) in columns.items():
            rows.append((relation, name, sql_type, text, None, None, None))
    rows += ees_views.dictionary_rows()
    for name, (sql_type, text) in holdings.COLUMNS.items():
        rows.append(("collections", name, sql_type, text, None, None, None))
    for relation, doc in (("published_statistics", PUBLISHED_DOC), ("load_ledger", LEDGER_DOC),
                          ("quarantine", QUARANTINE_DOC), ("column_dictionary", DICTIONARY_DOC),
                          ("relations", RELATIONS_DOC), ("validation_rules", rules.RULES_DOC),
                          ("validation_errors", rules.ERRORS_DOC)):
        for name, text in doc.items():
            rows.append((relation, name, None, text, None, None, None))
    return pd.DataFrame(rows, columns=["relation", "column_name", "type", "description", "codes",
                                       "source_field", "collection"])


def relations() -> pd.DataFrame:
    rows = []
    for coll in schema.collections().values():
        if coll.is_published:
            rows.append(("published_statistics", coll.id, "LA / period / measure", coll.title +
                         ": every EES file in long form, one row per measure cell"))
            continue
        for table in coll.tables():
            rows.append((table.relation, coll.id, coll.grain, table.description))
    rows += ees_views.relation_rows()
    for relation, (grain, description, _) in DERIVED.items():
        rows.append((relation, None, grain, description))
    rows.append(("collections", None, "collection", "Every declared collection (schemas/) and what the repository holds of it"))
    rows.append(("load_ledger", None, "file", "One row per file ever received, with its fate and row counts"))
    rows.append(("quarantine", None, "row", "One row per rejected row or file, with the reason"))
    rows.append(("validation_rules", None, "rule", "The DfE validation rules checked on each return (schemas/rules/), with code and message"))
    rows.append(("validation_errors", None, "failing record / rule", "One row per record failing a DfE validation rule in the latest check of each return, with the source row"))
    rows.append(("column_dictionary", None, "column", "What each column of each relation holds"))
    rows.append(("relations", None, "relation", "The relations of this catalogue"))
    return pd.DataFrame(rows, columns=["relation", "collection", "grain", "description"])




def _cell(value) -> str:
    if value is None or value != value:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def column_docs() -> str:
    docs = dictionary()
    lines = ["# Column dictionary", "",
             "Generated from `schemas/` by `csreturns docs`; the same text is in the DuckDB catalogue as "
             "`column_dictionary`, `relations` and comments on each relation.", ""]
    changes = []
    for coll in schema.collections().values():
        for year, items in sorted(coll.changes.items()):
            for change in items:
                if change.get("note"):
                    changes.append(f"- {coll.id} {year}: {change['note']}")
    if changes:
        lines += ["## Year-by-year changes declared", "", *changes, ""]
    for rel in relations().itertuples():
        cols = docs[docs["relation"] == rel.relation]
        if cols.empty:
            continue
        lines += [f"## `{rel.relation}`", "", _cell(rel.description), "",
                  "| column | type | description | codes | source field |", "|---|---|---|---|---|"]
        for c in cols.itertuples():
            lines.append(f"| `{c.column_name}` | {_cell(c.type)} | {_cell(c.description)} | {_cell(c.codes)} "
                         f"| {_cell(c.source_field)} |")
        lines.append("")
    return "\n".join(lines)


def write_column_docs(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(column_docs(), encoding="utf-8")
    return out
