"""The synthetic landing area must look like what councils send: the documented layout and columns,
valid codes, dd/mm/yyyy dates, unbroken episode chains and the same child in both returns.

Expected columns and codes are copied from DOMAIN.md section 2, not imported from the generator,
so the test checks the generator against the documentation."""
from __future__ import annotations

import csv
import hashlib
import io
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from transforms.ingest.readers.text import decode
from transforms.synthetic.generator import generate_landing

YEARS = (2024, 2025)
COLUMNS = {
    "header": "CHILD SEX DOB ETHNIC UPN MOTHER MC_DOB",
    "episodes": "CHILD DECOM RNE LS CIN PLACE PLACE_PROVIDER DEC REC REASON_PLACE_CHANGE HOME_POST PL_POST URN",
    "reviews": "CHILD DOB REVIEW REVIEW_CODE",
    "uasc": "CHILD SEX DOB DUC",
    "oc2": "CHILD DOB SDQ_SCORE SDQ_REASON CONVICTED HEALTH_CHECK IMMUNISATIONS TEETH_CHECK HEALTH_ASSESSMENT "
           "SUBSTANCE_MISUSE INTERVENTION_RECEIVED INTERVENTION_OFFERED",
    "oc3": "CHILD DOB IN_TOUCH ACTIV ACCOM",
    "ad1": "CHILD DOB DATE_INT DATE_MATCH FOSTER_CARE NB_ADOPTR SEX_ADOPTR LS_ADOPTR",
    "placed_for_adoption": "CHILD DOB DATE_PLACED DATE_PLACED_CEASED REASON_PLACED_CEASED",
    "previous_permanence": "CHILD DOB PREV_PERM LA_PERM DATE_PERM",
    "missing": "CHILD DOB MISSING MIS_START MIS_END",
    "sw_episodes": "CHILD DOB SW_ID SW_DECOM SW_DEC SW_REASON",
}
COLUMNS = {k: v.split() for k, v in COLUMNS.items()}
DATES = {"DOB", "MC_DOB", "DECOM", "DEC", "REVIEW", "DUC", "DATE_INT", "DATE_MATCH", "DATE_PLACED",
         "DATE_PLACED_CEASED", "DATE_PERM", "MIS_START", "MIS_END", "SW_DECOM", "SW_DEC"}
PLACE = set("A3 A4 A5 A6 H5 K1 K2 P1 P2 P3 R1 R2 R3 R5 S1 T0 T1 T2 T3 T4 U1 U2 U3 U4 U5 U6 Z1".split())
CODES = {
    "RNE": set("SLPTBU"), "LS": set("C1 C2 D1 E1 V2 V3 V4 L1 L2 L3 J1 J2 J3".split()),
    "CIN": {f"N{i}" for i in range(1, 9)}, "PLACE_PROVIDER": {f"PR{i}" for i in range(6)},
    "REC": set("X1 E11 E12 E13 E14 E15 E16 E17 E2 E3 E41 E45 E46 E47 E48 E4A E4B E5 E6 E7 E8 E9".split()),
    "REASON_PLACE_CHANGE": set("CARPL CLOSE ALLEG STAND APPRR CREQB CREQO CHILD LAREQ PLACE CUSTOD OTHER".split()),
    "REVIEW_CODE": {f"PN{i}" for i in range(8)}, "MISSING": {"M", "A"},
    "ETHNIC": set("WBRI WIRI WOTH WIRT WROM MWBC MWBA MWAS MOTH AIND APKN ABAN AOTH BCRB BAFR BOTH CHNE "
                  "OOTH REFU NOBT".split()),
}
CIN_CODES = {"PrimaryNeedCode": {f"N{i}" for i in range(10)}, "ReasonForClosure": {f"RC{i}" for i in range(1, 10)}}


def place_codes(year: int) -> set[str]:
    codes = (PLACE - {"H5", "P2"}) | {"K3"} if year >= 2025 else set(PLACE)
    return codes | {"Z11", "Z12", "Z13", "Z14"} if year >= 2026 else codes


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    text, _ = decode(path.read_bytes())
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def is_uk_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%d/%m/%Y")
        return True
    except ValueError:
        return False


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    summary = generate_landing(root, n_las=3, years=YEARS, scale=0.1, seed=3, error_rate=0, xml_903_every=3)
    return root, summary


