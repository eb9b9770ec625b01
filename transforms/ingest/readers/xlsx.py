"""Workbooks of named sheets (Ofsted Annex A, provider lists, ...) into raw text tables, tolerantly.

Councils fill spreadsheet templates by hand, so nothing about the layout is trusted: each table's sheet is
found by name ("List 1", "list1", "List 1 - Contacts"), its header row by content (the first row that
names enough declared columns once case, spaces and punctuation are ignored, with the schema's
``aliases`` for known alternative spellings), extra columns are left out, blank rows skipped and
``source_row`` is the row number the data team sees in Excel. Workbooks are read with ``python-calamine``
(calamine, in Rust: cached formula values, dates as dates) rather than openpyxl, about ten times faster. Values become text as the other readers
give them: Excel dates and dates typed as text become ISO dates, whole numbers lose their ``.0``,
error cells (#N/A) are empty, and for columns declared ``labelled_codes: true`` the template's
drop-down text ("a) Male", "q) 6: Police", "N1 - Abuse or neglect") is decoded to the code alone,
whose label lives once in the schema (column_dictionary), not in every row.

The schema drives everything (no collection is special here). Per table::

    xlsx: {sheet: "List 1", aliases: ["Contacts"], header_match: 0.5}
    columns:
      - {name: Child Unique ID, aliases: [Child ID, Unique ID], ...}
      - {name: Gender, labelled_codes: true, codes: {M: Male, F: Female}}
"""
from __future__ import annotations

import difflib
import math
import re
import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.schema import Collection, Table

HEADER_SCAN_ROWS = 30          # a title block above the header is common; a longer one is not a template
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"\s+")
_DROPDOWN_LETTER = re.compile(r"^\(?[a-z]{1,2}\)\s*")       # "a) ", "(b) ", "aa) "
_CODE_AND_LABEL = re.compile(r"^(?P<code>[A-Za-z0-9]{1,8})\s*(?::|\s[-\u2013\u2014]\s|\s*[-\u2013\u2014]\s)\s*(?P<label>.+)$")
_TEXT_DATE_FORMATS = ("%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d", "%d %b %Y",
                      "%d %B %Y", "%d-%b-%Y", "%d-%b-%y", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S",
                      "%d/%m/%Y %H:%M")


def normalise(text: Any) -> str:
    """Header and sheet names compared without case, spaces or punctuation ("Date of birth:" == "DATE OF BIRTH")."""
    return _NON_ALNUM.sub("", str(text).lower().replace("&", "and")) if text is not None else ""


# -- sheets ----------------------------------------------------------------------------------------
def sheet_names(path: Path) -> list[str]:
    """The workbook's sheet titles, read from its index only (cheap: for recognising a landed file)."""
    return list(_open(path).sheet_names)


def _epoch(path: Path) -> datetime | None:
    """1 January 1904 for workbooks in the Mac date system (``date1904`` in xl/workbook.xml), else None:
    calamine converts date-formatted cells itself, but a serial number in an unformatted cell needs it."""
    try:
        with zipfile.ZipFile(path) as z:
            head = z.read("xl/workbook.xml")[:4096]
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
    return datetime(1904, 1, 1) if re.search(rb'date1904="(1|true)"', head) else None


def _open(path: Path):
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path))
    except (CalamineError, OSError, ValueError) as exc:
        raise UnreadableFile(f"not a readable workbook (XLSX or ODS): {exc}") from None


def match_sheet(titles: Iterable[str], wanted: str, aliases: Iterable[str] = ()) -> str | None:
    """The sheet that is ``wanted``: same name once normalised, or that name followed by a description
    ("List 1 - Contacts"), but never a longer number ("List 10" is not "List 1")."""
    titles = list(titles)
    for want in [wanted, *aliases]:
        w = normalise(want)
        if not w:
            continue
        for title in titles:
            t = normalise(title)
            if t == w:
                return title
        for title in titles:
            t = normalise(title)
            if t.startswith(w) and not (w[-1].isdigit() and t[len(w)].isdigit()):
                return title
    return None


