"""Files are recognised from their content and place; what cannot be recognised says why."""
import pytest
from conftest import EES, SAMPLES, need, put

from transforms.ingest.landing import discover, identify

EPISODES_HEADER = "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\n"


def test_ssda903_table_is_recognised_by_its_header_row_whatever_the_file_name(landing):
    path = put(landing, "301/year=2024/export_7.csv", EPISODES_HEADER + "A1,01/04/2023,S,C2,N1,U1,PR1,,,,,,\n")
    arrival = identify(path, landing)
    assert (arrival.collection, arrival.table, arrival.la_code) == ("ssda903", "episodes", "301")
    assert (arrival.return_year, arrival.year_source) == (2024, "folder")


def test_header_matching_tolerates_case_spaces_and_a_bom(landing):
    text = "\ufeffchild , Decom,rne,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\n"
    arrival = identify(put(landing, "301/year=2024/eps.csv", text), landing)
    assert arrival.table == "episodes" and arrival.problem is None


def test_missing_required_column_names_the_table_and_column(landing):
    text = EPISODES_HEADER.replace("PLACE,", "") + "A1,01/04/2023,S,C2,N1,PR1,,,,,,\n"
    arrival = identify(put(landing, "301/year=2024/eps.csv", text), landing)
    assert "ssda903_episodes" in arrival.problem and "PLACE" in arrival.problem


def test_year_from_the_name_when_no_year_folder(landing):
    arrival = identify(put(landing, "301/episodes_2023.csv", EPISODES_HEADER), landing)
    assert (arrival.return_year, arrival.year_source) == (2023, "name")


def test_ssda903_year_is_inferred_for_the_whole_folder_from_event_dates(landing):
    put(landing, "301/march_extract/episodes.csv", EPISODES_HEADER + "A1,10/02/2024,S,C2,N1,U1,PR1,,,,,,\n")
    put(landing, "301/march_extract/header.csv", "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nA1,1,01/01/2010,WBRI,,,\n")
    years = {a.table: (a.return_year, a.year_source) for a in discover(landing)}
    assert years == {"episodes": (2024, "content"), "header": (2024, "content")}


def test_cin_census_is_recognised_by_root_and_header(landing):
    path = put(landing, "201/cin.xml", need(SAMPLES / "cin_census" / "CIN_Census_2024.xml"))
    arrival = identify(path, landing)
    assert (arrival.collection, arrival.la_code, arrival.return_year, arrival.year_source) == (
        "cin_census", "201", 2024, "header")


def test_cin_census_in_another_councils_folder_is_refused(landing):
    path = put(landing, "301/cin.xml", need(SAMPLES / "cin_census" / "CIN_Census_2024.xml"))
    assert "LEA 201" in identify(path, landing).problem


def test_published_statistics_are_recognised_as_ees(landing):
    path = put(landing, "published/c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv", need(EES / "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"))
    arrival = identify(path, landing)
    assert (arrival.collection, arrival.dataset, arrival.la_code, arrival.return_year) == (
        "published", "c1_referrals", None, None)


def test_unknown_files_are_recognised_as_problems_not_skipped(landing):
    put(landing, "301/notes.txt", "hello")
    put(landing, "301/year=2024/mystery.csv", "A,B,C\n1,2,3\n")
    problems = {a.relpath: a.problem for a in discover(landing)}
    assert "no collection schema reads .txt" in problems["301/notes.txt"]
    assert "matches no declared return table" in problems["301/year=2024/mystery.csv"]


def test_a_council_file_outside_an_la_folder_is_a_problem(landing):
    arrival = identify(put(landing, "episodes_2024.csv", EPISODES_HEADER), landing)
    assert "which council" in arrival.problem


def test_each_collection_discovers_its_own_files_and_the_sweep_takes_the_rest(landing):
    put(landing, "301/year=2024/episodes.csv", EPISODES_HEADER)
    put(landing, "301/ssda903/notes.docx", b"minutes")
    put(landing, "301/notes.txt", "hello")
    assert {a.relpath for a in discover(landing, "ssda903")} == {"301/year=2024/episodes.csv", "301/ssda903/notes.docx"}
    assert {a.relpath for a in discover(landing, "unrecognised")} == {"301/notes.txt"}


@pytest.mark.slow
def test_a_collections_own_discovery_finds_exactly_its_share_of_the_whole_landing_area(tmp_path):
    """Each DAG discovers only its collection, opening only files of kinds it could be (by suffix): that must
    give each collection exactly what identifying the whole landing area gives it, no more and no less."""
    from transforms.ingest.landing import UNRECOGNISED, taken_by
    from transforms.orchestration.dags import collection_ids
    from transforms.synthetic.generator import generate_landing

    landing = tmp_path / "landing"
    generate_landing(landing, la_codes=["301"], years=[2025], ees_source=need(EES))
    workbook = next(landing.glob("301/annex_a/*.xlsx"))
    put(landing, "301/ssda903/Annex_A_copy.xlsx", workbook)       # a workbook in a return's folder
    put(landing, "301/Annex_A_loose.xlsx", workbook)              # and in no return's folder
    put(landing, "301/cin_census/notes.docx", b"minutes")
    put(landing, "301/notes.txt", "hello")
    put(landing, "301/year=2024/mystery.csv", "A,B,C\n1,2,3\n")

    def described(arrivals):
        return {(a.relpath, a.collection, a.return_year, a.problem) for a in arrivals}

    everything = discover(landing)
    shares = {c: described(discover(landing, c)) for c in collection_ids()}
    for collection, share in shares.items():
        assert share == described(a for a in everything if taken_by(a) == collection), collection
    assert sum(len(s) for s in shares.values()) == len(everything)
    assert {c for c, s in shares.items() if s} >= {"ssda903", "cin_census", "annex_a", "csww", "sen2", UNRECOGNISED}