def csv_councils(root: Path, summary: dict) -> list[str]:
    return [la for la in summary["las"] if not list((root / la / "ssda903").rglob("*.xml"))]


def test_layout_and_summary(landing):
    root, summary = landing
    assert len(summary["las"]) == 3 and summary["years"] == list(YEARS)
    assert summary["referrals"] > summary["episodes"] > 0 and summary["seconds"] >= 0
    xml_las = []
    for la in summary["las"]:
        assert la.isdigit() and len(la) == 3
        for y in YEARS:
            assert (root / la / "cin_census" / f"CIN_Census_{y}.xml").is_file()
            names = {p.name for p in (root / la / "ssda903" / f"year={y}").iterdir()}
            if names == {f"ssda903_{y}.xml"}:
                xml_las.append(la)
            else:
                assert names == {f"{t}.csv" for t in COLUMNS}, names
    assert sorted(set(xml_las)) == [summary["las"][2]]  # every 3rd council sends XML
    assert summary["files"] == {"ssda903": 2 * len(COLUMNS) * 2 + 2, "cin_census": 6, "published": 0}


def test_csv_headers_dates_and_codes(landing):
    root, summary = landing
    encodings = set()
    for la in csv_councils(root, summary):
        for y in YEARS:
            for table, expected in COLUMNS.items():
                path = root / la / "ssda903" / f"year={y}" / f"{table}.csv"
                encodings.add(path.read_bytes()[:3] == b"\xef\xbb\xbf")
                header, rows = read_table(path)
                assert header == expected, path
                for row in rows:
                    assert row["CHILD"], path
                    for col in DATES & set(row):
                        assert row[col] == "" or is_uk_date(row[col]), (path, col, row[col])
                    for col, valid in CODES.items():
                        if col in row and row[col]:
                            assert row[col] in valid, (path, col, row[col])
                    if table == "episodes":
                        assert row["PLACE"] in place_codes(y), (y, row["PLACE"])
                        assert row["DECOM"] and row["RNE"] and row["LS"]
                    if table in ("header", "uasc"):
                        assert row["SEX"] in ({"1", "2"} if y <= 2024 else {"M", "F", "U"}), (y, row["SEX"])
                if table == "sw_episodes":  # one to four social workers per child in the year
                    workers = [r["CHILD"] for r in rows]
                    assert workers and max(workers.count(c) for c in set(workers)) <= 4
    assert encodings == {True, False}  # one council writes a UTF-8 BOM, the other does not


def test_episode_chains(landing):
    root, summary = landing
    open_2024 = {}
    for la in csv_councils(root, summary):
        for y in YEARS:
            _, rows = read_table(root / la / "ssda903" / f"year={y}" / "episodes.csv")
            by_child: dict[str, list[dict]] = {}
            for row in rows:
                by_child.setdefault(row["CHILD"], []).append(row)
            for child, eps in by_child.items():
                eps.sort(key=lambda r: datetime.strptime(r["DECOM"], "%d/%m/%Y"))
                for prev, nxt in zip(eps, eps[1:]):
                    assert prev["DEC"] == nxt["DECOM"] and prev["REC"] == "X1", (child, prev, nxt)
                last = eps[-1]
                assert (last["DEC"] == "") == (last["REC"] == ""), last
                if y == 2024 and last["DEC"] == "":
                    open_2024[(la, child)] = last["DECOM"]
                if y == 2025 and (la, child) in open_2024:  # still looked after: the same episode continues
                    assert open_2024.pop((la, child)) in {e["DECOM"] for e in eps}
    assert not open_2024, "children in care on 31 March 2024 missing from the 2025 return"


