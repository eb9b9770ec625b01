"""The landing area: find what arrived and recognise it from its content and name.

Layout: ``LANDING/<la_code>/...`` for a council's returns (3-digit old LA code) and
``LANDING/published/...`` for multi-LA published statistics. The collection, table and return year come
from the file itself (CSV header row, XML root and header) and its name; a folder ``year=YYYY``
overrides the year. Anything that cannot be recognised still becomes an ``Arrival`` with a ``problem``,
so that it is recorded as rejected, never skipped.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from transforms import schema
from transforms.ingest.readers import UnreadableFile
from transforms.ingest.readers.csv_tables import empty_reason, normalise_header, read_csv_strings
from transforms.ingest.readers.ees import is_ees_header
from transforms.ingest.readers.text import first_line, is_blank_line, read_text
from transforms.ingest.readers.xml_records import body_path, prolog_root, root_and_header

PUBLISHED_FOLDER = "published"
REFERENCE_FOLDER = "reference"  # LANDING/reference/<collection>/...: national lookups, not per council
UNRECOGNISED = "unrecognised"   # pseudo-collection: files no schema claims, recorded as rejected
_LA_CODE = re.compile(r"^\d{3}$")
_YEAR_FOLDER = re.compile(r"^year=(\d{4})$")
_SPAN_4_2 = re.compile(r"(?<!\d)(20\d{2})[-_ ]?(\d{2})(?!\d)")      # 2023-24, 2023_24, 202324
_SPAN_2_2 = re.compile(r"(?<!\d)(\d{2})[-_](\d{2})(?!\d)")           # 23-24, 23_24
_YEAR_IN_NAME = re.compile(r"(?<!\d)(20\d{2})(?!\d)")


def year_from_name(name: str) -> tuple[int, bool] | None:
    """The return year (ending 31 March) a file name states, and whether it is a financial-year span.

    Spans are read as the sector writes them: ``2023-24``, ``2023_24``, ``202324`` and ``23-24`` all mean the
    year to 31 March 2024 (the second year must follow the first). A bare ``2024`` is that year. Where a
    name holds several, the last one counts. None when the name holds no year.
    """
    stem = name.rsplit(".", 1)[0]
    found: list[tuple[int, int, bool]] = []          # (position, year, span)
    taken: list[range] = []
    for m in _SPAN_4_2.finditer(stem):
        first, second = int(m.group(1)), int(m.group(2))
        if second == (first + 1) % 100:
            found.append((m.start(), first + 1, True))
            taken.append(range(m.start(), m.end()))
    for m in _YEAR_IN_NAME.finditer(stem):
        if not any(m.start() in r for r in taken):
            found.append((m.start(), int(m.group(1)), False))
            taken.append(range(m.start(), m.end()))
    if not found:
        for m in _SPAN_2_2.finditer(stem):
            first, second = int(m.group(1)), int(m.group(2))
            if second == (first + 1) % 100 and not any(m.start() in r for r in taken):
                found.append((m.start(), 2000 + second, True))
    if not found:
        return None
    _, year, span = max(found)
    return year, span
_IGNORED = {".DS_Store", "Thumbs.db"}


@dataclass
class Arrival:
    """One file in the landing area and what it was recognised as."""

    path: Path
    relpath: str
    sha256: str
    bytes: int
    format: str | None = None            # csv | xml | ees_csv
    collection: str | None = None
    tables: tuple[str, ...] = ()
    la_code: str | None = None
    return_year: int | None = None       # decided once, by decide_return_year, from year_evidence
    year_source: str | None = None       # folder | header | name | content: the evidence that decided it
    year_reason: str | None = None       # in words, for the ledger: why this year
    year_evidence: dict[str, int] = field(default_factory=dict)   # every source that named a year
    dataset: str | None = None           # published statistics only
    problem: str | None = None           # why it cannot be loaded (recorded as rejected)
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> str | None:
        return self.tables[0] if len(self.tables) == 1 else None

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["path"] = str(self.path)
        d["tables"] = list(self.tables)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Arrival":
        return cls(**{**d, "path": Path(d["path"]), "tables": tuple(d["tables"]),
                      "year_evidence": {k: int(v) for k, v in (d.get("year_evidence") or {}).items()}})


# Where a return year can come from, strongest first. A year=YYYY folder is the sender's explicit word,
# the header is the return's own statement, a year in the name is a convention, the event dates a guess.
YEAR_SOURCES = ("folder", "header", "name", "content")
_YEAR_WORDS = {"folder": "the folder year={year}", "header": "the return's header says {year}",
               "name": "the file name says {year}", "content": "the latest event date falls in {year}"}


def decide_return_year(arrival: Arrival) -> None:
    """Decide the return year (ending 31 March) once, from ``arrival.year_evidence``: the strongest source
    wins (``YEAR_SOURCES``), and the reason is kept (``year_source``, ``year_reason``). Then check the
    year against the schema: a year before the collection's first, or a table not collected that year,
    makes the file a rejection (``problem``). Published statistics carry their own periods: no year."""
    if arrival.collection == "published" or arrival.problem:
        return
    source = next((s for s in YEAR_SOURCES if s in arrival.year_evidence), None)
    if source is None:
        return
    year = arrival.year_evidence[source]
    arrival.return_year, arrival.year_source = year, source
    arrival.year_reason = _YEAR_WORDS[source].format(year=year)
    arrival.problem = _year_conflict(arrival)
    if arrival.collection is not None and arrival.problem is None:
        arrival.problem = _year_problem(arrival)


def _year_conflict(arrival: Arrival) -> str | None:
    """The folder, the header and the file name must agree where they each state a year: a file is refused
    rather than filed under the wrong one. A bare year in the name of a census not dated 31 March (CSWW,
    30 September) names the census, not the return year, and is not held against the header."""
    evidence = {k: v for k, v in arrival.year_evidence.items() if k in ("folder", "header", "name")}
    if len(set(evidence.values())) <= 1:
        return None
    if "header" in evidence and "name" in evidence and not arrival.meta.get("name_year_span") and arrival.collection:
        if schema.collection(arrival.collection).spec.get("reference_day", "03-31") != "03-31":
            del evidence["name"]
    if len(set(evidence.values())) <= 1:
        return None
    said = "; ".join(_YEAR_WORDS[k].format(year=v) for k, v in evidence.items())
    return f"the return year is stated differently ({said}): refused rather than filed under the wrong year"


def _year_problem(arrival: Arrival) -> str | None:
    coll = schema.collection(arrival.collection)
    first = coll.spec.get("first_year")
    if first and arrival.return_year < first:
        return f"{coll.id} return year {arrival.return_year} is before the first declared year {first}"
    if arrival.format == "csv":
        table = coll.table(arrival.table, arrival.return_year)
        if not table.collected_in(arrival.return_year):
            return (f"{table.relation} is collected from {table.first_year}"
                    f"{' to ' + str(table.last_year) if table.last_year else ''}; "
                    f"this file is for {arrival.return_year}")
    return None


def printable(name: str) -> str:
    """A file name as a log line or a terminal may show it: control and format characters (a newline, an
    escape, a right-to-left override that reverses what follows) written as escapes, so a name can neither
    break a log line nor disguise itself. The ledger keeps the name exactly; this is for display only."""
    out = []
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def return_year_of(day: date) -> int:
    """The return year (ending 31 March) that a date falls in."""
    return day.year + 1 if day.month >= 4 else day.year


def _location(rel: Path) -> tuple[str | None, bool, int | None]:
    parts = rel.parts[:-1]
    la_code = parts[0] if parts and _LA_CODE.match(parts[0]) else None
    published = bool(parts) and parts[0] == PUBLISHED_FOLDER
    year = None
    for part in parts:
        m = _YEAR_FOLDER.match(part)
        if m:
            year = int(m.group(1))
    return la_code, published, year


def link_problem(path: Path, landing: Path) -> str:
    """Why a symbolic link in the landing area is refused. The link is never followed to be read: where it
    leads is told from its text alone (resolved without touching the target's content)."""
    try:
        target = Path(os.path.realpath(path))
    except (OSError, RuntimeError):
        return "symbolic link that cannot be resolved (a loop?): not followed"
    inside = target == landing or landing in target.parents
    if not os.path.lexists(target) or not target.exists():
        where = "inside" if inside else "outside"
        return f"dangling symbolic link (its target, {where} the landing area, does not exist): not followed"
    if not inside:
        return "symbolic link to outside the landing area: not followed, nothing read"
    return ("symbolic link to another file in the landing area: not followed "
            "(the file itself is taken where it is)")


def identify(path: Path, landing: Path) -> Arrival:
    """Recognise one landed file: collection, tables, council and return year, or the ``problem`` that
    refuses it. A symbolic link is recorded with its problem and never read."""
    path = Path(path)
    landing = Path(landing)
    rel = path.relative_to(landing)
    if path.is_symlink():
        link_text = os.readlink(path).encode("utf-8", "surrogateescape")
        arrival = Arrival(path=path, relpath=_relpath(rel), sha256=hashlib.sha256(b"symlink:" + link_text).hexdigest(),
                          bytes=0, problem=link_problem(path, landing.resolve()), meta={"link": "true"})
        arrival.la_code, _, _ = _location(rel)
        return arrival
    try:
        digest, size = sha256_of(path), path.stat().st_size
    except OSError as exc:
        return Arrival(path=path, relpath=_relpath(rel), sha256=hashlib.sha256(b"unreadable").hexdigest(), bytes=0,
                       la_code=_location(rel)[0], problem=f"the file cannot be read ({exc.strerror or 'error'})")
    arrival = Arrival(path=path, relpath=_relpath(rel), sha256=digest, bytes=size)
    la_code, published, folder_year = _location(rel)
    arrival.la_code = la_code
    if folder_year:
        arrival.year_evidence["folder"] = folder_year
    suffix = path.suffix.lower()
    reference = _reference_folder(rel)
    try:
        if reference is not None:
            _identify_reference(arrival, reference)
        elif suffix == ".csv":
            _identify_csv(arrival, published)
        elif suffix == ".xml":
            _identify_xml(arrival)
        elif suffix == ".xlsx":
            _identify_xlsx(arrival)
        else:
            arrival.problem = f"no collection schema reads {suffix or 'extensionless'} files"
    except (UnreadableFile, ValueError) as exc:
        arrival.problem = str(exc)
    named = year_from_name(path.name)
    if named:
        arrival.year_evidence["name"] = named[0]
        if named[1]:
            arrival.meta["name_year_span"] = "true"
    if arrival.problem is None and arrival.collection != "published" and arrival.la_code is None and reference is None:
        arrival.problem = ("cannot tell which council sent this file: put it under LANDING/<la_code>/ "
                           "(3-digit old LA code)")
    decide_return_year(arrival)
    return arrival


def _relpath(rel: Path) -> str:
    """The path under the landing area as the ledger keeps it: exactly as named (byte for byte once
    encoded with ``os.fsencode``), ``/``-separated; a backslash in a Linux name stays a character."""
    return "/".join(rel.parts)


def _reference_folder(rel: Path) -> str | None:
    parts = rel.parts[:-1]
    if not parts or parts[0] != REFERENCE_FOLDER:
        return None
    return parts[1] if len(parts) > 1 else ""


def workbook_sheets_declared(coll) -> bool:
    """True when a table of ``coll`` names its sheet (an ``xlsx:`` block): its XLSX or ODS workbooks are
    read sheet by sheet (readers/xlsx.py, calamine reads both). Without one an ODS is an RO3 outturn
    workbook, read by its own reader (readers/ods.py)."""
    return any(spec.get("xlsx") for spec in coll.base_tables.values())


def _identify_reference(arrival: Arrival, collection_id: str) -> None:
    """A file under reference/<collection>/: the folder names the collection, the content the table."""
    declared = sorted(c.id for c in schema.collections().values() if c.kind == "reference")
    coll = schema.collections().get(collection_id)
    if coll is None or coll.kind != "reference":
        raise UnreadableFile(f"reference files go under reference/<collection>/ with one of: {', '.join(declared)}")
    arrival.collection = coll.id
    suffix = arrival.path.suffix.lower()
    if suffix == ".csv" and "csv" in coll.formats:
        from transforms.ingest.readers.reference import header_score
        scores = {t.name: header_score(arrival.path, coll, t) for t in coll.tables()}
        best = max(scores, key=scores.get)
        if not scores[best]:
            raise UnreadableFile(f"CSV header names the columns of no {coll.id} table ({', '.join(scores)})")
        arrival.format, arrival.tables = "csv", (best,)
    elif suffix in (".xlsx", ".ods") and suffix[1:] in coll.formats and workbook_sheets_declared(coll):
        # a workbook whose sheets the schema names (xlsx: blocks): XLSX and ODS hold the same cells
        from transforms.ingest.readers.xlsx import sheet_names, table_sheets
        found = table_sheets(sheet_names(arrival.path), coll.tables(), coll)
        if not found:
            raise UnreadableFile(f"no sheet of {coll.id} in this workbook")
        arrival.format, arrival.tables = "xlsx", tuple(found)
    elif suffix == ".ods" and "ods" in coll.formats:      # one table: the workbook's data sheet (readers/ods.py)
        arrival.format, arrival.tables = "ods", tuple(t.name for t in coll.tables())[:1]
    else:
        raise UnreadableFile(f"{coll.id} is read from {', '.join(coll.formats)} files, not {suffix or 'extensionless'}")


def _identify_csv(arrival: Arrival, published: bool) -> None:
    """A CSV is the declared table whose column names its header row (the first line that is not blank)
    shares most of. Raises ``UnreadableFile`` for an empty or blank file, or a first line naming no table;
    the reason describes the first line's shape, never its cells (they may be a child's data)."""
    empty = empty_reason(arrival.path)
    if empty:
        raise UnreadableFile(empty)
    header = next(csv.reader([first_line(arrival.path)]), [])
    pub = schema.collection("published")
    if is_ees_header(header, pub):
        arrival.format, arrival.collection = "ees_csv", "published"
        arrival.dataset = pub.dataset_for(arrival.path.name)[0]
        arrival.tables = ("published_statistics",)
        arrival.la_code = None
        return
    if published:
        raise UnreadableFile("file under published/ is not an EES CSV (no time_period/geographic_level columns)")
    seen = {normalise_header(h) for h in header if h.strip()}
    best = None
    known: set[str] = set()
    for coll in schema.collections().values():
        if "csv" not in coll.formats:
            continue
        for table in coll.tables():
            names = {normalise_header(c) for c in table.names}
            known |= names
            overlap = len(seen & names) / len(seen | names) if seen | names else 0.0
            if best is None or overlap > best[0]:
                best = (overlap, coll, table, names)
    if best is None or best[0] < 0.5:
        raise UnreadableFile(_no_table_reason(header, seen, known, best))
    overlap, coll, table, names = best
    terms = coll.spec.get("term_tables")  # termly returns: one table per term, named in the file name
    if terms:
        term = next((t for t in terms if t in arrival.path.name.lower()), None)
        if term is None:
            raise UnreadableFile(f"{coll.id} file name must say the census term ({', '.join(terms)})")
        table = coll.table(terms[term])
    arrival.format, arrival.collection, arrival.tables = "csv", coll.id, (table.name,)
    missing = [c for c in table.required if normalise_header(c) not in seen]
    if missing:
        raise UnreadableFile(f"looks like {table.relation} but required column(s) "
                             f"{', '.join(missing)} are missing from the header row")


def _no_table_reason(header: list[str], seen: set[str], known: set[str], best) -> str:
    """Why a first line names no declared table, in shape only: how many cells, how many are column
    names of some table (those names are the schema's, so they may be quoted), the closest table."""
    cells = len(header)
    filled = sum(1 for h in header if h.strip())
    names = sorted(seen & known)
    if not names:
        return (f"first line matches no declared return table: no header row (it holds {cells} "
                f"cell{'s' if cells != 1 else ''}, {filled} filled, none of them a column name of any table)")
    closest = f"; closest is {best[2].relation} ({len(seen & best[3])} of its {len(best[3])} columns)" if best else ""
    return (f"CSV header row matches no declared return table: {cells} cells, {len(names)} of them known "
            f"column names ({', '.join(names)[:200]}){closest}")


def _identify_xml(arrival: Arrival) -> None:
    """An XML file is the collection whose root it has and whose header names it (``collection_value``,
    e.g. CIN). The census schemas make the header's Collection element optional: without one, the message
    is recognised by its structure, the first record path under the root (``Children/Child`` for CIN,
    ``Persons/Person`` for SEN2, ``CSWWWorker`` for CSWW). A DOCTYPE anywhere in the prolog refuses it."""
    root = prolog_root(arrival.path)
    if root:
        arrival.meta["root"] = root
    root, _ = root_and_header(arrival.path)
    candidates = []
    for coll in schema.collections().values():
        xml = coll.spec.get("xml")
        if not xml or xml["root"] != root:
            continue
        header_paths = xml.get("header", {})
        _, header = root_and_header(arrival.path, header_paths)
        expected = header_paths.get("collection_value")
        said = header.get("collection")
        if expected and said is not None and said != expected:
            continue
        candidates.append((coll, header, bool(expected and said == expected)))
    named = [c for c in candidates if c[2]]
    if named or len(candidates) == 1:
        coll, header, _ = (named or candidates)[0]
    elif candidates:
        body = body_path(arrival.path)
        scored = [(_structure_match(c[0], body), c) for c in candidates]
        score, (coll, header, _) = max(scored, key=lambda sc: sc[0])
        if not score:
            raise UnreadableFile(f"XML <{root}> message whose header names no collection and whose records "
                                 f"(<{'/'.join(body) or 'nothing'}>) match none declared")
        arrival.meta["recognised_by"] = "structure (the header has no Collection element)"
    else:
        raise UnreadableFile(f"XML root <{root}> matches no declared collection")
    arrival.format, arrival.collection = "xml", coll.id
    arrival.tables = tuple(coll.table_names)
    arrival.meta = {**arrival.meta, **header}
    header_la = header.get("la_code")
    if header_la and arrival.la_code and header_la != arrival.la_code:
        raise UnreadableFile(f"header says LEA {header_la} but the file is in the folder of LA {arrival.la_code}")
    arrival.la_code = arrival.la_code or header_la
    _year_from_header(arrival, header)


def _structure_match(coll: schema.Collection, body: list[str]) -> int:
    """How deep the collection's record path (``Children/Child``) or a table's own record element
    (``LALevelVacancies``) matches the path of the message's first record; 0: not at all."""
    paths = [coll.spec["xml"]["record"].split("/")]
    for spec in coll.base_tables.values():
        own = (spec.get("xml") or {}).get("record")
        if own:
            paths.append(own.split("/"))
    best = 0
    for path in paths:
        if body[:len(path)] == path:
            best = max(best, len(path))
    return best


def _identify_xlsx(arrival: Arrival) -> None:
    """A workbook is the collection whose declared tables its sheets' header rows name most of; sheet names
    ("List 1".."List 11" for ILACS Annex A) decide only when no header names any. The area SEND Annex A,
    whose sheets may also be called ``List_1``, ``List_2``, is told from the ILACS one by its columns."""
    from transforms.ingest.readers.xlsx import sheet_heads, table_sheets, tables_by_header
    heads = sheet_heads(arrival.path)
    titles = list(heads)
    best = None
    for coll in schema.collections().values():
        if "xlsx" not in coll.formats or coll.kind == "reference":  # those come under reference/<collection>/
            continue
        by_name = table_sheets(titles, coll.tables(), coll)
        by_header = tables_by_header(heads, coll, coll.tables())
        found = {**by_name, **by_header}
        if not found:
            continue
        score = (len(by_header), len(by_name) / len(coll.table_names), len(by_name))
        if best is None or score > best[0]:
            best = (score, coll, found)
    if best is None:
        raise UnreadableFile(f"workbook of {len(titles)} sheet{'s' if len(titles) != 1 else ''} whose names "
                             "and header rows match no declared collection")
    _, coll, found = best
    arrival.format, arrival.collection = "xlsx", coll.id
    arrival.tables = tuple(t for t in coll.table_names if t in found)


def _year_from_header(arrival: Arrival, header: dict[str, str]) -> None:
    ref = header.get("reference_date")
    if ref:
        try:
            day = datetime.strptime(ref[:10], "%Y-%m-%d").date()
            census_day = schema.collection(arrival.collection).spec.get("reference_day", "03-31")  # CSWW: 09-30
            if day.strftime("%m-%d") == census_day:
                arrival.year_evidence["header"] = day.year
                return
        except ValueError:
            pass
    if header.get("year", "").isdigit():
        arrival.year_evidence["header"] = int(header["year"])


def latest_return_year(frames: dict, coll: schema.Collection) -> int | None:
    """Infer the return year from the latest event date in the tables that carry one."""
    latest = None
    for table_name, columns in coll.spec.get("year_from_dates", {}).items():
        df = frames.get(table_name)
        if df is None or df.empty:
            continue
        for col in columns:
            if col not in df.columns:
                continue
            days = _parse_dates(df[col], coll.date_format)
            if days is not None and (latest is None or days > latest):
                latest = days
    return return_year_of(latest) if latest else None


def _parse_dates(values, fmt: str):
    import pandas as pd
    parsed = pd.to_datetime(values, format=fmt, errors="coerce").dropna()
    return parsed.max().date() if not parsed.empty else None


def discover(landing: Path, collection: str | None = None, seen: set[tuple[str, str]] | None = None
             ) -> list[Arrival]:
    """Every file under ``landing`` (optionally of one collection, optionally not yet ``seen`` as
    (relpath, sha256)), recognised, with 903 CSV years inferred per folder where the name is silent."""
    landing = Path(landing).resolve()
    arrivals = []
    for path in _walk(landing):
        rel = path.relative_to(landing)
        if path.name in _IGNORED or any(_hidden(part) for part in rel.parts):
            continue
        if not _could_belong(rel, collection):
            continue
        arrival = identify(path, landing)
        if seen and (arrival.relpath, arrival.sha256) in seen:
            continue
        arrivals.append(arrival)
    _infer_content_years(arrivals)
    if collection:
        arrivals = [a for a in arrivals if taken_by(a) == collection]
    return arrivals


def taken_by(arrival: Arrival) -> str:
    """The collection whose DAG (``collect_<id>``) takes a discovered file: the collection it was recognised as
    (``owning_collection``), else the one its folder names (``collection_hint``: that DAG records the
    rejection), else ``UNRECOGNISED`` (the sweep)."""
    if arrival.collection is not None:
        return owning_collection(arrival)
    return collection_hint(arrival) or UNRECOGNISED


def _hidden(name: str) -> bool:
    """A hidden name (``.git``, ``.~lock.x.csv#``, a sync client's ``.partial``): not a return. A name that
    merely starts with dots and then a separator-like character (``..\\header.csv``) is an odd name, not a
    hidden one, and is taken."""
    return name.startswith(".") and name.lstrip(".")[:1] not in ("\\", "")


def _walk(landing: Path) -> list[Path]:
    """Every regular file and every symbolic link (to a file, a folder or nothing) under ``landing``,
    sorted; links to folders are not descended into, so nothing outside the landing area is listed."""
    found = []
    for folder, dirs, files in os.walk(landing, followlinks=False):
        base = Path(folder)
        for name in dirs:
            if (base / name).is_symlink():
                found.append(base / name)
        for name in files:
            p = base / name
            if p.is_symlink() or p.is_file():
                found.append(p)
    return sorted(found)


def _could_belong(rel: Path, collection: str | None) -> bool:
    """From the path alone, whether a file can be of ``collection``: the 27 EES and the reference DAGs
    then identify (checksum, header) only their own few files, and each return's DAG only the files of the
    kinds ``identify`` could recognise as that return (by suffix: an Annex A workbook is never opened by
    the CIN census DAG), not the whole landing area each run."""
    coll = schema.collections().get(collection) if collection else None
    if coll is None or collection in rel.parts[:-1]:       # no filter, or a folder hint (collection_hint)
        return True
    if coll.kind == "ees":                                  # the dataset comes from the file name
        return rel.suffix.lower() == ".csv" and coll.dataset_for(rel.name)[0] == coll.dataset
    if coll.kind == "reference":
        return rel.parts[:2] == (REFERENCE_FOLDER, coll.id)
    return _identifiable_as(coll, rel.suffix.lower())


def _identifiable_as(coll: schema.Collection, suffix: str) -> bool:
    """Whether ``identify`` can recognise a file with ``suffix`` as ``coll`` outside a reference folder: CSVs
    by header among the collections read from CSV (and EES files as published), XML by root among the
    collections declaring an XML layout, workbooks among those read from XLSX; any other suffix is never
    recognised."""
    if suffix == ".csv":
        return bool({"csv", "ees_csv"} & set(coll.formats))
    if suffix == ".xml":
        return bool(coll.spec.get("xml"))
    if suffix == ".xlsx":
        return "xlsx" in coll.formats
    return False


def owning_collection(arrival: Arrival) -> str | None:
    """The collection whose DAG takes the file: an EES file belongs to the ees collection declaring its
    dataset (collect_ees_<name>), and to the catch-all ``published`` only when none does."""
    if arrival.collection == "published" and arrival.dataset:
        return schema.ees_collection_of(arrival.dataset) or "published"
    return arrival.collection


def submissions(arrivals: list[Arrival]) -> list[list[Arrival]]:
    """Group files into what a council sends together (collection, LA, return year): the unit that the
    Airflow tasks map over, so a 12-table SSDA903 return is one task instance per stage, not twelve."""
    groups: dict[tuple, list[Arrival]] = defaultdict(list)
    for a in arrivals:
        groups[(a.collection or "", a.la_code or "", a.return_year or 0)].append(a)
    return [groups[k] for k in sorted(groups)]


def batches(arrivals: list[Arrival], max_submissions: int = 25) -> list[list[Arrival]]:
    """Submissions of the same collection and year, a bounded number at a time: the unit each Airflow
    task instance works on. Validating them together pays GX's fixed cost once per table, not per file;
    the bound keeps a task well inside Airflow's task-token lifetime."""
    by_key: dict[tuple, list[list[Arrival]]] = defaultdict(list)
    for group in submissions(arrivals):
        first = group[0]
        by_key[(first.collection or "", first.return_year or 0)].append(group)
    out = []
    for key in sorted(by_key):
        groups = by_key[key]
        for i in range(0, len(groups), max_submissions):
            out.append([a for g in groups[i:i + max_submissions] for a in g])
    return out


def collection_hint(arrival: Arrival) -> str | None:
    """For an unrecognised file, the collection its folder suggests (so its DAG records the rejection)."""
    parts = Path(arrival.relpath).parts
    known = set(schema.collections())
    for part in parts[:-1]:
        if part in known:
            return part
    return None


def _infer_content_years(arrivals: list[Arrival]) -> None:
    """For files no folder, header or name dates (SSDA903 CSVs, mostly): the latest event date of the
    files in the same folder (``year_from_dates`` in the schema) is the year's evidence."""
    pending: dict[tuple[str, Path], list[Arrival]] = defaultdict(list)
    for a in arrivals:
        if a.problem is None and a.return_year is None and a.collection not in (None, "published"):
            pending[(a.collection, a.path.parent)].append(a)
    for (coll_id, _), group in pending.items():
        coll = schema.collection(coll_id)
        frames = {}
        for a in group:
            try:
                if a.format == "csv" and a.table in coll.spec.get("year_from_dates", {}):
                    df, _ = read_csv_strings(a.path)
                    df.columns = ["source_row", *[normalise_header(c) for c in df.columns[1:]]]
                    frames[a.table] = df
                elif a.format == "xml":
                    from transforms.ingest.readers.xml_records import read_records
                    raw = read_records(a.path, coll, [coll.table(t) for t in coll.spec.get("year_from_dates", {})])
                    year = latest_return_year(raw.tables, coll)
                    if year:
                        a.year_evidence["content"] = year
            except (UnreadableFile, ValueError) as exc:   # a file that cannot be read has no dates: refuse it
                a.problem = str(exc)
        year = latest_return_year(frames, coll) if frames else None
        for a in group:
            if year and "content" not in a.year_evidence:
                a.year_evidence["content"] = year
            decide_return_year(a)
            if a.return_year is None and a.problem is None:
                a.problem = ("cannot tell the return year: no year in the name or header and no event dates; "
                             "put the file under a year=YYYY folder")


def records_in(arrival: Arrival) -> int:
    """How many data records a file holds, read without trusting it: what the ledger's ``rows_in`` says for
    a file refused whole. CSV: the lines that are not blank, less the header row (all of them when the
    first line is not a header). XML: the record elements (``<Child>``, ``<Person>``, ...) of the
    collections whose root it has, counted in the bytes, so a refused DOCTYPE is never parsed. A symbolic
    link, an empty file or another format: 0."""
    path = arrival.path
    try:
        if arrival.meta.get("link") or path.is_symlink() or not path.is_file():
            return 0
        suffix = path.suffix.lower()
        if suffix == ".csv":
            if empty_reason(path):
                return 0
            try:
                text, _ = read_text(path)
            except ValueError:
                return sum(1 for line in path.read_bytes().splitlines() if line.strip(b" \t\r\n,;\x00"))
            lines = sum(1 for line in text.splitlines() if not is_blank_line(line))
            headerless = "no header row" in (arrival.problem or "")
            return lines if headerless else max(lines - 1, 0)
        if suffix == ".xml":
            return _count_xml_records(path, arrival.meta.get("root"))
    except OSError:
        return 0
    return 0


def _count_xml_records(path: Path, root: str | None) -> int:
    tags = set()
    for coll in schema.collections().values():
        xml = coll.spec.get("xml")
        if xml and (root is None or xml["root"] == root):
            tags.add(xml["record"].split("/")[-1])
    best = 0
    for tag in sorted(tags):
        pattern = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?" + re.escape(tag.encode()) + rb"[\s/>]")
        n, tail = 0, b""
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                data = tail + chunk
                # count matches that end before the overlap kept for the next chunk
                cut = max(len(data) - 256, 0)
                n += sum(1 for m in pattern.finditer(data) if m.start() < cut)
                tail = data[cut:]
            n += sum(1 for _ in pattern.finditer(tail))
        best = max(best, n)
    return best
