"""Explore Education Statistics (EES) tidy CSVs into one long form.

Every EES file shares the same geography and time columns; the rest are either breakdowns (text such as
"Total" or "17 to 18 years") or measures (numbers, or a suppression symbol such as c, z, x, k). The long
form keeps each measure cell once, with its breakdowns as a map and the symbol kept beside a null value.
A column named by a measure's declared ``aliases`` (a later edition renaming it) is read as that measure
and the file's meta says so (``renamed_measures``: "children_count as number").
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.csv_tables import read_csv_strings
from transforms.schema import Collection

_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def column_name(header: str) -> str:
    """A file's column as it is named in long form, in schemas and in the wide view: trimmed, without a
    byte-order mark, lower case, and with ``%`` spelt ``percent`` (older files, such as the CSWW headline
    measures of 2017 to 2022, end names in ``_%``: ``turnover_rate_fte_%`` -> ``turnover_rate_fte_percent``),
    so that a measure name is an identifier SQL can use without quoting."""
    name = header.strip().lstrip("\ufeff").lower()
    name = re.sub(r"(?<=[a-z0-9])%", "_%", name)
    return name.replace("%", "percent")


def is_ees_header(columns: list[str], coll: Collection) -> bool:
    names = {column_name(c) for c in columns}
    return set(coll.spec["required_columns"]) <= names


def _measure_like(values: pd.Series, symbols: set[str]) -> bool:
    """Numbers or suppression symbols throughout: a column wholly suppressed (every cell ``x``, ``c`` or
    ``z``) is still a measure, with NULL values and the symbols kept, never a breakdown."""
    present = values.dropna()
    if present.empty:
        return True
    text = present.astype(str).str.replace(",", "", regex=False).str.strip()
    numeric = text.str.match(_NUMBER.pattern)
    symbol = text.str.lower().isin(symbols)
    return bool((numeric | symbol).all())


def _declared(path: Path, coll: Collection) -> tuple[set[str], set[str], dict[str, str]]:
    """(measures, breakdowns, other name -> measure) the dataset's schema (schemas/ees/) declares for this
    file, lower case; the last from each measure's ``aliases`` (names an edition of the file gives it)."""
    from transforms import schema
    dataset = coll.dataset_for(Path(path).name)[0]
    owner = schema.ees_collection_of(dataset)
    if owner is None:
        return set(), set(), {}
    spec = schema.collection(owner).spec
    measures = spec.get("measures") or {}
    renamed = {column_name(str(a)): str(m).lower() for m, ms in measures.items() for a in (ms or {}).get("aliases", [])}
    return ({str(m).lower() for m in measures}, {str(b).lower() for b in (spec.get("breakdowns") or [])}, renamed)


def read_ees(path: Path, coll: Collection) -> RawTables:
    df, encoding = read_csv_strings(path)
    names = [column_name(c) for c in df.columns[1:]]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UnreadableFile(f"EES file with more than one column named {', '.join(clashes)} "
                             "(once lower-cased and with % read as percent)")
    declared_measures, declared_breakdowns, renamed = _declared(path, coll)
    read_as = {n: renamed[n] for n in names if n in renamed}
    twice = sorted(m for m in set(read_as.values()) if m in names or list(read_as.values()).count(m) > 1)
    if twice:
        raise UnreadableFile(f"EES file with more than one column for the measure(s) {', '.join(twice)} "
                             "(a name and its declared alias)")
    names = [read_as.get(n, n) for n in names]
    df.columns = ["source_row", *names]
    missing = [c for c in coll.spec["required_columns"] if c not in df.columns]
    if missing:
        raise UnreadableFile(f"EES file without the standard column(s) {', '.join(missing)}")
    keys = [c for c in coll.spec["key_columns"] if c in df.columns]
    symbols = {str(s).lower() for s in coll.spec["suppression_symbols"]}
    others = [c for c in df.columns if c not in keys and c != "source_row"]
    measures = [c for c in others if c in declared_measures
                or (c not in declared_breakdowns and _measure_like(df[c], symbols))]
    breakdowns = [c for c in others if c not in measures]
    if not measures:
        raise UnreadableFile("EES file has no measure columns (no column of numbers)")
    wide = df[["source_row", *keys, *breakdowns, *measures]]
    return RawTables({"published_statistics": wide},
                     {"encoding": encoding, "measures": ",".join(measures), "breakdowns": ",".join(breakdowns),
                      **({"renamed_measures": ", ".join(f"{a} as {m}" for a, m in read_as.items())} if read_as else {})})


def to_long(wide: pd.DataFrame, measures: list[str], breakdowns: list[str], key_columns: list[str],
            symbols: set[str]) -> pd.DataFrame:
    """One row per (geography, period, breakdowns, measure); suppressed cells keep their symbol."""
    keys = [c for c in key_columns if c in wide.columns]
    long = wide.melt(id_vars=["source_row", *keys, *breakdowns], value_vars=measures,
                     var_name="measure", value_name="raw_value")
    text = long["raw_value"].astype("str").str.replace(",", "", regex=False).str.strip()
    is_symbol = text.str.lower().isin(symbols)
    long["value"] = pd.to_numeric(text.where(~is_symbol), errors="coerce")
    long["value_symbol"] = text.where(is_symbol).str.lower()
    for col in key_columns:
        if col not in long.columns:
            long[col] = None
    if breakdowns:
        long["breakdowns"] = [list(zip(breakdowns, vals)) for vals in
                              long[breakdowns].astype(object).where(long[breakdowns].notna(), None).itertuples(index=False, name=None)]
    else:
        long["breakdowns"] = [[] for _ in range(len(long))]
    return long.drop(columns=[*breakdowns, "raw_value"])
