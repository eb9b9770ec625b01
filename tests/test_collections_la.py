"""All 40 collections of the catalogue are declared, and the LA-level and reference ones load: the 27
published EES datasets (one schema per published file over the one EES reader, so 29 schemas), ONS
population, statistical neighbours and the Ofsted lists; `csreturns collections` lists them with what the
repository holds."""
import csv
import fnmatch
import io
import re
from collections import Counter
from contextlib import redirect_stdout

import duckdb
import pytest
from conftest import EES, SHARED, need, put

from transforms import schema
from transforms.ingest.landing import discover, identify
from transforms.run import ingest

NEIGHBOURS = SHARED / "reference" / "statistical_neighbours"
C1 = "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"
CSWW = "csww_indicators_2017_to_2025.csv"
CSWW_HEADLINE = "csww_headline_measures_2017_to_2022.csv"
POPULATION = "ons_mid-year_population_estimates_2012_to_2024.csv"
# A schema is one published file, so a catalogue dataset published as two files has two schemas, and a
# published file the catalogue does not name has a schema (and catalogue entry) of its own.
EES_BEYOND_CATALOGUE = Counter({
    "CSWW indicators (turnover, agency, vacancy, caseload, absence)": 1,   # the 2017-2022 headline layout
    "CLA social worker changes": 1,                                        # la_cla_swcount (stability measures)
})
EES_HEADER = ("time_period,time_identifier,geographic_level,country_code,country_name,region_code,region_name,"
              "old_la_code,new_la_code,la_name")


# -- the catalogue in DOMAIN.md ---------------------------------------------------------------------
def domain_catalogue() -> tuple[list[str], list[str]]:
    """(ids of rows 1-13, the 27 datasets named in prose in row 14-40) from ../shared/DOMAIN.md."""
    text = need(SHARED / "DOMAIN.md").read_text(encoding="utf-8")
    ids, prose = [], None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[0].isdigit():
            ids.append(cells[1])
        elif len(cells) >= 7 and cells[0] == "14-40":
            prose = cells[2].split(":", 1)[1]
    items, depth, current = [], 0, ""
    for ch in prose:  # split on commas outside parentheses
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    items.append(current.strip())
    return ids, items


def test_every_collection_in_the_domain_catalogue_has_a_schema():
    ids, datasets = domain_catalogue()
    colls = schema.collections()
    assert len(ids) == 13 and len(datasets) == 27
    assert set(ids) <= set(colls), f"no schema for {sorted(set(ids) - set(colls))}"
    ees = {c.id: c for c in colls.values() if c.id.startswith("ees_")}
    assert len(ees) == 27 + sum(EES_BEYOND_CATALOGUE.values()) and all(c.kind == "ees" for c in ees.values())
    entries = Counter(c.spec["catalogue_entry"] for c in ees.values())
    assert set(datasets) <= set(entries), f"no schema for {sorted(set(datasets) - set(entries))}"
    assert entries - Counter(datasets) == EES_BEYOND_CATALOGUE
    assert ees["ees_c1_referrals"].dataset == "c1_referrals"
    assert ees["ees_csww_indicators"].spec["period"] == {"end": "09-30"}
    assert "rereferral_percent" in ees["ees_c1_referrals"].spec["measures"]


def test_every_ees_dataset_declares_its_measures_with_units_and_whether_they_are_confirmed():
    from transforms.schema import UNITS, measures

    for coll in (c for c in schema.collections().values() if c.kind == "ees"):
        assert measures(coll), coll.id
        assert {m.get("unit") for m in measures(coll).values()} <= set(UNITS), coll.id
        assert isinstance(coll.spec.get("confirmed"), bool), coll.id
        confirmed_by_file = any(schema.collection("published").dataset_for(f.name)[0] == coll.dataset
                                for f in EES.glob("*.csv"))
        assert coll.spec["confirmed"] == confirmed_by_file, f"{coll.id}: confirmed only where a real file is at hand"