def table_sheets(titles: Iterable[str], tables: Iterable[Table], coll: Collection) -> dict[str, str]:
    """For each declared table with an ``xlsx`` block, the sheet that holds it (absent: not in this file)."""
    titles = list(titles)
    found = {}
    for table in tables:
        spec = _table_spec(coll, table.name)
        sheet = match_sheet(titles, spec.get("sheet", table.name), spec.get("aliases", ()))
        if sheet is not None:
            found[table.name] = sheet
    return found


def sheet_heads(path: Path) -> dict[str, list[tuple[int, list[Any]]]]:
    """The first ``HEADER_SCAN_ROWS`` rows of every sheet, (row number, cell values): enough to tell which
    declared table a sheet holds from its header row, whatever the sheet is called."""
    wb = _open(path)
    return {title: _head_rows(wb, title) for title in wb.sheet_names}


def _head_rows(wb, title: str) -> list[tuple[int, list[Any]]]:
    try:
        rows = wb.get_sheet_by_name(title).to_python(skip_empty_area=False, nrows=HEADER_SCAN_ROWS)
    except Exception as exc:  # calamine raises its own errors for corrupt sheet parts
        raise UnreadableFile(f"sheet {title!r} cannot be read: {exc}") from None
    return [(n, list(row)) for n, row in enumerate(rows, start=1)]


def tables_by_header(heads: dict[str, list[tuple[int, list[Any]]]], coll: Collection, tables: Iterable[Table],
                     taken: Iterable[str] = ()) -> dict[str, str]:
    """For each table, the sheet whose header row names its columns best (sheets in ``taken`` and sheets
    already given to a table are not reused). A workbook whose sheets are called ``List_1``, ``List_2``
    is still read by what its columns say (the area SEND Annex A beside the ILACS one)."""
    used = set(taken)
    found: dict[str, str] = {}
    for table in tables:
        specs = _column_specs(coll, table.name)
        wanted = _header_names(table, specs)
        threshold = float(_table_spec(coll, table.name).get("header_match", 0.5))
        best = None
        for title, rows in heads.items():
            if title in used:
                continue
            match = _find_header(rows, table, wanted, threshold)
            if match and (best is None or len(match[1]) > best[0]):
                best = (len(match[1]), title)
        if best:
            found[table.name] = best[1]
            used.add(best[1])
    return found


# -- schema access -----------------------------------------------------------------------------------
def _table_spec(coll: Collection, table: str) -> dict:
    return coll.base_tables[table].get("xlsx", {}) or {}


def _column_specs(coll: Collection, table: str) -> dict[str, dict]:
    """Raw column declarations (base and every year's added columns): where ``aliases`` and
    ``labelled_codes`` live, which the typed ``Column`` does not carry."""
    specs = {c["name"]: c for c in coll.base_tables[table]["columns"]}
    for changes in coll.changes.values():
        for change in changes:
            if change.get("table") == table and change.get("add_column"):
                specs.setdefault(change["column"], dict(change["add_column"], name=change["column"]))
    return specs


# -- header ----------------------------------------------------------------------------------------
def _header_names(table: Table, specs: dict[str, dict]) -> dict[str, list[str]]:
    return {c.name: [normalise(n) for n in [c.name, *specs.get(c.name, {}).get("aliases", [])] if normalise(n)]
            for c in table.columns}


def match_header(cells: list[Any], wanted: dict[str, list[str]]) -> dict[str, int]:
    """Column name -> cell index: exact normalised names and aliases first, then a close spelling
    (one or two typos in a long header) for what is left; each cell is used once."""
    normal = [normalise(c) if isinstance(c, str) else "" for c in cells]
    found: dict[str, int] = {}
    used: set[int] = set()
    for name, options in wanted.items():
        for i, cell in enumerate(normal):
            if cell and i not in used and cell in options:
                found[name] = i
                used.add(i)
                break
    for name, options in wanted.items():
        if name in found:
            continue
        best, best_ratio = None, CLOSE_SPELLING
        for i, cell in enumerate(normal):
            if not cell or i in used or len(cell) < 8:
                continue
            ratio = max(_closeness(cell, o, best_ratio) for o in options)
            if ratio > best_ratio or (best is None and ratio == best_ratio):
                best, best_ratio = i, ratio
        if best is not None:
            found[name] = best
            used.add(best)
    return found


