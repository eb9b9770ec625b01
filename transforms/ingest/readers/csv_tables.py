"""Flat CSV returns (SSDA903 tables, school census extracts): one file is one table.

Headers are matched to the schema tolerantly (case, spaces, a BOM); values are kept as text.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.text import read_text
from transforms.schema import Table


def normalise_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff")).upper()


def read_csv_strings(path: Path) -> tuple[pd.DataFrame, str]:
    """All cells as text (None when empty), blank lines dropped, ``source_row`` = line number in the file."""
    text, encoding = read_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""],
                         skip_blank_lines=False, engine="c")
    except pd.errors.ParserError as exc:
        raise UnreadableFile(f"not a well-formed CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise UnreadableFile("empty file: no header row") from None
    df = df.dropna(how="all")
    df.insert(0, "source_row", df.index.to_numpy() + 2)  # line 1 is the header
    for col in df.columns[1:]:
        df[col] = df[col].str.strip().replace("", None)
    return df.reset_index(drop=True), encoding


def read_table(path: Path, table: Table) -> RawTables:
    df, encoding = read_csv_strings(path)
    wanted = {normalise_header(c.name): c.name for c in table.columns}
    rename = {col: wanted[normalise_header(col)] for col in df.columns[1:] if normalise_header(col) in wanted}
    missing = [c for c in table.required if c not in rename.values()]
    if missing:
        raise UnreadableFile(
            f"{table.relation}: required column(s) {', '.join(missing)} missing from the header row")
    df = df.rename(columns=rename)
    extra = [c for c in df.columns[1:] if c not in wanted.values()]
    for col in table.names:
        if col not in df.columns:
            df[col] = None
    meta = {"encoding": encoding}
    if extra:
        meta["ignored_columns"] = ", ".join(extra)
    return RawTables({table.name: df[["source_row", *table.names]]}, meta)