def test_each_collection_builds_its_gx_suites():
    from transforms.ingest.validate import (
        build_ees_suite,
        build_published_suite,
        build_suite,
    )
    from transforms.schema import measures

    for coll in schema.collections().values():
        if coll.kind == "ees":
            suite = build_ees_suite(coll, list(measures(coll)))
            checked = {e.column for e in suite.expectations if type(e).__name__.endswith("Within")}
            assert checked == set(measures(coll)), coll.id
        elif coll.kind == "published":
            assert build_published_suite(coll, ["some_count"]).expectations
        else:
            for year in [None, *coll.change_years]:
                for table in coll.tables(year):
                    assert build_suite(table, coll.date_format).expectations, table.relation


@pytest.mark.airflow
def test_each_collection_has_a_dag_that_imports():
    from airflow.dag_processing.dagbag import DagBag
    from conftest import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert {f"collect_{c}" for c in schema.collections()} <= set(bag.dag_ids)
    doc = bag.dags["collect_ees_c1_referrals"].doc_md
    assert "schemas/ees/c1_referrals.yaml" in doc and "dataset `c1_referrals`" in doc


def test_every_real_ees_file_is_claimed_by_a_dataset_schema_declaring_exactly_its_columns(landing):
    from transforms.ingest.landing import owning_collection
    from transforms.ingest.readers.ees import read_ees
    from transforms.schema import breakdowns, measures

    files = sorted(need(EES).glob("*.csv"))
    assert files
    declared = schema.collection("published").spec["datasets"]
    for f in files:
        claimed_by = [d for d, ds in declared.items()
                      if any(fnmatch.fnmatch(f.name.lower(), p.lower())
                             for p in ([ds["match"]] if isinstance(ds["match"], str) else ds["match"]))]
        assert len(claimed_by) <= 1, f"{f.name} is claimed by more than one schema: {claimed_by}"
        arrival = identify(put(landing, f"published/{f.name}", f), landing)
        owner = owning_collection(arrival)
        assert owner != "published", f"{f.name} is claimed by no schema under schemas/ees/"
        coll = schema.collection(owner)
        meta = read_ees(arrival.path, coll).meta
        assert meta["measures"].split(",") == list(measures(coll)), f.name
        assert [b for b in meta["breakdowns"].split(",") if b] == breakdowns(coll), f.name


def test_every_ees_view_column_is_a_plain_lower_case_name():
    """Schemas declare columns as the reader names them (lower case, `%` read as `percent`), so no view
    column needs more than the quotes a leading digit asks for (d5's 3_months_or_less)."""
    from transforms.catalogue.ees_views import collections, columns

    for coll in collections():
        odd = [c for c in columns(coll) if not re.fullmatch(r"[a-z0-9_]+", c)]
        assert not odd, f"{coll.id}: {odd}"


def test_a_percent_sign_in_an_ees_column_name_is_read_as_percent(landing):
    from transforms.ingest.readers import UnreadableFile
    from transforms.ingest.readers.ees import column_name, read_ees

    assert [column_name(c) for c in ("turnover_rate_fte_%", "Rate%", "\ufeffTime_Period ")] == [
        "turnover_rate_fte_percent", "rate_percent", "time_period"]
    row = "2020,Reporting year,Local authority,E92000001,England,E12000001,North East,805,E06000001,Hartlepool"
    path = put(landing, "published/some_headline_measures.csv",
               EES_HEADER + ",leaver_fte,turnover_rate_fte_%\n" + row + ",12.5,14.2\n")
    wide = read_ees(path, schema.collection("published"))
    assert wide.meta["measures"] == "leaver_fte,turnover_rate_fte_percent"
    assert wide.tables["published_statistics"]["turnover_rate_fte_percent"].tolist() == ["14.2"]
    clash = put(landing, "published/clash.csv", EES_HEADER + ",rate_%,rate_percent\n" + row + ",1,2\n")
    with pytest.raises(UnreadableFile, match="rate_percent"):
        read_ees(clash, schema.collection("published"))


