"""Flat CSV returns (SSDA903 tables, school census extracts): one file is one table.

Headers are matched to the schema tolerantly (case, spaces, a BOM); values are kept as text. Files as
spreadsheets save them are read as they are: blank or comma-only lines above the header and among or after
the rows are skipped (``source_row`` stays the line of the file), a trailing empty column is ignored, the
encoding is found by ``transforms.ingest.readers.text``. A file that is empty, only blank lines, or only a
header row is refused (``UnreadableFile``) with a reason that says exactly that.
"""
from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path

import pandas as pd

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.text import NotText, is_blank_line, leading_blank_lines, read_text
from transforms.schema import Table


def normalise_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff")).upper()


def empty_reason(path: Path) -> str | None:
    """Why a CSV holds nothing to read ("empty file: 0 bytes", "file holds only blank lines"), or None."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "empty file: 0 bytes"
    if size <= 1 << 20:
        try:
            text, _ = read_text(path)
        except NotText:
            return None
        if all(is_blank_line(line) for line in text.splitlines()):
            return f"file holds only blank lines ({size} bytes, no header row and no data)"
    return None


def read_csv_strings(path: Path) -> tuple[pd.DataFrame, str]:
    """All cells as text (None when empty), blank lines dropped, ``source_row`` = line number in the file.

    The header is the first line that is not blank. Raises ``UnreadableFile`` for a file that is empty,
    holds only blank lines, only a header row, is not text, or is not well-formed CSV.
    """
    reason = empty_reason(path)
    if reason:
        raise UnreadableFile(reason)
    try:
        text, encoding = read_text(path)
    except NotText as exc:
        raise UnreadableFile(str(exc)) from None
    skip = leading_blank_lines(text)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""],
                             skip_blank_lines=False, skiprows=skip, engine="c", index_col=False)
        if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
            _refuse_cells_beyond_header(text, skip)
    except pd.errors.ParserError as exc:
        raise UnreadableFile(f"not a well-formed CSV: {_parser_problem(exc, skip)}") from None
    except pd.errors.EmptyDataError:
        raise UnreadableFile("file holds only blank lines (no header row and no data)") from None
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed: ") and df[c].isna().all()]
    df = df.drop(columns=unnamed)           # a trailing (or stray) empty column: nothing in it, no name
    df = df.dropna(how="all")
    if df.empty:
        raise UnreadableFile(f"header row only (line {skip + 1}): no data rows")
    df.insert(0, "source_row", df.index.to_numpy() + 2 + skip)  # the header is line skip + 1
    for col in df.columns[1:]:
        df[col] = df[col].str.strip().replace("", None)
    return df.reset_index(drop=True), encoding


def _refuse_cells_beyond_header(text: str, skip: int) -> None:
    """Rows longer than the header lose their extra cells in pandas: harmless when those cells are empty
    (an export that ends rows with a separator), a silent loss when not, so then the file is refused."""
    reader = csv.reader(io.StringIO(text))
    width = None
    for row in reader:
        if reader.line_num <= skip:
            continue
        if width is None:
            width = len(row)
            continue
        if any(cell.strip() for cell in row[width:]):
            raise UnreadableFile(f"line {reader.line_num} has {len(row)} cells, the header {width}: "
                                 "a value beyond the last named column would be lost")


def _parser_problem(exc: Exception, skip: int) -> str:
    """pandas' tokenizer message in the file's terms (its line numbers already count the skipped lines)."""
    text = str(exc).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"line {m.group(2)} has {m.group(3)} fields, the header {m.group(1)}"
    return text.split("\n")[0][:200]


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
