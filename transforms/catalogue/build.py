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

from transforms import schema
from transforms.analytics import council_risk, early_warning, indicators
from transforms.catalogue import ees_views, holdings
from transforms.catalogue.dictionary import dictionary, relations
from transforms.ingest import rules
from transforms.sql import literal
from transforms.store.repository import (
    DATA_FILE,
    LEDGER_SCHEMA,
    PUBLISHED_SCHEMA,
    QUARANTINE_SCHEMA,
    Repository,
)

PARTITION_TYPES = "{'la_code': 'VARCHAR', 'return_year': 'INTEGER'}"

# The oldest DuckDB release whose clients must open the catalogue: 1.4 is DuckDB's long-term-support line,
# and analysts' R packages, DBeaver drivers and the CLI from PyPI's ``duckdb-cli`` bundle 1.4 or 1.5. A file
# written with DuckDB 2.x's default storage (version number 69) is refused by every 1.x client ("we can only
# read 64-68"), so the catalogue is written in the 1.4 storage format, which 1.4, 1.5 and 2.x all read
# (DuckDB's ``storage_compatibility_version`` setting; tests/test_readme_clients.py opens it in 1.4 and 1.5).
STORAGE_VERSION = "v1.4.0"


def _glob(repo: Repository, relative: str) -> str:
    return (repo.parquet / relative).as_posix()


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
        select = ['CAST("dataset" AS INTEGER) AS return_year']
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
        import pyarrow as pa
        empty = pa.Table.from_pylist([], schema=PUBLISHED_SCHEMA)
        con.register("published_empty", empty)
        con.execute("CREATE TABLE published_statistics AS SELECT CAST(NULL AS VARCHAR) AS dataset, * FROM published_empty")
        con.unregister("published_empty")


def build(repo: Repository, path: Path) -> None:
    """Write the catalogue into a new DuckDB file at ``path`` in storage format ``STORAGE_VERSION``."""
    con = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})
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
        for coll in ees_views.collections():
            ees_views.create_view(con, coll)
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
