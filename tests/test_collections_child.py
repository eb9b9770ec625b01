"""Child- and worker-level collections beyond SSDA903/CIN: Annex A (XLSX), CSWW, SEN2, school census.

Expected counts are derived from the files themselves (openpyxl rows, lxml elements, CSV lines), never
typed in, and every sample is taken through the real pipeline into a temporary repository.
"""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import duckdb
import openpyxl
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES, need, put
from lxml import etree

from transforms import schema
from transforms.ingest.landing import identify
from transforms.ingest.readers.xlsx import decode_labelled, match_sheet, read_xlsx
from transforms.run import ingest

ANNEX_A = SAMPLES / "annex_a" / "Annex_A_2024_Jan.xlsx"
CSWW = SAMPLES / "csww" / "social_work_workforce_2022.xml"
SEN2 = SAMPLES / "sen2" / "sen2_sample_2025.xml"
SCHOOL_CENSUS = SAMPLES / "school_census" / "2025_spring_pupilonroll.csv"


def parquet_rows(repo_root: Path, collection: str, table: str) -> int:
    files = list((repo_root / "parquet").glob(f"collection={collection}/table={table}/*/*/data.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


def table_df(repo_root: Path, collection: str, table: str):
    glob = (repo_root / "parquet" / f"collection={collection}" / f"table={table}" / "*" / "*" / "data.parquet").as_posix()
    return duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true)").df()


def quarantined(repo_root: Path):
    files = list((repo_root / "quarantine").glob("*.parquet"))
    if not files:
        return []
    glob = (repo_root / "quarantine" / "*.parquet").as_posix()
    return duckdb.sql(f"SELECT table_name, source_row, field, message FROM read_parquet('{glob}')").fetchall()


def sheet_data_rows(path: Path) -> dict[str, int]:
    """Non-blank rows below the first row of each sheet, counted with openpyxl alone."""
    wb = openpyxl.load_workbook(path, read_only=True)
    counts = {ws.title: sum(1 for row in ws.iter_rows(min_row=2, values_only=True)
                            if any(v not in (None, "") for v in row)) for ws in wb.worksheets}
    wb.close()
    return counts


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """The Annex A, CSWW and SEN2 samples ingested once (the school census has its own test)."""
    base = tmp_path_factory.mktemp("child_samples")
    landing, repo_root = base / "landing", base / "repository"
    put(landing, "301/annex_a/Annex_A_2024_Jan.xlsx", need(ANNEX_A))
    put(landing, "301/csww/social_work_workforce_2022.xml", need(CSWW))
    put(landing, "201/sen2/sen2_sample_2025.xml", need(SEN2))
    rows = ingest(landing, repo_root, refresh=False)
    return repo_root, {r["collection"]: r for r in rows}


# -- Annex A ---------------------------------------------------------------------------------------
def test_annex_a_sample_is_recognised_by_its_sheets_with_the_year_from_its_name(tmp_path):
    put(tmp_path, "301/Annex_A_2024_Jan.xlsx", need(ANNEX_A))
    arrival = identify(tmp_path / "301/Annex_A_2024_Jan.xlsx", tmp_path)
    assert (arrival.format, arrival.collection, arrival.return_year, arrival.problem) == ("xlsx", "annex_a", 2024, None)
    assert set(arrival.tables) == set(schema.collection("annex_a").table_names)


def test_every_annex_a_list_loads_all_its_rows_or_quarantines_them(samples):
    repo_root, ledger = samples
    sheets = sheet_data_rows(ANNEX_A)
    coll = schema.collection("annex_a")
    problems = quarantined(repo_root)
    for name in coll.table_names:
        sheet = coll.spec["tables"][name]["xlsx"]["sheet"]
        held = sum(1 for t, *_ in problems if t == coll.relation(name))
        assert parquet_rows(repo_root, "annex_a", name) + held == sheets[sheet], name
    assert ledger["annex_a"]["rows_in"] == sum(sheets.values())


def test_an_annex_a_value_that_is_not_a_code_is_quarantined_naming_it(samples):
    repo_root, ledger = samples
    held = [q for q in quarantined(repo_root) if q[0] == "annex_a_children_in_need"]
    assert [(q[1], q[2]) for q in held] == [(2, "Primary Need Code")]   # row 2 of List 6 in Excel
    assert "'PSRMEM'" in held[0][3]
    assert ledger["annex_a"]["status"] == "partly_loaded"


def _sheet_column(sheet: str, header: str) -> list:
    wb = openpyxl.load_workbook(ANNEX_A, read_only=True, data_only=True)
    rows = list(wb[sheet].iter_rows(values_only=True))
    wb.close()
    return [r[rows[0].index(header)] for r in rows[1:]]


def test_annex_a_drop_down_text_is_stored_as_codes(samples):
    repo_root, _ = samples
    cla = table_df(repo_root, "annex_a", "children_in_care").sort_values("source_row")
    # "f) U6: Foster placement - not FFA" -> U6, "e) PR4 - Private provision" -> PR4, "b) Female" -> F
    assert cla["placement_type"].tolist() == [v.split(") ")[1].split(":")[0] for v in _sheet_column("List 8", "Placement Type")]
    assert cla["placement_provider"].tolist() == [v.split(") ")[1].split(" - ")[0]
                                                  for v in _sheet_column("List 8", "Placement Provider")]
    assert cla["gender"].tolist() == [v.split(") ")[-1][0] for v in _sheet_column("List 8", "Gender")]
    assert cla["disabled"].tolist() == [v.endswith("Yes") for v in _sheet_column("List 8", "Does the Child have a Disability")]
    contacts = table_df(repo_root, "annex_a", "contacts").sort_values("source_row")
    assert contacts["contact_source"].tolist() == [v.split(") ")[1].split(":")[0] for v in _sheet_column("List 1", "Contact Source")]


# -- the XLSX reader on messy workbooks ------------------------------------------------------------
def _workbook(path: Path, title: str, rows: list[list]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def _read(path: Path, table: str = "contacts"):
    coll = schema.collection("annex_a")
    return read_xlsx(path, coll, [coll.table(table, 2024)])


def test_reader_finds_the_sheet_and_header_despite_a_title_block_case_and_spacing(tmp_path):
    path = _workbook(tmp_path / "a.xlsx", "list1 - Contacts", [
        ["Annex A: contacts, 1 April to 31 March"], [],
        ["CHILD  unique id", "gender", "ethnicity", "D.O.B.", "Date of contact:", "contact source"],
        [1001, "a) Male", "a) WBRI", datetime(2015, 1, 2), datetime(2024, 1, 3), "q) 6: Police"]])
    raw = _read(path)
    df = raw.tables["contacts"]
    assert raw.meta["contacts.header_row"] == "3"
    assert df.loc[0, ["Child Unique ID", "Date of Contact", "Contact Source"]].tolist() == ["1001", "2024-01-03", "6"]


def test_extra_columns_are_left_out_and_blank_rows_skipped_keeping_excel_row_numbers(tmp_path):
    path = _workbook(tmp_path / "b.xlsx", "List 1", [
        ["Child Unique ID", "Notes from the team", "Gender", "Date of Contact", "Contact Source"],
        [1, "call back", "Female", datetime(2024, 1, 3), "6"], [None, None, None, None, None], [],
        [2, "", "b) Female", datetime(2024, 1, 4), "8"]])
    raw = _read(path)
    df = raw.tables["contacts"]
    assert df["source_row"].tolist() == [2, 5]
    assert "Notes from the team" not in df.columns and raw.meta["contacts.ignored_columns"] == "Notes from the team"
    assert df["Gender"].tolist() == ["F", "F"]


def test_dates_typed_as_text_or_left_as_excel_serials_become_iso_dates(tmp_path):
    path = _workbook(tmp_path / "c.xlsx", "List 1", [
        ["Child Unique ID", "Date of Birth", "Date of Contact", "Contact Source"],
        [1, "02/01/2015", 45294, "6"], [2, "2015-01-02", "3 Jan 2024", "6"], [3, "not known", "31/02/2024", "6"]])
    df = _read(path).tables["contacts"]
    assert df["Date of Birth"].tolist() == ["2015-01-02", "2015-01-02", "not known"]   # kept for validation to reject
    assert df["Date of Contact"].tolist() == ["2024-01-03", "2024-01-03", "31/02/2024"]


def test_a_header_with_a_typo_is_matched_and_a_workbook_without_the_header_is_unreadable(tmp_path):
    ok = _workbook(tmp_path / "d.xlsx", "List 3", [
        ["Child Unique ID", "Date of Referal", "Referral Source"], [7, datetime(2024, 2, 1), "q) 6: Police"]])
    assert _read(ok, "referrals").tables["referrals"].loc[0, "Date of Referral"] == "2024-02-01"
    bad = _workbook(tmp_path / "e.xlsx", "List 3", [["Name", "Address"], ["x", "y"]])
    with pytest.raises(ValueError, match="no header row"):
        _read(bad, "referrals")


def test_sheet_names_match_tolerantly_but_list_10_is_not_list_1():
    assert match_sheet(["Cover", "LIST1 contacts", "List 10"], "List 1") == "LIST1 contacts"
    assert match_sheet(["List 10", "List 11"], "List 1") is None
    assert match_sheet(["Contacts"], "List 1", ["Contacts"]) == "Contacts"


def test_labelled_codes_decode_letters_code_label_pairs_and_bare_labels():
    codes = {"M": "Male", "F": "Female"}
    need_codes = {"N1": "Abuse or neglect", "N2": "Child's disability"}
    assert [decode_labelled(v, codes) for v in ("a) Male", "Female", "(b) female", "m")] == ["M", "F", "F", "M"]
    assert decode_labelled("N1 - Abuse or Neglect", need_codes) == "N1"
    assert decode_labelled("f) U6: Foster placement - not FFA", None) == "U6"
    assert decode_labelled("c) Child in need plan", None) == "Child in need plan"
    assert decode_labelled("Abuse or neglect", need_codes) == "N1"


def test_a_workbook_of_unknown_sheets_is_rejected_with_its_reason(tmp_path, repo_root):
    landing = tmp_path / "landing"
    (landing / "301").mkdir(parents=True)
    _workbook(landing / "301" / "budget_2024.xlsx", "Budget 2024", [["Cost centre", "Amount"], ["A1", 3]])
    rows = ingest(landing, repo_root, refresh=False)
    assert rows[0]["status"] == "rejected" and "match no declared collection" in rows[0]["reason"]


# -- CSWW ------------------------------------------------------------------------------------------
def test_csww_sample_loads_every_worker_and_the_la_level_block(samples):
    repo_root, ledger = samples
    tree = etree.parse(str(CSWW))
    assert parquet_rows(repo_root, "csww", "workers") == len(tree.findall(".//CSWWWorker"))
    assert parquet_rows(repo_root, "csww", "la_level") == len(tree.findall(".//LALevelVacancies")) == 1
    la = table_df(repo_root, "csww", "la_level")
    assert la.loc[0, "vacancies_fte"] == float(tree.findtext(".//NumberOfVacancies"))
    assert (ledger["csww"]["status"], ledger["csww"]["return_year"]) == ("loaded", 2022)


def _csww(year: int, ref_date: str | None, gender_tag: str, gender: str, sweno: str = "AB1234567890",
          la: str = "301") -> str:
    ref = f"<ReferenceDate>{ref_date}</ReferenceDate>" if ref_date else ""
    return (f"<Message><Header><CollectionDetails><Collection>CSWW</Collection>"
            f"{f'<Year>{year}</Year>' if year else ''}{ref}</CollectionDetails><Source><LEA>{la}</LEA></Source></Header>"
            f"<LALevelVacancies><NumberOfVacancies>3.5</NumberOfVacancies><NoAgencyFTE>2</NoAgencyFTE>"
            f"<NoAgencyHeadcount>2</NoAgencyHeadcount></LALevelVacancies>"
            f"<CSWWWorker><AgencyWorker>0</AgencyWorker><SWENo>{sweno}</SWENo><FTE>1</FTE>"
            f"<{gender_tag}>{gender}</{gender_tag}><OrgRole>5</OrgRole><Cases30>17</Cases30></CSWWWorker></Message>")


def test_csww_return_year_is_the_year_of_its_30_september_census_day(tmp_path):
    put(tmp_path, "301/csww_2022.xml", _csww(0, "2023-09-30", "Sex", "F"))
    arrival = identify(tmp_path / "301/csww_2022.xml", tmp_path)
    assert (arrival.collection, arrival.return_year, arrival.year_source) == ("csww", 2023, "header")


def test_csww_sex_comes_from_gender_current_before_2024_and_from_sex_after(landing, repo_root):
    put(landing, "301/a/csww.xml", _csww(2023, "2023-09-30", "GenderCurrent", "2", "AB0000000001"))
    put(landing, "301/b/csww.xml", _csww(2024, "2024-09-30", "Sex", "F", "AB0000000001"))
    put(landing, "302/c/csww.xml", _csww(2024, "2024-09-30", "Sex", "2", "AB0000000002", "302"))   # old code, new field
    rows = {r["la_code"] + str(r["return_year"]): r for r in ingest(landing, repo_root, refresh=False)}
    workers = table_df(repo_root, "csww", "workers")
    assert dict(zip(workers["return_year"], workers["sex"])) == {2023: "2", 2024: "F"}
    assert rows["3022024"]["rows_quarantined"] == 1
    assert any(q[2] == "Sex" and "'2'" in q[3] for q in quarantined(repo_root))
    assert workers["worker_id"].nunique() == 1   # one worker across two censuses: same pseudonym


# -- SEN2 ------------------------------------------------------------------------------------------
def test_sen2_sample_flattens_persons_requests_plans_placements_and_needs(samples):
    repo_root, ledger = samples
    tree = etree.parse(str(SEN2))
    expected = {"persons": ".//Person", "requests": ".//Requests", "assessments": ".//Requests/Assessment",
                "named_plans": ".//NamedPlan", "plan_details": ".//NamedPlan/PlanDetail",
                "active_plans": ".//ActivePlans", "placements": ".//ActivePlans/PlacementDetail",
                "sen_needs": ".//SENneed"}
    for table, xpath in expected.items():
        assert parquet_rows(repo_root, "sen2", table) == len(tree.findall(xpath)), table
    requests = table_df(repo_root, "sen2", "requests")
    assert sorted(zip(requests["person_seq"], requests["request_seq"])) == [(1, 1), (2, 1), (2, 2)]
    assert (ledger["sen2"]["la_code"], ledger["sen2"]["return_year"]) == ("201", 2025)


# -- privacy ---------------------------------------------------------------------------------------
def test_no_raw_identifier_name_or_free_text_reaches_the_parquet(samples):
    repo_root, _ = samples
    tree = etree.parse(str(CSWW))
    sen2 = etree.parse(str(SEN2))
    secrets = {e.text for e in tree.iter("SWENo")} | {e.text for e in sen2.iter("UPN", "Surname", "Forename",
                                                                                  "UniqueLearnerNumber", "SENSettingOther")}
    wb = openpyxl.load_workbook(ANNEX_A, read_only=True)
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        for col in ("Child Unique ID", "Allocated Worker", "Individual adopter identifier"):
            if col in rows[0]:
                secrets |= {str(r[rows[0].index(col)]) for r in rows[1:] if r[rows[0].index(col)] not in (None, "#N/A")}
    wb.close()
    stored = set()
    for f in (repo_root / "parquet").rglob("*.parquet"):
        for column in pq.read_table(f).columns:
            stored |= {str(v) for v in column.to_pylist() if v is not None}
    assert secrets and not secrets & stored
    births = table_df(repo_root, "annex_a", "contacts")["birth_date"].dropna()
    assert (births.dt.day == 1).all()


# -- school census ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_school_census_sample_loads_into_the_table_of_its_term(landing, repo_root):
    put(landing, "301/school_census/2025_spring_pupilonroll.csv", need(SCHOOL_CENSUS))
    with open(SCHOOL_CENSUS, encoding="utf-8-sig") as fh:
        expected = sum(1 for row in csv.reader(fh) if any(c.strip() for c in row)) - 1
    [row] = ingest(landing, repo_root, refresh=False)
    assert (row["collection"], row["table"], row["return_year"], row["status"]) == ("school_census", "spring", 2025, "loaded")
    assert parquet_rows(repo_root, "school_census", "spring") == expected
    pupils = table_df(repo_root, "school_census", "spring")
    assert "surname" not in pupils.columns and not pupils["upn"].str.contains("-").any()


def test_a_school_census_file_must_name_its_term(tmp_path):
    with open(need(SCHOOL_CENSUS), encoding="utf-8") as fh:
        head = "".join(fh.readline() for _ in range(3))
    put(tmp_path, "301/2025_pupilonroll.csv", head)
    put(tmp_path, "301/2024_autumn_pupilonroll.csv", head)
    assert "census term" in identify(tmp_path / "301/2025_pupilonroll.csv", tmp_path).problem
    assert identify(tmp_path / "301/2024_autumn_pupilonroll.csv", tmp_path).tables == ("autumn",)


# -- linked synthetic returns ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    from transforms.synthetic.generator import generate_landing
    base = tmp_path_factory.mktemp("linked")
    landing, repo_root = base / "landing", base / "repository"
    generate_landing(landing, la_codes=["301"], years=[2025], scale=0.15, error_rate=0, seed=3)
    rows = ingest(landing, repo_root, refresh=False)
    return landing, repo_root, rows


@pytest.mark.slow
def test_a_synthetic_councils_returns_all_load(linked):
    landing, _, rows = linked
    assert {r["collection"] for r in rows} >= {"ssda903", "cin_census", "annex_a", "csww", "sen2"}
    assert [r["relpath"] for r in rows if r["status"] != "loaded"] == []


@pytest.mark.slow
def test_children_in_annex_a_are_the_same_pseudonymised_children_as_in_ssda903_and_cin(linked):
    _, repo_root, _ = linked
    in_care = set(table_df(repo_root, "annex_a", "children_in_care")["child_id"])
    episodes = set(table_df(repo_root, "ssda903", "episodes")["child_id"])
    referred = set(table_df(repo_root, "annex_a", "referrals")["child_id"])
    cin_children = set(table_df(repo_root, "cin_census", "children")["child_id"])
    assert in_care and in_care == episodes
    assert referred and referred <= cin_children


@pytest.mark.slow
def test_csww_caseloads_add_up_to_the_children_open_on_census_day(linked):
    landing, repo_root, _ = linked
    census = "2024-09-30"
    tree = etree.parse(str(landing / "301" / "cin_census" / "CIN_Census_2025.xml"))
    open_children = set()
    for child in tree.iter("Child"):
        for ep in child.iter("CINdetails"):
            closed = ep.findtext("CINclosureDate")
            if ep.findtext("CINreferralDate") <= census and not (closed and closed <= census):
                open_children.add(child.findtext("ChildIdentifiers/LAchildID"))
    workers = table_df(repo_root, "csww", "workers")
    assert int(workers.loc[workers["return_year"] == 2024, "cases"].sum()) == len(open_children) > 0


@pytest.mark.slow
def test_sen2_persons_include_children_in_need_matched_by_upn(linked):
    _, repo_root, _ = linked
    sen2 = set(table_df(repo_root, "sen2", "persons")["upn"].dropna())
    cin = set(table_df(repo_root, "cin_census", "children")["upn"].dropna())
    assert sen2 & cin and sen2 - cin