def cin_children(path: Path, year: int, la: str) -> dict[str, dict]:
    root = ET.parse(path).getroot()
    assert root.tag == "Message"
    assert root.findtext("Header/CollectionDetails/Collection") == "CIN"
    assert root.findtext("Header/CollectionDetails/Year") == str(year)
    assert root.findtext("Header/CollectionDetails/ReferenceDate") == f"{year}-03-31"
    assert root.findtext("Header/Source/LEA") == la
    out = {}
    for child in root.iterfind("Children/Child"):
        ids = child.find("ChildIdentifiers")
        sex = ids.findtext("Sex" if year >= 2025 else "GenderCurrent")
        assert sex in ({"M", "F", "U"} if year >= 2025 else {"0", "1", "2", "9"})
        assert ids.find("GenderCurrent" if year >= 2025 else "Sex") is None
        for details in child.iterfind("CINdetails"):
            datetime.strptime(details.findtext("CINreferralDate"), "%Y-%m-%d")
            for tag, valid in CIN_CODES.items():
                value = details.findtext(tag)
                assert value is None or value in valid, (tag, value)
        out[ids.findtext("LAchildID")] = {"upn": ids.findtext("UPN"), "episodes": len(child.findall("CINdetails"))}
    return out


def test_cin_census_and_same_children(landing):
    root, summary = landing
    for la in csv_councils(root, summary):
        for y in YEARS:
            cin = cin_children(root / la / "cin_census" / f"CIN_Census_{y}.xml", y, la)
            assert cin and all(c["episodes"] >= 1 for c in cin.values())
            _, header = read_table(root / la / "ssda903" / f"year={y}" / "header.csv")
            upn = {r["CHILD"]: r["UPN"] for r in header}
            _, episodes = read_table(root / la / "ssda903" / f"year={y}" / "episodes.csv")
            looked_after = {r["CHILD"] for r in episodes if r["DEC"] == ""}
            assert looked_after and looked_after <= set(cin)
            for child in looked_after:
                assert cin[child]["upn"] in (None, upn[child]) and (cin[child]["upn"] or upn[child].startswith("UN"))


def test_ssda903_xml_follows_the_sample_shape(landing):
    root, summary = landing
    la = summary["las"][2]
    for y in YEARS:
        tree = ET.parse(root / la / "ssda903" / f"year={y}" / f"ssda903_{y}.xml").getroot()
        assert tree.tag == "EXPSSDA903"
        children = tree.findall("CHILD")
        assert children and all(c.findtext("HEADER/CHILDID") for c in children)
        places = [e.findtext("PL") for e in tree.iter("EPISODE")]
        assert places and set(places) <= place_codes(y)
        assert {c.findtext("HEADER/SEX") for c in children} <= ({"1", "2"} if y <= 2024 else {"M", "F", "U"})
        assert all(h.find("PERMANENCE/PREV_PERM") is not None for h in tree.iter("HEADER"))


def test_faults_only_when_asked(tmp_path):
    summary = generate_landing(tmp_path, n_las=2, years=(2025,), scale=0.1, seed=1, error_rate=0.05,
                               xml_903_every=0)
    assert summary["faulty_rows"] > 0
    bad = 0
    for la in summary["las"]:
        for path in (tmp_path / la / "ssda903" / "year=2025").glob("*.csv"):
            _, rows = read_table(path)
            for row in rows:
                bad += not row["CHILD"]
                bad += sum(1 for c in DATES & set(row) if row[c] and not is_uk_date(row[c]))
                bad += sum(1 for c, valid in CODES.items() if row.get(c) and row[c] not in valid)
    assert bad > 0


def test_sw_episodes_start_in_2024_and_output_is_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        generate_landing(tmp_path / run, la_codes=["821"], years=(2023,), scale=0.05, seed=5)
        files = sorted((tmp_path / run).rglob("*.*"))
        digests.append([(p.relative_to(tmp_path / run).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
                        for p in files])
    names = {name for name, _ in digests[0]}
    assert "821/ssda903/year=2023/sw_episodes.csv" not in names
    assert "821/ssda903/year=2023/episodes.csv" in names
    assert digests[0] == digests[1]


def test_published_statistics_are_copied_unchanged(tmp_path):
    ees = tmp_path / "ees"
    ees.mkdir()
    (ees / "cla_rates.csv").write_bytes(b"time_period,geographic_level\r\n2025,National\r\n")
    (ees / "notes.txt").write_text("not a csv")
    summary = generate_landing(tmp_path / "landing", la_codes=["886"], years=(2025,), scale=0.02,
                               ees_source=ees)
    assert summary["files"]["published"] == 1
    assert (tmp_path / "landing" / "published" / "cla_rates.csv").read_bytes() == (ees / "cla_rates.csv").read_bytes()
