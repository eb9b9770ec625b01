"""The DuckDB catalogue analysts open: documented views over the Parquet repository.

The catalogue holds no data of its own, only views (live over the Parquet files) and the column
dictionary derived from ``schemas/``. It is rebuilt into a new file and swapped in with ``os.replace``,
so an analyst's open connection keeps working and never sees a half-built catalogue; a writer lock
keeps builds one at a time.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from transforms import council_risk, early_warning, ees_datasets, holdings, indicators, rules, schema
from transforms.repository import DATA_FILE, LEDGER_SCHEMA, QUARANTINE_SCHEMA, Repository
from transforms.sql import literal

# Relations computed from the returns rather than read from Parquet: name -> (grain, description, columns).
DERIVED = {**indicators.RELATIONS, **early_warning.RELATIONS, **council_risk.RELATIONS}

PARTITION_TYPES = "{'la_code': 'VARCHAR', 'return_year': 'INTEGER'}"

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
    "status": "loaded, partly_loaded (some rows quarantined), rejected or duplicate",
    "rows_in": "Data rows in the file", "rows_loaded": "Rows now in the repository",
    "rows_quarantined": "Rows kept in quarantine instead (rows_in = rows_loaded + rows_quarantined)",
    "gx_success": "Whether every Great Expectations expectation passed",
    "reason": "Why a file was rejected or is a duplicate", "duplicate_of": "Load that first brought these bytes",
    "replaces": "Earlier loads whose partitions this load replaced (resubmission)",
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


def _glob(repo: Repository, relative: str) -> str:
    return (repo.parquet / relative).as_posix()


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
    rows += ees_datasets.dictionary_rows()
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
    rows += ees_datasets.relation_rows()
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


def _create_return_view(con, repo: Repository, table: schema.Table, all_years: list[schema.Table]) -> None:
    glob = _glob(repo, f"collection={table.collection}/table={table.name}/*/*/{DATA_FILE}")
    columns: dict[str, str] = {"la_code": "VARCHAR", "return_year": "INTEGER"}
    for spec in all_years:
        for col in spec.columns:
            if col.kept:
                columns.setdefault(col.out, col.duckdb_type)
    for key in table.sequence_keys:
        columns[key] = "INTEGER"
    columns.update({"source_row": "BIGINT", "load_id": "VARCHAR"})
    present: set[str] = set()
    if list(repo.parquet.glob(f"collection={table.collection}/table={table.name}/*/*/{DATA_FILE}")):
        source = (f"read_parquet({literal(glob)}, hive_partitioning=true, hive_types={PARTITION_TYPES}, "
                  f"union_by_name=true)")
        present = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    else:
        source = "(SELECT 1 WHERE false)"
    select = ", ".join(f'"{c}"' if c in present else f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items())
    con.execute(f'CREATE VIEW "{table.relation}" AS SELECT {select} FROM {source}')


def _create_file_view(con, name: str, directory: Path, arrow_schema) -> None:
    if list(directory.glob("*.parquet")):
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({literal((directory / "*.parquet").as_posix())}, union_by_name=true)')
    else:
        import pyarrow as pa  # an empty, correctly typed relation until the first file arrives
        empty = pa.Table.from_pylist([], schema=arrow_schema)
        con.register(f"{name}_empty", empty)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "{name}_empty"')
        con.unregister(f"{name}_empty")


def _create_reference_view(con, repo: Repository, table: schema.Table) -> None:
    """A national lookup: partitioned by edition year only (its rows carry their own la_code)."""
    rel = f"collection={table.collection}/table={table.name}/*/{DATA_FILE}"
    columns = {"return_year": "INTEGER", **{c.out: c.duckdb_type for c in table.columns if c.kept},
               "source_row": "BIGINT", "load_id": "VARCHAR"}
    if list(repo.parquet.glob(rel)):
        source = f"read_parquet({literal(_glob(repo, rel))}, hive_partitioning=true, union_by_name=true)"
        present = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        present.discard("return_year")
        select = [f'CAST("dataset" AS INTEGER) AS return_year']
    else:
        source, present, select = "(SELECT 1 WHERE false)", set(), ["CAST(NULL AS INTEGER) AS return_year"]
    select += [f'"{c}"' if c in present else f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items() if c != "return_year"]
    con.execute(f'CREATE VIEW "{table.relation}" AS SELECT {", ".join(select)} FROM {source}')


def _create_published_view(con, repo: Repository) -> None:
    rel = f"collection=published/table=published_statistics/*/{DATA_FILE}"
    if list(repo.parquet.glob(rel)):
        con.execute(f"""CREATE VIEW published_statistics AS
            SELECT dataset, * EXCLUDE (dataset, collection, "table")
            FROM read_parquet({literal(_glob(repo, rel))}, hive_partitioning=true, union_by_name=true)""")
    else:
        from transforms.pipeline import PUBLISHED_SCHEMA
        import pyarrow as pa
        empty = pa.Table.from_pylist([], schema=PUBLISHED_SCHEMA)
        con.register("published_empty", empty)
        con.execute("CREATE TABLE published_statistics AS SELECT CAST(NULL AS VARCHAR) AS dataset, * FROM published_empty")
        con.unregister("published_empty")


def build(repo: Repository, path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        for coll in schema.collections().values():
            if coll.is_published:
                continue
            if coll.kind == "reference":
                for table in coll.tables():
                    _create_reference_view(con, repo, table)
                continue
            for name in coll.table_names:
                years = [coll.table(name, y) for y in [None, *coll.change_years]]
                _create_return_view(con, repo, coll.table(name), years)
        _create_published_view(con, repo)
        for coll in ees_datasets.collections():
            ees_datasets.create_view(con, coll)
        con.register("collections_df", holdings.holdings(repo.root))
        con.execute("CREATE TABLE collections AS SELECT * FROM collections_df")
        con.unregister("collections_df")
        _create_file_view(con, "load_ledger", repo.ledger_dir, LEDGER_SCHEMA)
        _create_file_view(con, "quarantine", repo.quarantine_dir, QUARANTINE_SCHEMA)
        rules.build_catalogue(con, repo)
        docs = dictionary()
        con.register("docs_df", docs)
        con.execute("CREATE TABLE column_dictionary AS SELECT * FROM docs_df")
        rels = relations()
        con.register("rels_df", rels)
        con.execute("CREATE TABLE relations AS SELECT * FROM rels_df")
        indicators.build_indicators(con)  # empty but typed for an empty repository
        early_warning.build_early_warning(con)
        council_risk.build_council_risk(con)
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        for rel in rels.itertuples():
            kind = "VIEW" if kinds.get(rel.relation) == "VIEW" else "TABLE"
            con.execute(f'COMMENT ON {kind} "{rel.relation}" IS {literal(rel.description)}')
        for d in docs.itertuples():  # DuckDB keeps column comments on tables only
            if kinds.get(d.relation) == "BASE TABLE":
                con.execute(f'COMMENT ON COLUMN "{d.relation}"."{d.column_name}" IS {literal(d.description)}')
    finally:
        con.close()


def publish(repo: Repository) -> Path:
    """Rebuild the catalogue beside the old one and swap it in atomically."""
    with repo.writer_lock():
        tmp = repo.root / f".csreturns.duckdb.building-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        build(repo, tmp)
        os.replace(tmp, repo.catalogue_path)
        return repo.catalogue_path
