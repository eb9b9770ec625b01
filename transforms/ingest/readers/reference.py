"""National reference CSVs (statistical neighbours, Ofsted lists) into raw text tables.

These files are made for people, not pipelines: a title above the header, the same heading twice
("SN1, SNP, SN2, SNP ..."), spelling that changes between editions ("LA num" / "old_la_code"), trailing
empty columns, blank rows and notes between sections. So the header row is found by content with the
schema's ``aliases`` (the XLSX reader's matching), columns are taken by position, and a table may declare
``repeat``: numbered column groups unpivoted to one row per group::

    repeat: {pattern: "^SN_?(\\d+)$", index: rank, value: neighbour_code, followed_by: [closeness]}

turns ``SN1, SNP, SN2, SNP`` into rows (rank 1, neighbour, closeness), (rank 2, ...). A group whose value
is empty yields no row. Dates become ISO and ``labelled_codes`` are decoded as in the XLSX reader;
``case: sentence`` evens out labels that editions capitalise differently ("Very Close" / "Very close").
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.text import read_text
from transforms.ingest.readers.xlsx import (
    HEADER_SCAN_ROWS,
    decode_labelled,
    match_header,
    normalise,
    to_iso_date,
)
from transforms.schema import Collection, Table


def _wanted(coll: Collection, table: Table) -> dict[str, list[str]]:
    """Header spellings per source column (name and aliases), leaving out what ``repeat`` produces."""
    spec = coll.base_tables[table.name]
    produced = _produced(spec.get("repeat"))
    raw = {c["name"]: c for c in spec["columns"]}
    return {c.name: [normalise(n) for n in [c.name, *raw.get(c.name, {}).get("aliases", [])] if normalise(n)]
            for c in table.columns if c.name not in produced}


def _produced(repeat: dict | None) -> set[str]:
    if not repeat:
        return set()
    return {repeat["index"], repeat["value"], *repeat.get("followed_by", [])}


def find_header(rows: list[list[str]], coll: Collection, table: Table) -> tuple[int, dict[str, int]] | None:
    """(index of the header row, column -> position), or None when no row in the first lines names the
    table's required columns and either half of the declared ones or, as the XLSX reader allows (a short
    list: a council, its code, the date and the grade), at least two that make up half of its filled cells."""
    wanted = _wanted(coll, table)
    required = [c for c in table.required if c in wanted]
    need = max(1, min(len(wanted), (len(wanted) + 1) // 2))
    least = min(2, len(wanted))
    for i, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        found = match_header(cells, wanted)
        filled = sum(1 for c in cells if str(c).strip())
        enough = len(found) >= need or (len(found) >= least and len(found) >= 0.5 * filled)
        if found and enough and all(r in found for r in required):
            return i, found
    return None


def header_score(path: Path, coll: Collection, table: Table) -> int:
    """How many of the table's columns the file's header names (0: not this table)."""
    rows = _rows(path)
    found = find_header(rows, coll, table)
    return len(found[1]) if found else 0


def _rows(path: Path) -> list[list[str]]:
    text, _ = read_text(path)
    try:
        return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as exc:
        raise UnreadableFile(f"not a well-formed CSV: {exc}") from None


def read_reference_csv(path: Path, coll: Collection, table: Table) -> RawTables:
    rows = _rows(path)
    found = find_header(rows, coll, table)
    if found is None:
        raise UnreadableFile(f"no header row naming the columns of {table.relation} in the first "
                             f"{HEADER_SCAN_ROWS} lines (looked for {', '.join(_wanted(coll, table))[:200]})")
    header_index, positions = found
    header = rows[header_index]
    spec = coll.base_tables[table.name]
    repeat = spec.get("repeat")
    groups = _groups(header, repeat) if repeat else []
    raw_specs = {c["name"]: c for c in spec["columns"]}
    dates = {c.name for c in table.columns if c.type == "date"}
    sentence = {n for n, c in raw_specs.items() if c.get("case") == "sentence"}
    labelled = {c.name: c.codes for c in table.columns if raw_specs.get(c.name, {}).get("labelled_codes")}
    records = []
    for line, cells in enumerate(rows[header_index + 1:], start=header_index + 2):
        fixed = {name: _cell(cells, i) for name, i in positions.items()}
        if repeat:
            for number, value_at, extra_at in groups:
                value = _cell(cells, value_at)
                if value is None:
                    continue
                record = {"source_row": line, **fixed, repeat["index"]: number, repeat["value"]: value}
                record.update({name: _cell(cells, i) for name, i in zip(repeat.get("followed_by", []), extra_at)})
                records.append(record)
        elif any(v is not None for v in fixed.values()):
            records.append({"source_row": line, **fixed})
    for record in records:
        for name, value in record.items():
            if value is None or name == "source_row":
                continue
            if name in dates:
                record[name] = to_iso_date(value, value)
            elif name in labelled:   # "Good", "2: Good" or "2" -> the code
                record[name] = decode_labelled(value, labelled[name])
            elif name in sentence:
                record[name] = value[:1].upper() + value[1:].lower()
    df = pd.DataFrame(records, columns=["source_row", *table.names])
    df = df.astype({c: "str" for c in table.names})
    used = set(positions.values()) | {i for _, v, extra in groups for i in (v, *extra)}
    ignored = [h.strip() for i, h in enumerate(header) if h.strip() and i not in used]
    meta = {"header_row": str(header_index + 1)}
    if ignored:
        meta["ignored_columns"] = ", ".join(dict.fromkeys(ignored))
    return RawTables({table.name: df}, meta)


def _groups(header: list[str], repeat: dict) -> list[tuple[str, int, list[int]]]:
    """(number, position of the value, positions of the columns that follow it) per numbered group."""
    pattern = re.compile(repeat["pattern"], re.IGNORECASE)
    follow = len(repeat.get("followed_by", []))
    groups = []
    for i, name in enumerate(header):
        m = pattern.match(name.strip())
        if m:
            groups.append((str(int(m.group(1))), i, list(range(i + 1, i + 1 + follow))))
    if not groups:
        raise UnreadableFile(f"no column matches {repeat['pattern']} (the numbered {repeat['value']} columns)")
    return groups


def _cell(cells: list[str], i: int) -> str | None:
    if i >= len(cells):
        return None
    value = cells[i].strip()
    return value or None
