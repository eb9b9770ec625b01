"""Synthetic Annex A, CSWW and SEN2 returns that agree with the SSDA903 and CIN simulation of a council.

Real returns link: a child in care is in SSDA903, in the CIN census and in Annex A List 8 under the same
council identifier; a referral is in the CIN census and Annex A List 3; the social workers of CSWW carry
the caseloads of the children open to the council; a child with an EHC plan (SEN2) may also be a child
in need, matched by UPN. These writers take the simulation's own arrays (``care``, ``cin``, ``kids`` of
``transforms.synthetic.generator``) so the demo shows one consistent council across returns:

- Annex A: one workbook for the latest year (Ofsted asks for the 12 months before an inspection), Lists
  3 (referrals), 7 (CP plans) and 8 (children looked after), drop-down cells written as the template
  does ("a) Male", "f) U6: ...");
- CSWW: one message per census day (30 September within each return year); Cases30 of the case holders
  add up to the children with a CIN episode open on that day (looked-after children keep the social
  worker of their SSDA903 SW episode);
- SEN2: one message per year (January census day), persons drawn from the children in need with a
  disability (same UPN as the CIN census) plus as many again who are not known to social care.
"""
from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from transforms.synthetic import common as syn

CASELOAD = 16                       # children per case-holding social worker on average
SEN_TYPES = {"ASD": 33, "SEMH": 16, "SLCN": 17, "MLD": 8, "SLD": 6, "SPLD": 3, "PMLD": 2, "PD": 4,
             "HI": 2, "VI": 1, "MSI": .3, "DS": 1, "OTH": 4}
ETHNIC_LETTERS = ["WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND", "APKN",
                  "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT"]
SOURCE_LABEL = {"1A": "Individual", "1B": "Individual", "1C": "Individual", "1D": "Individual", "2A": "Schools",
                "2B": "Education services", "3A": "Health services", "3B": "Health services",
                "3C": "Health services", "3D": "Health services", "3E": "Health services", "3F": "Health services",
                "4": "Housing", "5A": "LA services", "5B": "LA services", "5C": "LA services",
                "5D": "LA services", "6": "Police", "7": "Other legal agency", "8": "Other", "9": "Anonymous",
                "10": "Unknown"}
ABUSE_LABEL = {"NEG": "Neglect", "PHY": "Physical abuse", "SAB": "Sexual abuse", "EMO": "Emotional abuse",
               "MUL": "Multiple"}
NAMES = ["Alex Morgan", "Sam Patel", "Jo Khan", "Chris Evans", "Priya Shah", "Tom Hughes", "Aisha Begum",
         "Laura Smith", "Dan Okafor", "Ruth Clarke", "Ben Taylor", "Nia Jones"]
_EPOCH = datetime(1970, 1, 1)


def _day(days: float) -> datetime | None:
    return None if days is None or np.isnan(days) else _EPOCH + timedelta(days=int(days))


def write_linked_returns(landing: Path, c, years: list[int], care: dict, cin: dict, kids: dict,
                         seed: int) -> dict:
    """Write the council's Annex A, CSWW and SEN2 files; returns how many of each were written."""
    key = zlib.crc32(c.code.encode())
    rng = np.random.default_rng([seed, key, 77])
    written = dict(annex_a=0, csww=0, sen2=0)
    write_annex_a(landing / c.code / "annex_a" / f"Annex_A_{years[-1]}.xlsx", years[-1], care, cin, kids, rng)
    written["annex_a"] += 1
    for y in years:
        census = syn._d(f"{y - 1}-09-30")
        write_csww(landing / c.code / "csww" / f"CSWW_{y - 1}.xml", c, y - 1, census, care, cin, rng)
        write_sen2(landing / c.code / "sen2" / f"SEN2_{y}.xml", c, y, cin, kids, rng)
        written["csww"] += 1
        written["sen2"] += 1
    return written


# -- Annex A ---------------------------------------------------------------------------------------
_XLSX_FILES = {
    "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>{sheets}</Types>',
    "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/styles.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>',
}
_EXCEL_1970 = 25569            # Excel serial of 1970-01-01 (the simulation counts days from 1970)


