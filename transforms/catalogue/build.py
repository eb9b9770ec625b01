"""The DuckDB catalogue analysts open: documented views over the Parquet repository.

The catalogue holds no data of its own, only views over the Parquet files and the column dictionary
derived from ``schemas/``. Its views list the files of one committed snapshot of the repository
(``Repository.snapshot``: the manifest a commit swaps in with one ``os.replace``), and so do its ledger,
quarantine and validation errors, so a reader sees one commit or the next, never a mix of the two. It is
rebuilt into a new file and swapped in with ``os.replace``, so an analyst's open connection keeps working
and never sees a half-built catalogue; a writer lock keeps builds one at a time.
"""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from transforms import schema
from transforms.analytics import council_risk, early_warning, indicators
from transforms.catalogue import councils, ees_views, holdings
from transforms.catalogue.dictionary import dictionary, relations
from transforms.ingest import rules
from transforms.sql import literal
from transforms.store import faults
from transforms.store.repository import (
    LEDGER_SCHEMA,
    PUBLISHED_SCHEMA,
    QUARANTINE_SCHEMA,
    OutOfSpace,
    Repository,
    SUPERSEDED,
    Snapshot,
    is_out_of_space,
)

PARTITION_TYPES = "{'la_code': 'VARCHAR', 'return_year': 'INTEGER'}"

# The oldest DuckDB release whose clients must open the catalogue: 1.4 is DuckDB's long-term-support line,
# and analysts' R packages, DBeaver drivers and the CLI from PyPI's ``duckdb-cli`` bundle 1.4 or 1.5. A file
# written with DuckDB 2.x's default storage (version number 69) is refused by every 1.x client ("we can only
# read 64-68"), so the catalogue is written in the 1.4 storage format, which 1.4, 1.5 and 2.x all read
# (DuckDB's ``storage_compatibility_version`` setting). tests/test_readme.py opens it in 1.4 and 1.5 and runs
# the README's queries there.
STORAGE_VERSION = "v1.4.0"


def _files(files: list[Path]) -> str:
    """A DuckDB list literal of the files of a snapshot (what ``read_parquet`` reads, and nothing newer)."""
    return "[" + ", ".join(literal(Path(f).as_posix()) for f in files) + "]"


def _create_return_view(con, repo: Repository, table: schema.Table, all_years: list[schema.Table],
                        snapshot: Snapshot) -> None:
    files = snapshot.files(f"collection={table.collection}/table={table.name}/")
    columns: dict[str, str] = {"la_code": "VARCHAR", "return_year": "INTEGER"}
    for spec in all_years:
        for col in spec.columns:
            if col.kept:
                columns.setdefault(col.out, col.duckdb_type)
    for key in table.sequence_keys:
        columns[key] = "INTEGER"
    columns.update({"source_row": "BIGINT", "load_id": "VARCHAR"})
    present: set[str] = set()
    if files:
        source = (f"read_parquet({_files(files)}, hive_partitioning=true, hive_types={PARTITION_TYPES}, "
                  f"union_by_name=true)")
        present = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    else:
        source = "(SELECT 1 WHERE false)"
    select = ", ".join(f'"{c}"' if c in present else f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items())
    con.execute(f'CREATE VIEW "{table.relation}" AS SELECT {select} FROM {source}')


def _create_file_view(con, name: str, directory: Path, arrow_schema) -> None:
    files = sorted(directory.glob("*.parquet"))  # immutable files: the view lists those committed now
    if files:
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({_files(files)}, union_by_name=true)')
    else:
        import pyarrow as pa  # an empty, correctly typed relation until the first file arrives
        empty = pa.Table.from_pylist([], schema=arrow_schema)
        con.register(f"{name}_empty", empty)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "{name}_empty"')
        con.unregister(f"{name}_empty")


def _create_ledger_view(con, repo: Repository, snapshot: Snapshot) -> None:
    """``load_ledger``: the ledger's files as written, with a load whose rows resubmissions replaced read as
    ``superseded`` and ``superseded_by`` naming the load that replaced them (``Repository.superseded``, as of
    ``snapshot``)."""
    files = sorted(repo.ledger_dir.glob("*.parquet"))
    if not files:
        _create_file_view(con, "load_ledger", repo.ledger_dir, LEDGER_SCHEMA)
        con.execute("ALTER TABLE load_ledger ADD COLUMN superseded_by VARCHAR")
        return
    gone = repo.superseded(snapshot)
    values = ", ".join(f"({literal(old)}, {literal(new)})" for old, new in sorted(gone.items()))
    replaced = (f"(VALUES {values}) AS s(load_id, superseded_by)" if values else
                "(SELECT NULL::VARCHAR AS load_id, NULL::VARCHAR AS superseded_by WHERE false) AS s")
    con.execute(f"""CREATE VIEW load_ledger AS
        SELECT l.* REPLACE (CASE WHEN s.superseded_by IS NULL THEN l.status ELSE {literal(SUPERSEDED)} END AS status),
               s.superseded_by
        FROM read_parquet({_files(files)}, union_by_name=true) l LEFT JOIN {replaced} USING (load_id)
        ORDER BY l.load_id""")


def _create_reference_view(con, repo: Repository, table: schema.Table, snapshot: Snapshot) -> None:
    """A national lookup: partitioned by edition year only (its rows carry their own la_code)."""
    files = snapshot.files(f"collection={table.collection}/table={table.name}/")
    columns = {"return_year": "INTEGER", **{c.out: c.duckdb_type for c in table.columns if c.kept},
               "source_row": "BIGINT", "load_id": "VARCHAR"}
    if files:
        source = f"read_parquet({_files(files)}, hive_partitioning=true, union_by_name=true)"
        present = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        present.discard("return_year")
        select = ['CAST("dataset" AS INTEGER) AS return_year']
    else:
        source, present, select = "(SELECT 1 WHERE false)", set(), ["CAST(NULL AS INTEGER) AS return_year"]
    select += [f'"{c}"' if c in present else f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items() if c != "return_year"]
    con.execute(f'CREATE VIEW "{table.relation}" AS SELECT {", ".join(select)} FROM {source}')