# -- where files go ---------------------------------------------------------------------------------
def test_an_ees_file_goes_to_its_dataset_collection_and_unclaimed_ones_to_published(landing):
    put(landing, f"published/{C1}", need(EES / C1))
    put(landing, "published/our_own_indicators.csv", EES_HEADER + ",things_count\n2025,Reporting year,National,"
        "E92000001,England,,,,,,12\n")
    assert [a.relpath for a in discover(landing, "ees_c1_referrals")] == [f"published/{C1}"]
    assert [a.relpath for a in discover(landing, "published")] == ["published/our_own_indicators.csv"]
    assert discover(landing, "ees_csww_indicators") == []


def test_a_reference_file_must_be_under_its_collection_folder(landing):
    sn = need(NEIGHBOURS / "sn_model_2025_wide.csv")
    arrival = identify(put(landing, "reference/statistical_neighbours/sn_model_2025_wide.csv", sn), landing)
    assert (arrival.collection, arrival.table, arrival.la_code, arrival.return_year) == (
        "statistical_neighbours", "neighbours", None, 2025)
    stray = identify(put(landing, "reference/neighbours/sn_model_2025_wide.csv", sn), landing)
    assert "statistical_neighbours" in stray.problem and "ofsted_judgements" in stray.problem


# -- loading the reference files ----------------------------------------------------------------------
JUDGEMENTS_CSV = """Ofsted: local authority children's services inspection outcomes (management information)
As at 31 August 2025

Local Authority,LA Code,Region,Inspection Framework,Inspection type,Inspection start date,Inspection end date,Publication Date,Overall Effectiveness,The impact of leaders on social work practice with children and families,The experiences and progress of children who need help and protection,The experiences and progress of children in care,The experiences and progress of care leavers,Notes
Hartlepool,805,North East,ILACS,Standard,12/05/2025,23/05/2025,04/07/2025,Good,Good,2: Good,Outstanding,Requires improvement to be good,
Kent,886,South East,ILACS,Short,03/02/2025,07/02/2025,14/03/2025,Inadequate,4,Inadequate,Requires improvement to be good,,re-inspection due

Birmingham,330,West Midlands,ILACS,Standard,01/10/2018,12/10/2018,20/11/2018,Requires improvement to be good,3,Requires improvement to be good,Good,,
"""


def providers_workbook(path):
    """A providers list as Ofsted's monthly XLSX might lay it out: title rows, extra columns, a blank row."""
    from datetime import datetime

    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "Contents"
    ws = wb.create_sheet("Provider level data")
    ws.append(["Children's social care providers as at 31 March 2025"])
    ws.append([])
    ws.append(["URN", "Provider type", "Sector", "Registration status", "Registration date", "Local authority",
               "Region", "Places", "Registered manager", "Overall effectiveness", "Latest full inspection date",
               "Postcode"])
    ws.append(["SC123456", "Children's home", "Private", "Active", datetime(2019, 4, 1), "Kent", "South East",
               4, "A Person", "Good", datetime(2024, 11, 5), "CT1 2AB"])
    ws.append([])
    ws.append(["SC654321", "Independent fostering agency", "Voluntary", "Active", "15/06/2012", "Hartlepool",
               "North East", None, "B Person", "Outstanding", "02/02/2023", "TS24 7QS"])
    ws.append(["2600123", "Supported accommodation", "Local authority", "Active", datetime(2024, 2, 1),
               "Birmingham", "West Midlands", 12, "C Person", "Not yet inspected", None, None])
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The real reference files and a few EES files, plus small Ofsted files, ingested once."""
    root = tmp_path_factory.mktemp("reference")
    landing, repo = root / "landing", root / "repository"
    for name in ("New_Statistical_Neighbour_Groupings_April_2021.csv", "sn_model_2025_wide.csv"):
        put(landing, f"reference/statistical_neighbours/{name}", need(NEIGHBOURS / name))
    for name in (POPULATION, C1, CSWW, CSWW_HEADLINE):
        put(landing, f"published/{name}", need(EES / name))
    put(landing, "reference/ofsted_judgements/la_inspection_outcomes_2025.csv", JUDGEMENTS_CSV)
    (landing / "reference" / "ofsted_providers").mkdir(parents=True)
    providers_workbook(landing / "reference" / "ofsted_providers" / "providers_31_March_2025.xlsx")
    rows = ingest(landing, repo)
    return repo, {r["relpath"]: r for r in rows}


def sql(repo, query, *params):
    with duckdb.connect(str(repo / "csreturns.duckdb"), read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def wide_neighbours(path):
    """(la_code, rank) -> neighbour, read independently with the csv module: the columns named SN<n>/SN_<n>."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    ranks = {i: int(m.group(1)) for i, h in enumerate(header) if (m := re.fullmatch(r"SN_?(\d+)", h.strip()))}
    out = {}
    for row in rows[1:]:
        if row and re.fullmatch(r"\d{3}", row[0].strip()):
            for i, rank in ranks.items():
                if row[i].strip():
                    out[(row[0].strip(), rank)] = row[i].strip()
    return out


