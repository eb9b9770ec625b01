"""The revenue outturn (RO3) workbook is read as published: an ODS with notes above a header row and the
return's codes in a hidden last row (transforms/ingest/readers/ods.py)."""
import pytest
from conftest import SHARED

from transforms.ingest.readers.ods import read_ro3

RO3 = SHARED / "reference" / "spend" / "RO3_LA_Data_2024-25_data_by_LA.ods"


@pytest.fixture(scope="module")
def ro3():
    return read_ro3(RO3)


def net(frame, service):
    rows = frame[(frame["line"] == "Net Current Expenditure") & (frame["service"] == service)]
    return rows.set_index("la_code")["value"]


def test_every_council_with_childrens_services_is_read_and_matched_to_its_dfe_code(ro3):
    councils = ro3["la_code"].dropna().unique()
    assert len(councils) >= 150 and ro3["la_code"].notna().all()
    assert set(ro3["la_class"]) <= {"UA", "MD", "London", "SC"}
    assert ro3.loc[ro3["la_code"] == "301", "la_name"].iloc[0] == "Barking & Dagenham"


def test_the_looked_after_lines_add_up_to_their_total(ro3):
    total = net(ro3, "Children Looked After")
    parts = sum(net(ro3, f"Children Looked After of which {p}") for p in
                ("residential care", "fostering services", "asylum seeking children who are looked after", "other"))
    both = total.notna() & parts.notna()
    assert both.sum() >= 140
    assert ((total[both] - parts[both]).abs() <= 2).mean() > 0.95      # thousands, rounded per cell


def test_cells_not_returned_are_missing_never_zero(ro3):
    # Gateshead could not provide parts of its return ([note 4]); its [x] cells are missing
    gateshead = ro3[ro3["la_name"] == "Gateshead"]
    assert gateshead["value"].isna().any() and not gateshead["value"].isna().all()


def test_the_hidden_row_gives_each_cell_its_return_code(ro3):
    codes = ro3.drop_duplicates(["service", "line"])["ro_code"]
    assert codes.notna().all() and codes.str.startswith("RO3-").all()


@pytest.mark.slow   # ingests the real workbook and builds a catalogue (~30 s)
def test_the_workbook_lands_under_reference_and_becomes_the_spend_relation(tmp_path):
    import shutil

    import duckdb

    from transforms.run import ingest

    landing, repo = tmp_path / "landing", tmp_path / "repo"
    (landing / "reference" / "spend_ro3").mkdir(parents=True)
    shutil.copy(RO3, landing / "reference" / "spend_ro3" / RO3.name)
    [row] = ingest(landing, repo)
    assert row["status"] == "loaded" and row["rows_loaded"] > 12000
    with duckdb.connect(str(repo / "csreturns.duckdb"), read_only=True) as con:
        councils, missing = con.execute("""SELECT count(DISTINCT la_code), count(*) FILTER (WHERE value IS NULL)
                                           FROM spend_ro3""").fetchone()
    assert councils >= 150 and missing > 0
