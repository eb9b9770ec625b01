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
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from transforms import schema
from transforms.ingest.readers import UnreadableFile
from transforms.ingest.readers.csv_tables import normalise_header, read_csv_strings
from transforms.ingest.readers.ees import is_ees_header
from transforms.ingest.readers.text import first_line
from transforms.ingest.readers.xml_records import root_and_header

PUBLISHED_FOLDER = "published"
REFERENCE_FOLDER = "reference"  # LANDING/reference/<collection>/...: national lookups, not per council
UNRECOGNISED = "unrecognised"   # pseudo-collection: files no schema claims, recorded as rejected
_LA_CODE = re.compile(r"^\d{3}$")
_YEAR_FOLDER = re.compile(r"^year=(\d{4})$")
_YEAR_IN_NAME = re.compile(r"(?<!\d)(20\d{2})(?!\d)")
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
    if arrival.collection is not None:
        arrival.problem = _year_problem(arrival)


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


def identify(path: Path, landing: Path) -> Arrival:
    path = Path(path)
    rel = path.relative_to(landing)
    arrival = Arrival(path=path, relpath=rel.as_posix(), sha256=sha256_of(path), bytes=path.stat().st_size)
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
    m = _YEAR_IN_NAME.findall(path.name)
    if m:
        arrival.year_evidence["name"] = int(m[-1])
    if arrival.problem is None and arrival.collection != "published" and arrival.la_code is None and reference is None:
        arrival.problem = ("cannot tell which council sent this file: put it under LANDING/<la_code>/ "
                           "(3-digit old LA code)")
    decide_return_year(arrival)
    return arrival


def _reference_folder(rel: Path) -> str | None:
    parts = rel.parts[:-1]
    if not parts or parts[0] != REFERENCE_FOLDER:
        return None
    return parts[1] if len(parts) > 1 else ""


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
    elif suffix == ".xlsx" and "xlsx" in coll.formats:
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
    for coll in schema.collections().values():
        if "csv" not in coll.formats:
            continue
        for table in coll.tables():
            names = {normalise_header(c) for c in table.names}
            overlap = len(seen & names) / len(seen | names)
            if best is None or overlap > best[0]:
                best = (overlap, coll, table, names)
    if best is None or best[0] < 0.5:
        raise UnreadableFile(f"CSV header row matches no declared return table: {', '.join(header)[:200]}")
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


def _identify_xml(arrival: Arrival) -> None:
    root, _ = root_and_header(arrival.path)
    for coll in schema.collections().values():
        xml = coll.spec.get("xml")
        if not xml or xml["root"] != root:
            continue
        header_paths = xml.get("header", {})
        _, header = root_and_header(arrival.path, header_paths)
        expected = header_paths.get("collection_value")
        if expected and header.get("collection") != expected:
            continue
        arrival.format, arrival.collection = "xml", coll.id
        arrival.tables = tuple(coll.table_names)
        arrival.meta = header
        header_la = header.get("la_code")
        if header_la and arrival.la_code and header_la != arrival.la_code:
            raise UnreadableFile(f"header says LEA {header_la} but the file is in the folder of LA {arrival.la_code}")
        arrival.la_code = arrival.la_code or header_la
        _year_from_header(arrival, header)
        return
    raise UnreadableFile(f"XML root <{root}> matches no declared collection")


def _identify_xlsx(arrival: Arrival) -> None:
    """A workbook is the collection whose declared sheets it holds most of (Annex A: "List 1".."List 11")."""
    from transforms.ingest.readers.xlsx import sheet_names, table_sheets
    titles = sheet_names(arrival.path)
    best = None
    for coll in schema.collections().values():
        if "xlsx" not in coll.formats or coll.kind == "reference":  # those come under reference/<collection>/
            continue
        found = table_sheets(titles, coll.tables(), coll)
        score = (len(found) / len(coll.table_names), len(found)) if found else None
        if score and (best is None or score > best[0]):
            best = (score, coll, found)
    if best is None:
        raise UnreadableFile(f"workbook sheets match no declared collection: {', '.join(titles)[:200]}")
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
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        if path.name in _IGNORED or any(part.startswith(".") for part in path.relative_to(landing).parts):
            continue
        if not _could_belong(path.relative_to(landing), collection):
            continue
        arrival = identify(path, landing)
        if seen and (arrival.relpath, arrival.sha256) in seen:
            continue
        arrivals.append(arrival)
    _infer_content_years(arrivals)
    if collection == UNRECOGNISED:
        arrivals = [a for a in arrivals if a.collection is None and collection_hint(a) is None]
    elif collection:
        arrivals = [a for a in arrivals if owning_collection(a) == collection or
                    (a.collection is None and collection_hint(a) == collection)]
    return arrivals


def _could_belong(rel: Path, collection: str | None) -> bool:
    """From the path alone, whether a file can be of ``collection``: the 27 EES and the reference DAGs
    then identify (checksum, header) only their own few files, not the whole landing area each run."""
    coll = schema.collections().get(collection) if collection else None
    if coll is None or collection in rel.parts[:-1]:       # no filter, or a folder hint (collection_hint)
        return True
    if coll.kind == "ees":                                  # the dataset comes from the file name
        return rel.suffix.lower() == ".csv" and coll.dataset_for(rel.name)[0] == coll.dataset
    if coll.kind == "reference":
        return rel.parts[:2] == (REFERENCE_FOLDER, coll.id)
    return True


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
        year = latest_return_year(frames, coll) if frames else None
        for a in group:
            if year and "content" not in a.year_evidence:
                a.year_evidence["content"] = year
            decide_return_year(a)
            if a.return_year is None and a.problem is None:
                a.problem = ("cannot tell the return year: no year in the name or header and no event dates; "
                             "put the file under a year=YYYY folder")