def _xml_text(values) -> np.ndarray:
    text = np.asarray(values, dtype=object).astype(str)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = np.char.replace(text, a, b)
    return text


def _cells(kind: str, values, shared: dict[str, int]) -> np.ndarray:
    """One column as SpreadsheetML cells: 's' text (in the shared-strings table, as Excel writes it),
    'd' days since 1970 (an Excel date), 'n' numbers; missing values are empty cells so the columns
    stay aligned."""
    values = np.asarray(values, dtype=object)
    if kind == "d":
        days = np.asarray(values, dtype=float)
        serial = np.where(np.isnan(days), 0, days + _EXCEL_1970).astype(np.int64).astype(str).astype(object)
        return np.where(np.isnan(days), "<c/>", '<c s="1"><v>' + serial + "</v></c>")
    empty = np.array([v is None or v == "" or (isinstance(v, float) and np.isnan(v)) for v in values], bool)
    if kind == "n":
        return np.where(empty, "<c/>", "<c><v>" + np.where(empty, "", values).astype(str).astype(object) + "</v></c>")
    distinct, inverse = np.unique(np.where(empty, "", values).astype(str), return_inverse=True)
    ids = np.array([str(shared.setdefault(v, len(shared))) for v in distinct.tolist()], dtype=object)[inverse]
    return np.where(empty, "<c/>", '<c t="s"><v>' + ids + "</v></c>")


def write_xlsx(path: Path, sheets: dict[str, list[tuple[str, str, object]]]) -> None:
    """A workbook of sheets given as columns (header, kind, values), written directly: openpyxl spends
    ~45 microseconds a cell, too slow for a national run of councils."""
    import zipfile
    parts = {}
    names = list(sheets)
    shared: dict[str, int] = {}
    for k, name in enumerate(names, start=1):
        columns = sheets[name]
        header = "".join(_cells("s", [h], shared)[0] for h, _, _ in columns)
        cols = [_cells(kind, values, shared) for _, kind, values in columns]
        n = len(cols[0]) if cols else 0
        body = np.full(n, "", dtype=object)
        for col in cols:
            body = body + col
        rows = "".join(f'<row r="{i + 2}">{cells}</row>' for i, cells in enumerate(body.tolist()))
        parts[f"xl/worksheets/sheet{k}.xml"] = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
            '"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            f'<row r="1">{header}</row>{rows}</sheetData></worksheet>')
    strings = _xml_text(list(shared)) if shared else []
    parts["xl/sharedStrings.xml"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats.org/'
        f'spreadsheetml/2006/main" count="{len(shared)}" uniqueCount="{len(shared)}">'
        + "".join(f"<si><t>{t}</t></si>" for t in strings) + "</sst>")
    parts["xl/workbook.xml"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets>' + "".join(f'<sheet name="{n}" sheetId="{k}" r:id="rId{k}"/>' for k, n in enumerate(names, 1))
        + "</sheets></workbook>")
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts["xl/_rels/workbook.xml.rels"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.'
        'org/package/2006/relationships">' + "".join(
            f'<Relationship Id="rId{k}" Type="{rel}/worksheet" Target="worksheets/sheet{k}.xml"/>'
            for k in range(1, len(names) + 1))
        + f'<Relationship Id="rId{len(names) + 1}" Type="{rel}/styles" Target="styles.xml"/>'
        + f'<Relationship Id="rId{len(names) + 2}" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
        + "</Relationships>")
    overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{k}.xml" ContentType="application/vnd.openxmlformats-'
                        'officedocument.spreadsheetml.worksheet+xml"/>' for k in range(1, len(names) + 1))
    overrides += ('<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
                  'officedocument.spreadsheetml.sharedStrings+xml"/>')
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {"[Content_Types].xml": _XLSX_FILES["[Content_Types].xml"].replace("{sheets}", overrides),
               "_rels/.rels": _XLSX_FILES["_rels/.rels"], "xl/styles.xml": _XLSX_FILES["xl/styles.xml"], **parts}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, text in members.items():  # a fixed timestamp: the same seed gives the same bytes
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text,
                       compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)


