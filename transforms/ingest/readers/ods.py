"""OpenDocument spreadsheets as published: MHCLG's revenue outturn (RO3, children's social care spend).

``read_ro3(path)`` reads ``RO3_LA_Data_<year>_data_by_LA.ods`` (python-calamine; the whole workbook is
about 0.9 MB) into one row per council, service and line:

``(ons_code, la_code, la_name, la_class, service, line, ro_code, value)``

- the data sheet is the one whose header row holds ``ONS Code`` and ``Local authority`` (in 2024-25
  ``RO3_LA_Data_202425``, header on row 7 under six rows of notes);
- the header is in two rows: the visible label (``Children's social care - Children Looked After - Net
  Current Expenditure (C7 = C3 - C6)``; the service and its line, the category sometimes joined by ``:``
  instead of `` - ``) and, in the hidden last row, the return's own code for the cell (``RO3-...``, kept as
  ``ro_code``);
- ``service`` is the label without its category and line (``Children Looked After of which residential
  care``), ``line`` one of Employees, Running Expenses, Total Expenditure, Sales Fees and Charges, Other
  Income, Total Income, Net Current Expenditure (the C1-C7 of the return);
- ``value``: pounds **thousands** as published; ``[x]`` (not returned in time), ``[z]`` (not relevant) and
  blank cells are missing, never zero;
- only councils with children's services: classes UA, MD, London (LB) and SC (shire counties), and only
  the columns of children's social care (the label starts with ``Children's social care``);
- ``la_code``: the 3-digit DfE code of the council with that ONS code (``schemas/councils.yaml``: its
  current or an earlier ONS code), NULL when none matches.

Raises ``ValueError`` naming the file when no sheet has the header.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from transforms import schema
from transforms.ingest.readers import RawTables

CSC_CLASSES = {"UA", "MD", "London", "LB", "SC"}
_COUNCIL = re.compile(r"^E0[6-9]\d{6}$|^E10\d{6}$")
MISSING = {"", "[x]", "[z]", "[c]", "x", "z", "c", ".."}
_LINE = re.compile(r"^(?P<service>.+?) - (?P<line>Employees|Running Expenses|Total Expenditure|Sales, Fees and Charges|"
                   r"Other Income|Total Income|Net Current Expenditure)(?: \(C\d.*\))?$")


def _header_row(rows: list[list]) -> int | None:
    for i, row in enumerate(rows[:50]):
        cells = {str(c).strip() for c in row}
        if "ONS Code" in cells and "Local authority" in cells:
            return i
    return None


def _number(v) -> float | None:
    if isinstance(v, (int, float)):
        return float(v)
    text = str(v).strip().replace(",", "")
    if text in MISSING:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _ons_to_la() -> dict[str, str]:
    out = {}
    for code, c in schema.councils().councils.items():
        out[c.ons] = code
        for other in c.other_ons:
            out.setdefault(other.code, code)
    return out


def read_ro3(path: Path | str) -> pd.DataFrame:
    """The children's social care lines of an RO3 workbook, long (see the module docstring)."""
    from python_calamine import CalamineWorkbook

    path = Path(path)
    wb = CalamineWorkbook.from_path(str(path))
    for name in wb.sheet_names:
        rows = wb.get_sheet_by_name(name).to_python()
        at = _header_row(rows)
        if at is not None:
            break
    else:
        raise ValueError(f"{path.name}: no sheet has a header row with 'ONS Code' and 'Local authority'")
    header = [str(c).strip() for c in rows[at]]
    col = {h: i for i, h in enumerate(header)}
    body = rows[at + 1:]
    codes = body[-1] if body and all(not str(c).strip() for c in body[-1][:7]) else None
    if codes is not None:
        body = body[:-1]
    ons_i, name_i = col["ONS Code"], col["Local authority"]
    class_i = col.get("Detailed Class", col.get("Class"))
    wanted = []
    for j, label in enumerate(header):
        if not label.startswith("Children's social care"):
            continue
        rest = re.sub(r"^Children's social care\s*(?::|-)\s*", "", label)
        m = _LINE.match(rest)
        if m:
            wanted.append((j, m["service"].strip(), m["line"], str(codes[j]).strip() if codes else None))
    lookup = _ons_to_la()
    out = []
    for row in body:
        la_class = str(row[class_i]).strip() if class_i is not None else ""
        ons = str(row[ons_i]).strip()
        if la_class not in CSC_CLASSES or not _COUNCIL.match(ons):   # class totals carry no council code
            continue
        for j, service, line, code in wanted:
            out.append((ons, lookup.get(ons), str(row[name_i]).strip(), la_class, service, line, code,
                        _number(row[j]) if j < len(row) else None))
    return pd.DataFrame(out, columns=["ons_code", "la_code", "la_name", "la_class", "service", "line", "ro_code",
                                      "value"])


def read_ods_tables(path: Path | str, coll: schema.Collection) -> RawTables:
    """An RO3 workbook as the raw text table of ``coll`` (its one table), ``source_row`` numbering the
    long rows in reading order (council by council, column by column)."""
    frame = read_ro3(path)
    (table,) = [t.name for t in coll.tables()][:1]
    raw = frame.astype(object).where(frame.notna(), None)
    raw["value"] = [None if v is None else repr(float(v)) for v in raw["value"]]
    raw = raw.astype(object).where(raw.notna(), None)
    raw.insert(0, "source_row", range(1, len(raw) + 1))
    return RawTables({table: raw})