CLOSE_SPELLING = 0.9   # difflib similarity at which a header cell is taken as a misspelt column name


def _closeness(cell: str, option: str, at_least: float) -> float:
    """difflib's similarity of ``cell`` and ``option``, or 0.0 when its cheap upper bounds
    (``real_quick_ratio``, ``quick_ratio``) show it is below ``at_least``: the full ``ratio`` is what
    made reading a workbook's first rows take seconds."""
    matcher = difflib.SequenceMatcher(None, cell, option)
    if matcher.real_quick_ratio() < at_least or matcher.quick_ratio() < at_least:
        return 0.0
    return matcher.ratio()


def _find_header(rows: list[tuple[int, list[Any]]], table: Table, wanted: dict[str, list[str]],
                 threshold: float) -> tuple[int, dict[str, int]] | None:
    least = 2 if len(wanted) > 1 else 1
    for number, cells in rows:
        found = match_header(cells, wanted)
        filled = sum(1 for c in cells if c not in (None, ""))
        # enough of the declared columns, or a row that is mostly declared columns (a short list)
        enough = len(found) >= threshold * len(wanted) or len(found) >= 0.5 * filled
        if len(found) >= least and enough and all(r in found for r in table.required):
            return number, found
    return None


# -- values ----------------------------------------------------------------------------------------
def cell_text(value: Any, data_type: str | None = None) -> str | None:
    """A cell as the text the other readers produce (None for empty and error cells)."""
    if value is None or data_type == "e":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    text = _SPACES.sub(" ", str(value).replace("\u00a0", " ")).strip()
    if not text or text.upper() in ("#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!"):
        return None
    return text


def to_iso_date(value: Any, text: str | None, epoch: datetime | None = None) -> str | None:
    """A date column's cell as yyyy-mm-dd: Excel dates, serial numbers in unformatted cells, or dates
    typed as text in the usual English forms. Anything else is returned unchanged for validation to reject."""
    if text is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value < 2958466:
        from openpyxl.utils.datetime import from_excel
        day = from_excel(value, epoch=epoch) if epoch else from_excel(value)
        return (day.date() if isinstance(day, datetime) else day).isoformat()
    for fmt in _TEXT_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return text


def decode_labelled(text: str | None, codes: dict[str, str] | None) -> str | None:
    """Template drop-down text to its code: strip the list letter ("a) "), then take the code before
    ": " or " - ", or the code whose label the text is. Unknown text is returned as found (validation
    then quarantines it, naming the value)."""
    if text is None:
        return None
    rest = _DROPDOWN_LETTER.sub("", text, count=1).strip() or text
    if not codes:  # no list to check against: take a code only where the text spells one ("Y: Other")
        m = _CODE_AND_LABEL.match(rest)
        return m.group("code") if m and m.group("code") == m.group("code").upper() else rest
    by_code = {normalise(k): k for k in codes}
    if normalise(rest) in by_code and len(rest) <= 8:
        return by_code[normalise(rest)]
    m = _CODE_AND_LABEL.match(rest)
    if m and normalise(m.group("code")) in by_code:
        return by_code[normalise(m.group("code"))]
    by_label = {normalise(v): k for k, v in codes.items() if v}
    if normalise(rest) in by_label:
        return by_label[normalise(rest)]
    if m and normalise(m.group("label")) in by_label:
        return by_label[normalise(m.group("label"))]
    return m.group("code") if m and m.group("code").isupper() else rest