def _letters(codes: np.ndarray, order: list[str]) -> np.ndarray:
    """The template's drop-down prefix: "a) " for the first option of the list, "b) " for the next..."""
    pos = {code: "abcdefghijklmnopqrstuvwxyz"[i % 26] + ") " for i, code in enumerate(order)}
    return np.array([pos.get(c, "z) ") for c in codes.tolist()], dtype=object)


def _person(kids: dict, k: np.ndarray, ref: float) -> list[tuple[str, str, object]]:
    ethnic = kids["ethnic"][k].astype(object)
    return [("Child Unique ID", "n", kids["id"][k]),
            ("Gender", "s", np.where(kids["male"][k], "a) Male", "b) Female")),
            ("Ethnicity", "s", _letters(ethnic, ETHNIC_LETTERS) + ethnic),
            ("Date of Birth", "d", kids["dob"][k]),
            ("Age", "n", np.round((ref - kids["dob"][k]) / syn.YEAR, 1))]


def _yes_no(flags) -> np.ndarray:
    return np.where(np.asarray(flags, bool), "a) Yes", "b) No").astype(object)


def _first_per(keys: np.ndarray) -> np.ndarray:
    """Indexes of the first row of each distinct key row (the list's key must be unique)."""
    return np.sort(np.unique(keys, axis=0, return_index=True)[1]) if len(keys) else np.arange(0)


def write_annex_a(path: Path, year: int, care: dict, cin: dict, kids: dict, rng) -> None:
    ys, ye = syn.year_bounds(year)
    R = cin["R"]
    disabled = np.isin(kids["disab"], ["", "NONE"], invert=True)
    worker = np.array(NAMES, dtype=object)
    # List 3: referrals in the year, with the child's referrals in the 12 months before
    r = np.flatnonzero((R["ref"] >= ys) & (R["ref"] <= ye))
    r = r[_first_per(np.c_[R["child"][r], R["ref"][r]])]
    r = r[np.lexsort((R["ref"][r], R["child"][r]))]
    child = R["child"][r]
    first = np.r_[True, child[1:] != child[:-1]] if len(r) else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(len(r)), 0)) if len(r) else first
    src = R["source"][r].astype(object)
    label = np.array([SOURCE_LABEL.get(s, "Other") for s in src.tolist()], dtype=object)
    list3 = _person(kids, child, ye) + [
        ("Date of Referral", "d", R["ref"][r]),
        ("Referral Source", "s", _letters(src, list(SOURCE_LABEL)) + src + ": " + label),
        ("Referral NFA?", "s", _yes_no(R["nfa"][r] == True)),  # noqa: E712 - an array of flags
        ("Number of Referrals in Last 12 Months", "n", np.arange(len(r)) - start),
        ("Allocated Team", "s", np.full(len(r), "Front Door", dtype=object)),
        ("Allocated Worker", "s", worker[child.astype(np.int64) % len(worker)])]
    # List 7: child protection plans open in the year
    p = np.flatnonzero((R["cpp_start"] <= ye) & ~(R["cpp_end"] < ys))
    p = p[_first_per(np.c_[R["child"][p], R["cpp_start"][p]])]
    child = R["child"][p]
    end = R["cpp_end"][p]
    list7 = _person(kids, child, ye) + [
        ("Does the Child have a Disability", "s", _yes_no(disabled[child])),
        ("Child Protection Plan Start Date", "d", R["cpp_start"][p]),
        ("Initial Category of Abuse", "s", np.array([ABUSE_LABEL.get(v, v) for v in R["cat"][p].tolist()], dtype=object)),
        ("Latest Category of Abuse", "s", np.array([ABUSE_LABEL.get(v, v) for v in R["cat_latest"][p].tolist()], dtype=object)),
        ("Child Protection Plan End Date", "d", np.where(end <= ye, end, np.nan)),
        ("Number of Previous Child Protection Plans", "n", R["prev_cpp"][p]),
        ("Allocated Team", "s", np.full(len(p), "Child Protection", dtype=object)),
        ("Allocated Worker", "s", worker[child.astype(np.int64) % len(worker)])]
    # List 8: periods of care open in the year, with the latest episode's legal status and placement
    P, E = care["P"], care["E"]
    e = np.flatnonzero((E["decom"] <= ye) & (E["dec"] >= ys))
    e = e[np.lexsort((E["decom"][e], E["p"][e]))]
    last = e[np.r_[E["p"][e][1:] != E["p"][e][:-1], True]] if len(e) else e
    child = E["p"][last]
    ceased = P["exit"][child] <= ye
    list8 = _person(kids, child, ye) + [
        ("Unaccompanied Asylum Seeking Child (UASC) within the Last 12 Months (Y/N))", "s", _yes_no(P["uasc"][child])),
        ("Does the Child have a Disability", "s", _yes_no(disabled[child])),
        ("Date Started to be Looked After", "d", P["start"][child]),
        ("Child's Category of Need", "s", P["need"][child].astype(object) + " - category of need"),
        ("Child's Legal Status", "s", E["ls"][last].astype(object) + ": legal status"),
        ("Date Ceased to be Looked After", "d", np.where(ceased, P["exit"][child], np.nan)),
        ("Reason Ceased to be Looked After", "s", np.where(ceased, P["rec"][child].astype(object) + ": reason", "")),
        ("Start Date of Most Recent Placement", "d", E["decom"][last]),
        ("Placement Type", "s", E["place"][last].astype(object) + ": placement type"),
        ("Placement Provider", "s", E["provider"][last].astype(object) + " - provider"),
        ("Allocated Team", "s", np.full(len(last), "Children in Care", dtype=object)),
        ("Allocated Worker", "s", worker[child.astype(np.int64) % len(worker)])]
    write_xlsx(path, {"List 3": list3, "List 7": list7, "List 8": list8})