@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
@pytest.mark.parametrize("name,year", [("New_Statistical_Neighbour_Groupings_April_2021.csv", 2021),
                                       ("sn_model_2025_wide.csv", 2025)])
def test_statistical_neighbours_become_one_long_row_per_council_and_rank(loaded, name, year):
    repo, rows = loaded
    expected = wide_neighbours(NEIGHBOURS / name)
    assert rows[f"reference/statistical_neighbours/{name}"]["status"] == "loaded"
    got = {(la, rank): nb for la, rank, nb in sql(
        repo, "SELECT la_code, rank, neighbour_code FROM statistical_neighbours WHERE return_year = ?", year)}
    assert got == expected
    closeness = {r[0] for r in sql(repo, "SELECT DISTINCT closeness FROM statistical_neighbours")}
    assert closeness == {"Extremely close", "Very close", "Close", "Somewhat close", "Not close"}


@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
def test_population_loads_as_its_own_collection_and_still_feeds_the_indicators(loaded):
    repo, rows = loaded
    with open(EES / POPULATION, encoding="utf-8-sig", newline="") as fh:
        la_rows = [r for r in csv.DictReader(fh) if r["geographic_level"] == "Local authority"]
    birmingham_2024 = next(float(r["population_estimate"]) for r in la_rows
                           if r["old_la_code"] == "330" and r["time_period"] == "2024")
    assert sql(repo, "SELECT count(*) FROM population WHERE geographic_level = 'Local authority'") == [(len(la_rows),)]
    assert sql(repo, "SELECT population_estimate FROM population WHERE old_la_code = '330' AND time_period = '2024'") == [
        (birmingham_2024,)]
    assert sql(repo, """SELECT value FROM published_statistics WHERE dataset = 'population_0_17'
                        AND measure = 'population_estimate' AND old_la_code = '330' AND time_period = '2024'""") == [
        (birmingham_2024,)]


@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
def test_an_ees_dataset_view_has_one_row_per_source_row_with_its_measures_as_columns(loaded):
    repo, _ = loaded
    with open(EES / C1, encoding="utf-8-sig", newline="") as fh:
        source = list(csv.DictReader(fh))
    national = next(r for r in source if r["geographic_level"] == "National" and r["time_period"] == "2025")
    assert sql(repo, "SELECT count(*) FROM ees_c1_referrals") == [(len(source),)]
    assert sql(repo, """SELECT referral_count, rereferral_percent, category FROM ees_c1_referrals
                        WHERE geographic_level = 'National' AND time_period = '2025'""") == [
        (float(national["referral_count"]), float(national["rereferral_percent"]), national["category"])]
    symbols = {str(s) for s in schema.collection("published").spec["suppression_symbols"]}
    suppressed = sum(1 for r in source if r["rereferral_percent"].strip().lower() in symbols)
    assert sql(repo, "SELECT count(*) FROM ees_c1_referrals WHERE suppressed['rereferral_percent'] IS NOT NULL") == [(suppressed,)]