# -- the reader ------------------------------------------------------------------------------------
def read_sheet(title: str, cells: list[list[Any]], table: Table, specs: dict[str, dict], threshold: float = 0.5,
               epoch: datetime | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One worksheet's cell values (rows from Excel's row 1, as calamine gives them, empty cells "")
    into the table's raw frame (``source_row`` + declared columns as text)."""
    wanted = _header_names(table, specs)
    scanned: list[tuple[int, list[Any]]] = []
    rows = iter(cells)
    header = None
    for number, row in enumerate(rows, start=1):
        scanned.append((number, list(row)))
        found = _find_header(scanned[-1:], table, wanted, threshold)
        if found:
            header = found
            break
        if number >= HEADER_SCAN_ROWS:
            break
    if header is None:
        missing = [c for c in table.required] or list(wanted)
        raise UnreadableFile(f"sheet {title!r}: no header row naming the columns of {table.relation} "
                             f"(looked for {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} "
                             f"in the first {HEADER_SCAN_ROWS} rows)")
    header_row, columns = header
    header_cells = scanned[-1][1]
    date_cols = {c.name for c in table.columns if c.type == "date"}
    labelled = {c.name: c.codes for c in table.columns if specs.get(c.name, {}).get("labelled_codes")}
    booleans = {c.name for c in table.columns if c.type == "boolean"}  # "Yes"/"No" typed in any case
    decoded: dict[str, dict[str, str | None]] = {name: {} for name in labelled}
    positions = sorted(columns.items(), key=lambda kv: kv[1])
    records = []
    for number, row in enumerate(rows, start=header_row + 1):
        record: dict[str, Any] = {"source_row": number}
        empty = True
        for name, i in positions:
            if i >= len(row):
                record[name] = None
                continue
            value = row[i]
            text = cell_text(value)
            if text is not None:
                empty = False
                if name in date_cols:
                    text = to_iso_date(value, text, epoch)
                elif name in labelled:  # drop-down values repeat: decode each distinct text once
                    known = decoded[name]
                    text = known[text] if text in known else known.setdefault(text, decode_labelled(text, labelled[name]))
                if name in booleans:
                    text = text.lower()
            record[name] = text
        if not empty:
            records.append(record)
    df = pd.DataFrame(records, columns=["source_row", *[n for n, _ in positions]])
    for col in table.names:
        if col not in df.columns:
            df[col] = None
    df = df[["source_row", *table.names]].astype({c: "str" for c in table.names})
    extra = [str(v).strip() for i, v in enumerate(header_cells)
             if v is not None and str(v).strip() and i not in set(columns.values())]
    meta = {f"{table.name}.sheet": title, f"{table.name}.header_row": str(header_row)}
    if extra:
        meta[f"{table.name}.ignored_columns"] = ", ".join(extra)
    return df, meta


def read_xlsx(path: Path, coll: Collection, tables: list[Table]) -> RawTables:
    """Every declared table whose sheet is in the workbook (a table without its sheet gets no rows:
    Annex A requests often leave lists out). Formulas are read as their last calculated values."""
    wb = _open(path)
    titles = list(wb.sheet_names)
    sheets = table_sheets(titles, tables, coll)
    unnamed = [t for t in tables if t.name not in sheets]
    if unnamed:   # a table whose sheet is not named as declared: found by its header row instead
        heads = {title: _head_rows(wb, title) for title in titles if title not in sheets.values()}
        sheets.update(tables_by_header(heads, coll, unnamed))
    if not sheets:
        raise UnreadableFile(f"no sheet of {coll.id} in this workbook (sheets: {', '.join(titles)[:200]})")
    frames, meta = {}, {}
    epoch = _epoch(path)
    for table in tables:
        if table.name not in sheets:
            continue
        try:   # the whole used range from A1, so row numbers are Excel's (a wrong declared range is ignored)
            cells = wb.get_sheet_by_name(sheets[table.name]).to_python(skip_empty_area=False)
        except Exception as exc:  # calamine raises its own errors for corrupt sheet parts
            raise UnreadableFile(f"sheet {sheets[table.name]!r} cannot be read: {exc}") from None
        threshold = float(_table_spec(coll, table.name).get("header_match", 0.5))
        frames[table.name], table_meta = read_sheet(sheets[table.name], cells, table,
                                                    _column_specs(coll, table.name), threshold, epoch)
        meta.update(table_meta)
    meta["sheets"] = ", ".join(titles)
    return RawTables(frames, meta)