# -- CSWW ------------------------------------------------------------------------------------------
def open_children(cin: dict, day: float) -> np.ndarray:
    """Children with a CIN episode open on ``day``: the caseload the social workers carry."""
    R = cin["R"]
    open_ = (R["ref"] <= day) & ~(R["closure"] <= day)
    return np.unique(R["child"][open_])


def caseloads(c, day: float, care: dict, cin: dict, rng) -> dict[str, int]:
    """SWENo -> children held on ``day``: looked-after children keep their SSDA903 social worker, the
    other open children are shared out among the case holders."""
    kids = open_children(cin, day)
    S = care["S"]
    active = (S["start"] <= day) & (S["end"] > day)
    sw_of = dict(zip(S["p"][active].tolist(), S["sw"][active].tolist()))
    pool = sorted(set(S["sw"].tolist()))
    need = int(np.ceil(len(kids) / CASELOAD))
    pool += [f"SW9{k:05d}" for k in range(max(need - len(pool), 0))]
    loads = {sw: 0 for sw in pool}
    spread = rng.integers(0, len(pool), len(kids))
    for child, j in zip(kids.tolist(), spread.tolist()):
        loads[sw_of.get(child, pool[j])] += 1
    return {f"SW{c.code}{int(sw[2:]):07d}": n for sw, n in loads.items()}