@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
def test_the_older_csww_headline_file_loads_with_its_percent_columns_named_percent(loaded):
    repo, rows = loaded
    with open(EES / CSWW_HEADLINE, encoding="utf-8-sig", newline="") as fh:
        source = list(csv.DictReader(fh))
    row = rows[f"published/{CSWW_HEADLINE}"]
    assert (row["collection"], row["dataset"], row["status"], row["rows_quarantined"]) == (
        "published", "csww_headline_measures", "loaded", 0)
    assert sql(repo, "SELECT count(*) FROM ees_csww_headline_measures") == [(len(source),)]
    national = next(r for r in source if r["geographic_level"] == "National" and r["time_period"] == "2022")
    assert sql(repo, """SELECT turnover_rate_fte_percent, vacancy_agency_cover_rate_fte_percent, caseload_fte
                        FROM ees_csww_headline_measures WHERE geographic_level = 'National' AND time_period = '2022'""") == [
        (float(national["turnover_rate_fte_%"]), float(national["vacancy_agency_cover_rate_fte_%"]),
         float(national["caseload_fte"]))]
    # agency cover can exceed the vacancies it covers: above 100 is a figure, not an error
    assert sql(repo, "SELECT max(vacancy_agency_cover_rate_fte_percent) FROM ees_csww_headline_measures") == [
        (max(float(r["vacancy_agency_cover_rate_fte_%"]) for r in source
             if r["vacancy_agency_cover_rate_fte_%"] not in ("x", "z", "c")),)]


# The three judgements of the outcomes files the tests land (CSV with a title block, ODS, XLSX), as loaded
THREE_JUDGEMENTS = [("330", "2018-10-01", "2018-11-20", "3", "3", "3", "2", None, 2025),
                    ("805", "2025-05-12", "2025-07-04", "2", "2", "2", "1", "3", 2025),
                    ("886", "2025-02-03", "2025-03-14", "4", "4", "4", "3", None, 2025)]


def ofsted_judgements(repo) -> list[tuple]:
    return sql(repo, """SELECT la_code, inspection_start_date::VARCHAR, publication_date::VARCHAR, overall_effectiveness,
                               leadership, help_and_protection, children_in_care, care_leavers, return_year
                        FROM ofsted_judgements ORDER BY la_code""")


@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
def test_ofsted_judgements_load_from_a_csv_with_a_title_block_and_grades_as_text(loaded):
    repo, rows = loaded
    assert rows["reference/ofsted_judgements/la_inspection_outcomes_2025.csv"]["rows_loaded"] == 3
    assert ofsted_judgements(repo) == THREE_JUDGEMENTS


@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
def test_ofsted_providers_load_from_the_monthly_workbook_keeping_only_declared_fields(loaded):
    repo, rows = loaded
    assert rows["reference/ofsted_providers/providers_31_March_2025.xlsx"]["status"] == "loaded"
    got = sql(repo, """SELECT urn, provider_type, places, registration_date::VARCHAR, inspection_date::VARCHAR, postcode
                       FROM ofsted_providers ORDER BY urn""")
    assert got == [("2600123", "Supported accommodation", 12, "2024-02-01", None, None),
                   ("SC123456", "Children's home", 4, "2019-04-01", "2024-11-05", "CT1"),
                   ("SC654321", "Independent fostering agency", None, "2012-06-15", "2023-02-02", "TS24")]
    columns = {r[0] for r in sql(repo, "SELECT column_name FROM information_schema.columns WHERE table_name = 'ofsted_providers'")}
    assert not {c for c in columns if "manager" in c}   # a person's name is never kept


