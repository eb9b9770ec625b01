"""Small DuckDB helpers shared by the catalogue and the relations computed into it."""
from __future__ import annotations

import duckdb
import pandas as pd


def literal(text) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + str(text).replace("'", "''") + "'"


def create_table_from_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame,
                            columns: dict[str, tuple[str, str]], order_by: str = "") -> None:
    """(Re)create ``name`` from a DataFrame with the declared types (``columns``: name -> (type, doc)),
    so an empty frame still gives a correctly typed table."""
    view = f"_{name}_frame"
    select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, (t, _) in columns.items())
    con.register(view, frame)
    try:
        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT {select} FROM "{view}"'
                    + (f" ORDER BY {order_by}" if order_by else ""))
    finally:
        con.unregister(view)