def _create_published_view(con, repo: Repository, snapshot: Snapshot) -> None:
    files = snapshot.files("collection=published/table=published_statistics/")
    if files:
        # National and regional rows carry no la_name in EES files: name them by their country ("England")
        # and region, so `la_name = 'England'` finds the national figure beside the councils'.
        con.execute(f"""CREATE VIEW published_statistics AS
            SELECT dataset, * EXCLUDE (dataset, collection, "table")
                   REPLACE (CASE WHEN geographic_level = 'National' THEN coalesce(la_name, country_name)
                                 WHEN geographic_level = 'Regional' THEN coalesce(la_name, region_name)
                                 ELSE la_name END AS la_name)
            FROM read_parquet({_files(files)}, hive_partitioning=true, union_by_name=true)""")
    else:
        import pyarrow as pa
        empty = pa.Table.from_pylist([], schema=PUBLISHED_SCHEMA)
        con.register("published_empty", empty)
        con.execute("CREATE TABLE published_statistics AS SELECT CAST(NULL AS VARCHAR) AS dataset, * FROM published_empty")
        con.unregister("published_empty")


def _pin_validation_errors(con, repo: Repository, snapshot: Snapshot) -> None:
    """``validation_errors`` as of ``snapshot``: per return, the latest check made on exactly the loads the
    snapshot holds (``rule_runs.loads``), so errors of a replaced load vanish with the commit that replaced
    it, and a return whose check is still pending shows none until it is checked (``csreturns doctor``).
    A later check of the same loads (``csreturns errors --recheck``) shows at once."""
    runs_dir, errors_dir = repo.root / rules.RUNS_DIR, repo.root / rules.ERRORS_DIR
    run_files, error_files = sorted(runs_dir.glob("*.parquet")), sorted(errors_dir.glob("*.parquet"))
    if not run_files or not error_files:
        return                                   # rules.build_catalogue made an empty table
    current = snapshot.loads_by_return()
    values = ", ".join(f"({literal(c)}, {literal(la)}, {int(y)}, [{', '.join(literal(x) for x in loads)}])"
                       for (c, la, y), loads in sorted(current.items()))
    held = (f"(VALUES {values}) AS held(collection, la_code, return_year, loads)" if values else
            "(SELECT NULL::VARCHAR AS collection, NULL::VARCHAR AS la_code, NULL::INTEGER AS return_year, "
            "NULL::VARCHAR[] AS loads WHERE false) AS held")
    con.execute("DROP VIEW validation_errors")
    con.execute(rules.ERRORS_VIEW_SQL.format(
        name="validation_errors",
        runs=f"""(SELECT r.* FROM read_parquet({_files(run_files)}) r JOIN {held}
                 ON r.collection = held.collection AND r.la_code = held.la_code
                 AND r.return_year = held.return_year AND list_sort(r.loads) = held.loads)""",
        errors=f"read_parquet({_files(error_files)})"))


def build(repo: Repository, path: Path, snapshot: Snapshot | None = None) -> None:
    """Write the catalogue into a new DuckDB file at ``path`` in storage format ``STORAGE_VERSION``, over
    ``snapshot`` (default: the last committed one)."""
    snapshot = snapshot or repo.snapshot()
    con = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})
    try:
        for coll in schema.collections().values():
            if coll.is_published:
                continue
            if coll.kind == "reference":
                for table in coll.tables():
                    _create_reference_view(con, repo, table, snapshot)
                continue
            for name in coll.table_names:
                years = [coll.table(name, y) for y in [None, *coll.change_years]]
                _create_return_view(con, repo, coll.table(name), years, snapshot)
        _create_published_view(con, repo, snapshot)
        councils.build_councils(con)  # after statistical_neighbours
        for coll in ees_views.collections():
            ees_views.create_view(con, coll)
        con.register("collections_df", holdings.holdings(repo.root))
        con.execute("CREATE TABLE collections AS SELECT * FROM collections_df")
        con.unregister("collections_df")
        _create_ledger_view(con, repo, snapshot)
        _create_file_view(con, "quarantine", repo.quarantine_dir, QUARANTINE_SCHEMA)
        rules.build_catalogue(con, repo)
        _pin_validation_errors(con, repo, snapshot)
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
    """Run the DfE checks a kill left pending, rebuild the catalogue beside the old one on the last
    committed snapshot, swap it in atomically, pin its snapshot and drop versions no catalogue needs.

    Raises ``OutOfSpace`` (naming the repository; the old catalogue stays) if the disk fills up."""
    from transforms.ingest.resume import run_pending

    run_pending(repo)
    with repo.writer_lock():
        tmp = repo.root / f".csreturns.duckdb.building-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        snapshot, revision = repo.snapshot(), repo.revision()
        try:
            build(repo, tmp, snapshot)
            faults.point("catalogue.build", tmp)
            os.replace(tmp, repo.catalogue_path)
            repo.record_catalogue(revision)
        except Exception as exc:
            for f in (tmp, tmp.with_name(tmp.name + ".wal")):
                f.unlink(missing_ok=True)
            if not is_out_of_space(exc):
                raise
            raise OutOfSpace(f"out of disk space in the repository {repo.root} while building the catalogue: "
                             "the previous catalogue is kept and every committed load is safe. Free some space "
                             "and run `csreturns refresh` again.") from None
        repo.pin(snapshot)
        repo.collect_garbage()
        return repo.catalogue_path