def test_a_percentage_above_100_is_quarantined_and_the_rest_of_the_file_loads(landing, repo_root):
    text = (EES_HEADER + ",category,referral_count,rereferral_count,rereferral_percent\n"
            "2025,Reporting year,Local authority,E92000001,England,E12000001,North East,805,E06000001,Hartlepool,Referrals,1000,230,23\n"
            "2025,Reporting year,Local authority,E92000001,England,E12000001,North East,806,E06000002,Middlesbrough,Referrals,900,c,140\n"
            "2025,Reporting year,Local authority,E92000001,England,E12000001,North East,807,E06000003,Redcar and Cleveland,Referrals,c,c,c\n")
    put(landing, "published/c1_children_in_need_referrals_extract_2025.csv", text)
    [row] = ingest(landing, repo_root)
    assert (row["collection"], row["dataset"], row["status"], row["rows_loaded"], row["rows_quarantined"]) == (
        "published", "c1_referrals", "partly_loaded", 2, 1)
    [(field, message)] = sql(repo_root, "SELECT field, message FROM quarantine")
    assert field == "rereferral_percent" and "'140'" in message and "percent" in message


# -- csreturns collections -------------------------------------------------------------------------
@pytest.mark.slow   # shares one ingest of the reference files (~15 s)
def test_collections_command_lists_all_forty_with_what_the_repository_holds(loaded):
    from transforms.cli import main

    repo, _ = loaded
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["collections", "--repo", str(repo), "--format", "csv"]) == 0
    listed = {r["collection"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    ids, _ = domain_catalogue()
    catalogue = set(ids) | {c for c in listed if c.startswith("ees_")}
    assert len(catalogue) == 40 + sum(EES_BEYOND_CATALOGUE.values()) and catalogue <= set(listed)
    # beyond the catalogue: the catch-all for unclaimed EES files, and the RO3 revenue outturn (spend, from MHCLG)
    assert set(listed) - catalogue == {"published", "spend_ro3"}
    for row in listed.values():
        assert row["owner"] and row["cadence"] and row["grain"] and row["formats"]
    assert listed["ssda903"]["change_years"] == ", ".join(map(str, schema.collection("ssda903").change_years))

    neighbours = wide_neighbours(NEIGHBOURS / "sn_model_2025_wide.csv").keys() | wide_neighbours(
        NEIGHBOURS / "New_Statistical_Neighbour_Groupings_April_2021.csv").keys()
    assert (int(listed["statistical_neighbours"]["las"]), listed["statistical_neighbours"]["years"]) == (
        len({la for la, _ in neighbours}), "2021, 2025")
    with open(EES / CSWW, encoding="utf-8-sig", newline="") as fh:
        csww = [r for r in csv.DictReader(fh) if r["geographic_level"] == "Local authority"]
    years = sorted({int(r["time_period"]) for r in csww})
    assert (int(listed["ees_csww_indicators"]["las"]), listed["ees_csww_indicators"]["years"]) == (
        len({r["old_la_code"] for r in csww}), f"{years[0]}-{years[-1]}")
    assert listed["ees_csww_indicators"]["last_load"] and not listed["ees_exclusions"]["last_load"]
    assert listed["ees_exclusions"]["las"] == "0" and listed["ssda903"]["las"] == "0"

    relation = dict(sql(repo, "SELECT collection, las FROM collections"))
    assert relation == {c: int(r["las"]) for c, r in listed.items()}


def test_collections_command_without_a_repository_lists_what_is_declared():
    from transforms.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["collections"]) == 0
    lines = out.getvalue().splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith(tuple("0123456789"))}
    assert set(rows) == set(schema.collections())
    assert lines[0].split() == ["collection", "kind", "owner", "cadence", "grain", "formats", "change_years"]
    changes = ", ".join(map(str, schema.collection("ssda903").change_years))
    assert rows["ssda903"].rstrip().endswith(changes)
    assert rows["statistical_neighbours"].split()[1] == "reference" and rows["ees_c1_referrals"].split()[1] == "ees"
    assert lines[-1].startswith(f"{len(schema.collections())} collections:")