def write_csww(path: Path, c, census_year: int, day: float, care: dict, cin: dict, rng) -> dict[str, int]:
    loads = caseloads(c, day, care, cin, rng)
    n = len(loads)
    n_mgr, n_left = max(2, n // 6), max(1, int(round(0.15 * n)))
    ids = list(loads) + [f"SW{c.code}8{k:06d}" for k in range(n_mgr)] + \
        [f"SW{c.code}7{census_year % 100:02d}{k:04d}" for k in range(n_left)]
    total = len(ids)
    agency = rng.random(total) < float(np.clip(0.18 - 0.05 * c.practice_for("social_workers", day), 0.03, 0.5))
    fte = np.round(rng.choice([1.0, 1.0, 1.0, 0.8, 0.6], total), 6)
    dob = day - rng.uniform(24, 62, total) * syn.YEAR
    start = day - rng.exponential(4 * syn.YEAR, total)
    sex_tag = "Sex" if census_year >= 2024 else "GenderCurrent"
    male = rng.random(total) < .14
    sexes = np.where(male, "M", "F") if census_year >= 2024 else np.where(male, "1", "2")
    eth = syn._pick(rng, {"WBRI": 70, "BAFR": 8, "AIND": 4, "APKN": 3, "WOTH": 6, "MWBC": 3, "BCRB": 3, "OOTH": 3}, total)
    workers = []
    for i, sw in enumerate(ids):
        role = "5" if i < n else ("1" if i == n else "3") if i < n + n_mgr else "5"
        leaver = i >= n + n_mgr
        parts = [f"<AgencyWorker>{int(agency[i])}</AgencyWorker>", f"<SWENo>{sw}</SWENo>",
                 f"<FTE>{0 if leaver else fte[i]:.6f}</FTE>",
                 f"<PersonBirthDate>{_day(dob[i]).date().isoformat()}</PersonBirthDate>",
                 f"<{sex_tag}>{sexes[i]}</{sex_tag}>", f"<Ethnicity>{eth[i]}</Ethnicity>",
                 f"<QualLevel>{1 + i % 3}</QualLevel>", f"<OrgRole>{role}</OrgRole>",
                 f"<RoleStartDate>{_day(start[i]).date().isoformat()}</RoleStartDate>",
                 f"<StartOrigin>{1 + i % 9}</StartOrigin>"]
        if leaver:
            parts += [f"<RoleEndDate>{_day(day - 1 - (i * 37) % 360).date().isoformat()}</RoleEndDate>",
                      f"<LeaverDestination>{1 + i % 8}</LeaverDestination>", f"<ReasonLeave>{1 + i % 9}</ReasonLeave>"]
        else:
            parts.append(f"<FTE30>{fte[i]:.6f}</FTE30>")
            if i < n:
                parts.append(f"<Cases30>{loads[sw]}</Cases30>")
        parts.append(f"<WorkingDaysLost>{rng.exponential(8):.2f}</WorkingDaysLost>")
        workers.append("  <CSWWWorker>" + "".join(parts) + "</CSWWWorker>\n")
    in_post = [i for i in range(total) if i < n + n_mgr]
    agency_fte = sum(fte[i] for i in in_post if agency[i])
    employed_fte = sum(fte[i] for i in in_post if not agency[i])
    vacancies = employed_fte * float(np.clip(0.17 - 0.05 * c.practice_for("social_workers", day), 0.02, 0.5))
    text = (f"<?xml version='1.0' encoding='utf-8'?>\n<Message>\n  <Header>\n    <CollectionDetails>\n"
            f"      <Collection>CSWW</Collection>\n      <Year>{census_year}</Year>\n"
            f"      <ReferenceDate>{census_year}-09-30</ReferenceDate>\n    </CollectionDetails>\n"
            f"    <Source>\n      <SourceLevel>L</SourceLevel>\n      <LEA>{c.code}</LEA>\n"
            f"      <SoftwareCode>csreturns synthetic</SoftwareCode>\n    </Source>\n  </Header>\n"
            f"  <LALevelVacancies>\n    <NumberOfVacancies>{vacancies:.2f}</NumberOfVacancies>\n"
            f"    <NoAgencyFTE>{agency_fte:.2f}</NoAgencyFTE>\n"
            f"    <NoAgencyHeadcount>{sum(1 for i in in_post if agency[i])}</NoAgencyHeadcount>\n"
            f"  </LALevelVacancies>\n" + "".join(workers) + "</Message>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return loads


# -- SEN2 ------------------------------------------------------------------------------------------
def write_sen2(path: Path, c, year: int, cin: dict, kids: dict, rng) -> int:
    ys, ye = syn.year_bounds(year)
    census = syn._d(f"{year}-01-18")
    R = cin["R"]
    in_need = np.unique(R["child"][(R["ref"] <= census) & ~(R["closure"] < ys)])
    age = (census - kids["dob"][in_need]) / syn.YEAR
    disabled = np.isin(kids["disab"][in_need], ["", "NONE"], invert=True)
    linked = in_need[disabled & (age >= 2) & (age < 25) & (kids["upn"][in_need] != "")]
    n_other = len(linked)
    other_dob = np.floor(census - rng.uniform(3, 19, n_other) * syn.YEAR)
    upn = np.r_[kids["upn"][linked], syn._upns(rng, c.code if c.code.isdigit() else "999", other_dob)]
    dob = np.r_[kids["dob"][linked], other_dob]
    male = np.r_[kids["male"][linked], rng.random(n_other) < .7]
    eth = np.r_[kids["ethnic"][linked], syn._pick(rng, {"WBRI": 75, "WOTH": 5, "BAFR": 5, "APKN": 5, "MWBC": 5, "OOTH": 5}, n_other)]
    n = len(upn)
    received = np.floor(census - rng.uniform(60, 6 * syn.YEAR, n))
    decided = received + np.floor(rng.uniform(90, 200, n))
    need = syn._pick(rng, SEN_TYPES, n)
    iso = lambda d: _day(d).date().isoformat()
    persons = []
    for i in range(n):
        plan = decided[i] <= census
        request = (f"<Requests><ReceivedDate>{iso(received[i])}</ReceivedDate><RequestSource>1</RequestSource>"
                   f"<RYA>0</RYA><RequestOutcomeDate>{iso(received[i] + 42)}</RequestOutcomeDate>"
                   f"<RequestOutcome>Y</RequestOutcome><RequestMediation>0</RequestMediation>"
                   f"<RequestTribunal>0</RequestTribunal><Assessment>")
        if plan:
            urn = 100000 + (int(upn[i][1:7]) if upn[i][1:7].isdigit() else i) % 899999
            request += (f"<AssessmentOutcome>Y</AssessmentOutcome><AssessmentOutcomeDate>{iso(decided[i])}"
                        f"</AssessmentOutcomeDate><Week20>{int(decided[i] - received[i] <= 140)}</Week20>"
                        f"<NamedPlan><StartDate>{iso(decided[i] + 1)}</StartDate><PlanDetail><URN>{urn}</URN>"
                        f"<PlacementRank>1</PlacementRank><SENunitIndicator>0</SENunitIndicator>"
                        f"<ResourcedProvisionIndicator>0</ResourcedProvisionIndicator></PlanDetail></NamedPlan>"
                        f"</Assessment><ActivePlans><PlacementDetail><URN>{urn}</URN><PlacementRank>1</PlacementRank>"
                        f"<EntryDate>{iso(decided[i] + 1)}</EntryDate><SENunitIndicator>0</SENunitIndicator>"
                        f"<ResourcedProvisionIndicator>0</ResourcedProvisionIndicator></PlacementDetail>"
                        f"<SENneed><SENtype>{need[i]}</SENtype><SENtypeRank>1</SENtypeRank></SENneed>"
                        f"</ActivePlans></Requests>")
        else:
            request += "<AssessmentOutcome>A</AssessmentOutcome></Assessment></Requests>"
        persons.append(f"<Person><Surname>SURNAME{i}</Surname><Forename>FORENAME{i}</Forename>"
                       f"<PersonBirthDate>{iso(dob[i])}</PersonBirthDate><Sex>{'M' if male[i] else 'F'}</Sex>"
                       f"<Ethnicity>{eth[i]}</Ethnicity><PostCode>AB1 2CD</PostCode><UPN>{upn[i]}</UPN>"
                       f"{request}</Person>\n")
    text = (f"<?xml version='1.0' encoding='utf-8'?>\n<Message><Header><CollectionDetails><Collection>SEN2"
            f"</Collection><Year>{year}</Year><ReferenceDate>{year}-01-18</ReferenceDate></CollectionDetails>"
            f"<Source><SourceLevel>L</SourceLevel><LEA>{c.code}</LEA><DMO>Y</DMO><DCO>Y</DCO></Source></Header>\n"
            f"<Persons>\n" + "".join(persons) + "</Persons></Message>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return n