def outcomes_workbook(path):
    """Ofsted's current outcomes file as a workbook (ODS or XLSX by the name): the CSV's facts, a title
    block above the header, dates typed as dates, grades as words or "2: Good", a blank row."""
    from datetime import datetime

    import pandas as pd

    lines = list(csv.reader(io.StringIO(JUDGEMENTS_CSV)))
    header = lines[3]
    dated = {i for i, h in enumerate(header) if h.endswith("date") or h.endswith("Date")}
    rows = [["Ofsted: local authority children's services inspection outcomes (management information)"],
            ["As at 31 August 2025"], [], header]
    for line in lines[4:]:
        rows.append([datetime.strptime(v, "%d/%m/%Y") if i in dated and v else (v or None)
                     for i, v in enumerate(line)])
    frame = pd.DataFrame(rows)
    with pd.ExcelWriter(path, engine="odf" if path.suffix == ".ods" else "openpyxl") as book:
        pd.DataFrame([["Contents"], ["LA inspection outcomes"]]).to_excel(book, sheet_name="Contents",
                                                                          header=False, index=False)
        frame.to_excel(book, sheet_name="LA inspection outcomes", header=False, index=False)
    return path


@pytest.mark.parametrize("suffix", [".ods", ".xlsx"])
def test_ofsted_judgements_load_from_the_current_outcomes_workbook_as_ods_or_xlsx(tmp_path, suffix):
    landing, repo = tmp_path / "landing", tmp_path / "repository"
    (landing / "reference" / "ofsted_judgements").mkdir(parents=True)
    outcomes_workbook(landing / "reference" / "ofsted_judgements" / f"la_inspection_outcomes_2025{suffix}")
    [row] = ingest(landing, repo)
    assert (row["status"], row["rows_loaded"], row["rows_quarantined"]) == ("loaded", 3, 0)
    assert ofsted_judgements(repo) == THREE_JUDGEMENTS


SWCOUNT_HEADER = EES_HEADER.replace("old_la_code,new_la_code,la_name", "old_la_code,la_name,new_la_code") + ",cla_group,sw_stability,"


def swcount_rows(year, groups):
    """Hartlepool's rows of la_cla_swcount for ``year``: (group, stability, number, percent)."""
    return "".join(f"{year},Reporting year,Local authority,E92000001,England,E12000001,North East,805,Hartlepool,"
                   f"E06000001,{g},{s},{n},{p}\n" for g, s, n, p in groups)


def test_a_2025_social_worker_changes_file_with_renamed_measures_loads_them_under_their_declared_names(tmp_path):
    # the 2025 release carries 2024 again and a new group, its measures renamed children_count/_percent
    landing, repo = tmp_path / "landing", tmp_path / "repository"
    put(landing, "published/la_cla_swcount.csv", SWCOUNT_HEADER + "children_count,children_percent\n" + swcount_rows(2024, [
        ("CLA on 31 March", "Total children", 210, 100), ("CLA on 31 March", "3 or more social workers during the year", 42, 20)])
        + swcount_rows(2025, [
        ("CLA on 31 March", "Total children", 200, 100), ("CLA on 31 March", "3 or more social workers during the year", "c", "c"),
        ("CLA 2 years on 31 March", "Total children", 90, 100)]))
    [row] = ingest(landing, repo)
    assert (row["dataset"], row["status"], row["rows_quarantined"]) == ("cla_social_worker_changes", "loaded", 0)
    assert sql(repo, """SELECT time_period, sw_stability, number, percentage FROM ees_cla_social_worker_changes
                        WHERE cla_group = 'CLA on 31 March' ORDER BY time_period, sw_stability""") == [
        ("2024", "3 or more social workers during the year", 42.0, 20.0), ("2024", "Total children", 210.0, 100.0),
        ("2025", "3 or more social workers during the year", None, None), ("2025", "Total children", 200.0, 100.0)]
    assert sql(repo, "SELECT DISTINCT measure FROM published_statistics ORDER BY 1") == [("number",), ("percentage",)]


def test_a_file_naming_a_measure_and_its_alias_both_is_refused(landing):
    from transforms.ingest.readers import UnreadableFile
    from transforms.ingest.readers.ees import read_ees

    path = put(landing, "published/la_cla_swcount_2025.csv", SWCOUNT_HEADER + "number,children_count\n"
               + swcount_rows(2025, [("CLA on 31 March", "Total children", 200, 200)]))
    with pytest.raises(UnreadableFile, match="number"):
        read_ees(path, schema.collection("published"))


def test_a_short_ofsted_list_naming_council_date_and_grade_is_read(landing):
    from transforms.ingest.readers.reference import read_reference_csv

    path = put(landing, "reference/ofsted_judgements/outcomes_2023.csv", "Ofsted outcomes\n\n"
               "Local Authority,LA Code,Publication Date,Overall Effectiveness\n"
               "Barking and Dagenham,301,16/06/2023,Inadequate\n")
    arrival = identify(path, landing)
    assert (arrival.problem, arrival.collection, arrival.table) == (None, "ofsted_judgements", "judgements")
    coll = schema.collection("ofsted_judgements")
    frame = read_reference_csv(path, coll, coll.table("judgements")).tables["judgements"]
    assert frame[["la_code", "publication_date", "overall_effectiveness"]].values.tolist() == [["301", "2023-06-16", "4"]]


def test_ofsted_providers_load_from_the_list_published_as_ods(tmp_path):
    import pandas as pd

    landing, repo = tmp_path / "landing", tmp_path / "repository"
    folder = landing / "reference" / "ofsted_providers"
    folder.mkdir(parents=True)
    book = pd.read_excel(providers_workbook(tmp_path / "providers.xlsx"), sheet_name=None, header=None)
    with pd.ExcelWriter(folder / "providers_31_March_2025.ods", engine="odf") as ods:
        for name, frame in book.items():
            frame.to_excel(ods, sheet_name=name, header=False, index=False)
    [row] = ingest(landing, repo)
    assert (row["status"], row["rows_loaded"]) == ("loaded", 3)
    assert sql(repo, "SELECT urn, registration_date::VARCHAR, postcode FROM ofsted_providers ORDER BY urn") == [
        ("2600123", "2024-02-01", None), ("SC123456", "2019-04-01", "CT1"), ("SC654321", "2012-06-15", "TS24")]


def test_an_earlier_release_landed_after_the_latest_never_replaces_it(tmp_path):
    # the 2025 release (2024 as revised, and 2025) and the 2024 release (2024 as first published): landed
    # together they load in name order, so the 2024 release comes second
    landing, repo = tmp_path / "landing", tmp_path / "repository"
    total = [("CLA on 31 March", "Total children")]
    put(landing, "published/la_cla_swcount.csv", SWCOUNT_HEADER + "number,percentage\n"
        + swcount_rows(2024, [(*total[0], 212, 100)]) + swcount_rows(2025, [(*total[0], 200, 100)]))
    put(landing, "published/la_cla_swcount_2024.csv", SWCOUNT_HEADER + "number,percentage\n"
        + swcount_rows(2024, [(*total[0], 210, 100)]))
    rows = {r["relpath"]: r for r in ingest(landing, repo)}
    assert rows["published/la_cla_swcount.csv"]["status"] == "loaded"
    older = rows["published/la_cla_swcount_2024.csv"]
    assert older["status"] == "rejected" and "earlier release" in older["reason"] and "2025-03-31" in older["reason"]
    assert sql(repo, "SELECT time_period, number FROM ees_cla_social_worker_changes ORDER BY 1") == [
        ("2024", 212.0), ("2025", 200.0)]
