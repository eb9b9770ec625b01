"""Each kind of real-world variant of a landed file (issue 11) in variants of its own, beyond the shared cases:
files as spreadsheets save them, years in names, messages without a Collection element, hostile input,
line numbers, and that nothing raw reaches a reason."""
from __future__ import annotations

import os

import pytest
from conftest import SAMPLES, need, put

from transforms import schema
from transforms.ingest.landing import discover, identify, records_in, year_from_name
from transforms.ingest.readers import UnreadableFile
from transforms.ingest.readers.csv_tables import read_table
from transforms.ingest.readers.xml_records import read_records
from transforms.ingest.validate import shown_value

HEADER = schema.collection("ssda903").table("header", 2024)
HEADER_ROW = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB"
CHILDREN = ["A1001,1,01/01/2010,WBRI,,,", "A1002,2,02/02/2011,WBRI,,,"]


def header_csv(*lines: str, eol: str = "\r\n") -> str:
    return eol.join([*lines, HEADER_ROW, *CHILDREN]) + eol


# -- files as spreadsheets save them ---------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_a_byte_order_mark_reads_in_either_byte_order(tmp_path, encoding):
    text = header_csv()
    data = text.encode(encoding)
    if encoding != "utf-16":   # utf-16 writes its own BOM; the explicit orders need one written
        data = ("\ufeff" + text).encode(encoding)
    raw = read_table(put(tmp_path, "h.csv", data), HEADER)
    assert list(raw.tables["header"]["CHILD"]) == ["A1001", "A1002"] and raw.meta["encoding"] == "utf-16"


def test_utf16_without_a_byte_order_mark_is_refused_saying_so(tmp_path):
    path = put(tmp_path, "h.csv", header_csv().encode("utf-16-le"))
    with pytest.raises(UnreadableFile, match="UTF-16 text without a byte-order mark"):
        read_table(path, HEADER)


@pytest.mark.parametrize("above", [[""], [",,,,,,"], ["", "   ", ",,,"], ['"","",""']])
def test_blank_lines_above_the_header_are_skipped_and_rows_keep_their_line_numbers(tmp_path, above):
    path = put(tmp_path, "h.csv", header_csv(*above))
    df = read_table(path, HEADER).tables["header"]
    assert list(df["source_row"]) == [len(above) + 2, len(above) + 3]


def test_comma_only_lines_after_the_data_and_a_trailing_empty_column_are_ignored(tmp_path):
    text = HEADER_ROW + ",\n" + "".join(c + ",\n" for c in CHILDREN) + ",,,,,,,\n\n"
    raw = read_table(put(tmp_path, "h.csv", text), HEADER)
    assert len(raw.tables["header"]) == 2 and "ignored_columns" not in raw.meta


def test_windows_1252_with_blank_lines_above_reads(tmp_path):
    path = put(tmp_path, "h.csv", ("\r\n" + HEADER_ROW + "\r\nSéan1,1,01/01/2010,WBRI,,,\r\n").encode("cp1252"))
    raw = read_table(path, HEADER)
    assert raw.tables["header"]["CHILD"].iloc[0] == "Séan1" and raw.meta["encoding"] == "cp1252"


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file: 0 bytes"),
    (b"\r\n  \r\n\r\n", "file holds only blank lines"),
    (b",,,,\n,,,,\n", "file holds only blank lines"),
])
def test_empty_files_are_refused_saying_they_are_empty(landing, content, reason):
    arrival = identify(put(landing, "301/year=2024/header.csv", content), landing)
    assert arrival.problem.startswith(reason) and records_in(arrival) == 0


def test_a_header_only_file_is_refused_saying_so(tmp_path):
    with pytest.raises(UnreadableFile, match=r"header row only \(line 2\): no data rows"):
        read_table(put(tmp_path, "h.csv", "\n" + HEADER_ROW + "\n,,,,,,\n"), HEADER)


def test_a_file_without_a_header_row_is_refused_by_its_shape_and_all_its_lines_count(landing):
    arrival = identify(put(landing, "301/year=2024/header.csv", "\r\n".join(CHILDREN) + "\r\n"), landing)
    assert "no header row" in arrival.problem and "7 cells" in arrival.problem
    assert "A1001" not in arrival.problem and "01/01/2010" not in arrival.problem
    assert records_in(arrival) == 2


def test_an_unrecognised_first_line_is_described_never_quoted(landing):
    secret = "api_token=SECRET-TOKEN-1234,owner=finance\n"
    arrival = identify(put(landing, "301/year=2024/notes.csv", secret), landing)
    assert "SECRET" not in arrival.problem and "api_token" not in arrival.problem and "2 cells" in arrival.problem


# -- years in names, folders and headers -----------------------------------------------------------
@pytest.mark.parametrize("name", ["episodes_2023-24.csv", "episodes_2023_24.csv", "episodes_202324.csv",
                                  "episodes 23-24.csv", "SSDA903 2023-24 episodes.csv", "episodes_2024.csv"])
def test_financial_year_spans_in_names_mean_the_year_to_31_march_of_the_second(name):
    assert year_from_name(name)[0] == 2024


@pytest.mark.parametrize("name", ["episodes.csv", "episodes_v2.csv", "episodes_23-25.csv", "export_7.csv"])
def test_names_without_a_year_or_a_real_span_state_none(name):
    assert year_from_name(name) is None


def test_a_span_in_the_name_files_the_return_under_the_second_year(landing):
    arrival = identify(put(landing, "301/header_2023-24.csv", header_csv()), landing)
    assert (arrival.return_year, arrival.year_source) == (2024, "name")


@pytest.mark.parametrize(("relpath", "words"), [
    ("301/year=2024/header_2022-23.csv", ("year=2024", "2023")),
    ("301/year=2023/header_23-24.csv", ("year=2023", "2024")),
])
def test_a_name_that_disagrees_with_the_folder_is_refused_not_filed_under_either(landing, relpath, words):
    arrival = identify(put(landing, relpath, header_csv()), landing)
    assert arrival.problem and "stated differently" in arrival.problem
    assert all(w in arrival.problem for w in words)


def test_a_cin_header_that_disagrees_with_the_folder_year_is_refused(landing):
    path = put(landing, "201/year=2023/cin.xml", need(SAMPLES / "cin_census" / "CIN_Census_2024.xml"))
    arrival = identify(path, landing)
    assert "stated differently" in arrival.problem and "header says 2024" in arrival.problem


# -- what the file is ------------------------------------------------------------------------------
def _without_collection(text: str) -> str:
    start = text.index("<Collection>")
    return text[:start] + text[text.index("</Collection>", start) + len("</Collection>"):]


@pytest.mark.parametrize(("sample", "collection"), [
    ("cin_census/CIN_Census_2024.xml", "cin_census"),
    ("sen2/sen2_sample_2025.xml", "sen2"),
    ("csww/social_work_workforce_2022.xml", "csww"),
])
def test_a_census_message_without_its_collection_element_is_recognised_by_structure(landing, sample, collection):
    text = need(SAMPLES / sample).read_text(encoding="utf-8")
    arrival = identify(put(landing, "201/year=2025/message.xml", _without_collection(text)), landing)
    assert arrival.collection == collection
    assert arrival.meta.get("recognised_by", "").startswith("structure")


def test_a_message_whose_records_match_no_collection_is_refused_naming_them(landing):
    text = ('<?xml version="1.0"?><Message><Header><CollectionDetails><Year>2024</Year></CollectionDetails>'
            "</Header><Widgets><Widget><A>1</A></Widget></Widgets></Message>")
    arrival = identify(put(landing, "201/year=2024/w.xml", text), landing)
    assert arrival.collection is None and "Widgets/Widget" in arrival.problem


# -- hostile input ---------------------------------------------------------------------------------
CIN_PROLOG_DOCTYPE = ('<?xml version="1.0"?>\n<!--{comment}-->\n{decl}\n'
                      "<Message><Header></Header><Children><Child><ChildIdentifiers><LAchildID>&e;</LAchildID>"
                      "</ChildIdentifiers></Child></Children></Message>\n")


@pytest.mark.parametrize("decl", ['<!DOCTYPE Message [<!ENTITY e "x">]>', '<!doctype Message [<!ENTITY e "x">]>',
                                  '<!ENTITY e SYSTEM "file:///etc/hostname">'])
@pytest.mark.parametrize("comment", [0, 70_000, 3_000_000])
def test_a_dtd_anywhere_in_the_prolog_is_refused_however_long_the_comment_before_it(landing, decl, comment):
    text = CIN_PROLOG_DOCTYPE.format(comment="c" * comment, decl=decl)
    arrival = identify(put(landing, "301/year=2024/cin.xml", text), landing)
    assert arrival.collection is None and ("DOCTYPE" in arrival.problem or "ENTITY" in arrival.problem)
    assert records_in(arrival) == 1


def test_deep_nesting_is_refused_naming_the_depth(tmp_path):
    coll = schema.collection("cin_census")
    text = need(SAMPLES / "cin_census" / "CIN_Census_2024.xml").read_text(encoding="utf-8")
    deep = text.replace("</Children>", "<Child>" + "<x>" * 5000 + "</x>" * 5000 + "</Child></Children>", 1)
    with pytest.raises(UnreadableFile, match="nesting depth"):
        read_records(put(tmp_path, "deep.xml", deep), coll, coll.tables(2024))


def test_links_are_recorded_as_rejected_and_never_read(tmp_path):
    landing = tmp_path / "landing"
    outside = put(tmp_path, "outside/secret.csv", HEADER_ROW + "\nZ9999,1,01/01/2010,WBRI,,,\n")
    inside = put(landing, "301/year=2024/header.csv", header_csv())
    os.symlink(outside, landing / "301/year=2024/out.csv")
    os.symlink(inside, landing / "301/year=2024/again.csv")
    os.symlink(tmp_path / "outside", landing / "301/linked_folder")
    os.symlink(tmp_path / "nowhere.csv", landing / "301/year=2024/gone.csv")
    found = {a.relpath: a for a in discover(landing)}
    assert found["301/year=2024/header.csv"].problem is None
    assert "outside the landing area" in found["301/year=2024/out.csv"].problem
    assert "another file in the landing area" in found["301/year=2024/again.csv"].problem
    assert "outside the landing area" in found["301/linked_folder"].problem
    assert "dangling" in found["301/year=2024/gone.csv"].problem
    assert not any(k.startswith("301/linked_folder/") for k in found)
    assert all(a.bytes == 0 and records_in(a) == 0 for k, a in found.items() if k != "301/year=2024/header.csv")


@pytest.mark.parametrize("name", ["..\\..\\header.csv", "\u00e9 \u202evsc.csv", "a\nb.csv", "tab\there.csv",
                                  ".\\header.csv"])
def test_odd_names_are_found_and_recorded_exactly(landing, name):
    put(landing, f"301/year=2024/{name}", header_csv())
    [arrival] = discover(landing)
    assert arrival.relpath == f"301/year=2024/{name}" and arrival.table == "header"


def test_hidden_files_are_still_left_alone(landing):
    put(landing, "301/year=2024/.~lock.header.csv#", "x")
    put(landing, "301/.git/config", "x")
    assert discover(landing) == []


# -- messages --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["A1001", "01/01/2010", "EG19 7TT", "7" * 5000])
def test_a_value_of_a_column_that_is_not_a_plain_code_is_described_never_quoted(value):
    shown = shown_value(value, quote=False)
    assert value not in shown and f"{len(value)} character" in shown


def test_a_short_code_is_quoted_where_the_column_is_a_plain_code_list():
    assert shown_value("3", quote=True) == "'3'"
    assert "7777777777" not in shown_value("7" * 50, quote=True)


# -- published statistics --------------------------------------------------------------------------
C1_HEAD = ("time_period,time_identifier,geographic_level,country_code,country_name,region_code,region_name,"
           "old_la_code,new_la_code,la_name,category,referral_count,rereferral_percent\n")


@pytest.mark.parametrize("symbol", ["x", "c", "z"])
def test_a_declared_ees_measure_column_wholly_suppressed_stays_a_measure(tmp_path, symbol):
    from transforms.ingest.readers.ees import read_ees
    text = C1_HEAD + "".join(f"2025,Reporting year,Local authority,E92000001,England,E1,R,{la},E0{la},LA {la},"
                             f"Referrals,{n},{symbol}\n" for la, n in (("301", 100), ("302", 200)))
    path = put(tmp_path, "c1_children_in_need_referrals_and_rereferrals_2025.csv", text)
    raw = read_ees(path, schema.collection("published"))
    assert raw.meta["measures"].split(",") == ["referral_count", "rereferral_percent"]
    assert raw.meta["breakdowns"] == "category"


def test_an_undeclared_ees_column_of_only_symbols_is_read_as_a_measure(tmp_path):
    from transforms.ingest.readers.ees import read_ees
    text = ("time_period,time_identifier,geographic_level,old_la_code,phase,pupils,rate\n"
            "2025,Academic year,Local authority,301,Primary,10,x\n2025,Academic year,Local authority,302,Primary,20,c\n")
    raw = read_ees(put(tmp_path, "unknown_dataset_2025.csv", text), schema.collection("published"))
    assert set(raw.meta["measures"].split(",")) == {"pupils", "rate"} and raw.meta["breakdowns"] == "phase"


# -- workbooks -------------------------------------------------------------------------------------
def _workbook(path, sheets: dict[str, list[list]]):
    import openpyxl
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


SEND_LISTS = {
    "List_1": [["Child ID", "UPN", "Date of Birth", "Sex", "Ethnicity", "Primary Need", "EHC Plan Start Date",
                "Date of Last Annual Review", "Setting URN", "Setting Type"],
               ["S1001", "A123456789012", "2014-05-01", "M", "WBRI", "ASD", "2022-01-10", "2023-01-09", "100001", "MS"]],
    "List_2": [["Child ID", "UPN", "Date of Birth", "Sex", "Ethnicity", "Date Request Received", "Decision to Assess",
                "Date of Decision", "Date Final Plan Issued", "Issued Within 20 Weeks"],
               ["S1002", "", "2016-02-01", "F", "WBRI", "2023-09-01", "Yes", "2023-10-01", "2024-01-05", "Yes"]],
}


def test_the_area_send_annex_a_with_list_sheets_is_recognised_by_its_columns(landing):
    path = _workbook(landing / "301/year=2024/annex_a.xlsx", SEND_LISTS)
    arrival = identify(path, landing)
    assert arrival.collection == "send_annex_a" and arrival.problem is None
    assert set(arrival.tables) == {"ehc_plans", "ehc_assessments"}


def test_the_send_list_sheets_are_read_into_their_tables(tmp_path):
    from transforms.ingest.readers.xlsx import read_xlsx
    coll = schema.collection("send_annex_a")
    raw = read_xlsx(_workbook(tmp_path / "send.xlsx", SEND_LISTS), coll, coll.tables(2024))
    assert list(raw.tables["ehc_plans"]["Child ID"]) == ["S1001"]
    assert list(raw.tables["ehc_assessments"]["Child ID"]) == ["S1002"]


def test_the_ilacs_annex_a_is_still_recognised_as_annex_a(landing):
    path = put(landing, "301/year=2024/Annex_A.xlsx", need(SAMPLES / "annex_a" / "Annex_A_2024_Jan.xlsx"))
    assert identify(path, landing).collection == "annex_a"


# -- never lose a return silently ------------------------------------------------------------------
def _held(repo_root, table: str = "header") -> list[tuple]:
    import duckdb
    glob = (repo_root / "parquet" / "collection=ssda903" / f"table={table}" / "*" / "*" / "data.parquet").as_posix()
    return duckdb.sql(f"SELECT load_id, source_row FROM read_parquet('{glob}', hive_partitioning=true) "
                      "ORDER BY source_row").fetchall()


@pytest.mark.parametrize(("resubmitted", "reason"), [
    (HEADER_ROW + "\r\n", "header row only"),
    ("\r\n,,,,,,\r\n" + HEADER_ROW + "\r\n,,,,,,\r\n", "header row only"),
    (HEADER_ROW + "\r\nA1001,7,01/01/2010,WBRI,,,\r\nA1002,8,02/02/2011,WBRI,,,\r\n", "every row failed validation"),
    ("", "empty file"),
])
def test_a_resubmission_without_a_valid_row_never_replaces_a_return_that_has_rows(landing, repo_root, resubmitted,
                                                                                  reason):
    from transforms.run import ingest
    put(landing, "301/year=2024/header.csv", header_csv())
    [first] = ingest(landing, repo_root, refresh=False)
    before = _held(repo_root)
    assert first["status"] == "loaded" and len(before) == 2
    put(landing, "301/year=2024/header.csv", resubmitted)
    [again] = ingest(landing, repo_root, only_new=True, refresh=False)
    assert again["status"] == "rejected" and reason in again["reason"] and again["rows_loaded"] == 0
    assert again["rows_in"] == again["rows_quarantined"] and again["replaces"] == []
    assert _held(repo_root) == before


def test_an_episode_whose_child_has_no_header_row_is_reported_naming_its_line(landing, repo_root):
    import duckdb

    from transforms.run import ingest
    put(landing, "301/year=2024/header.csv", header_csv())
    put(landing, "301/year=2024/episodes.csv",
        "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\n"
        "A1001,01/05/2023,S,C2,N1,U1,PR1,,,,,,\nB7777,01/06/2023,S,C2,N1,U1,PR1,,,,,,\n")
    rows = {r["table"]: r for r in ingest(landing, repo_root)}
    assert (rows["episodes"]["status"], rows["episodes"]["rows_loaded"]) == ("loaded", 2)
    with duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True) as con:
        found = con.execute("SELECT source_row FROM validation_errors WHERE table_name = 'episodes' "
                            "AND code = 'INT03'").fetchall()
    assert found == [(3,)]


# -- line numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pad", [0, 70_000])
def test_xml_rows_name_the_line_their_element_starts_on_even_past_line_65535(tmp_path, pad):
    coll = schema.collection("cin_census")
    source = need(SAMPLES / "cin_census" / "CIN_Census_2024.xml").read_text(encoding="utf-8")
    text = source.replace("<Children>", "<Children>" + "\n" * pad, 1)
    tables = read_records(put(tmp_path, "cin.xml", text), coll, coll.tables(2024)).tables
    lines = text.splitlines()
    for table, element in (("children", "<Child>"), ("episodes", "<CINdetails>"), ("assessments", "<Assessments>"),
                           ("assessment_factors", "<AssessmentFactors>")):
        rows = list(tables[table]["source_row"])
        assert rows and all(lines[r - 1].strip().startswith(element) for r in rows), (table, rows)
        assert all(r > pad for r in rows)


def test_odd_names_are_shown_escaped_in_logs_but_kept_exact_in_the_ledger():
    from transforms.ingest.landing import printable
    assert printable("revi\news.csv") == "revi\\x0aews.csv"
    assert printable("\u00e9pisodes \u202evsc.csv") == "\u00e9pisodes \\u202evsc.csv"
    assert printable("..\\..\\header.csv") == "..\\..\\header.csv"


def test_a_file_gone_between_listing_and_reading_is_recorded_with_its_reason_not_a_crash(landing):
    path = put(landing, "301/year=2024/header.csv", header_csv())
    path.unlink()     # an upload moved away by its sender mid-scan
    arrival = identify(path, landing)
    assert "cannot be read" in arrival.problem and arrival.la_code == "301" and records_in(arrival) == 0


def test_a_row_with_more_cells_than_the_header_is_refused_naming_its_line_of_the_file(tmp_path):
    text = "\n,,,\n" + HEADER_ROW + "\nA1,1,01/01/2010,WBRI,,,\nA2,1,01/01/2010,WBRI,,,,,,\n"
    with pytest.raises(UnreadableFile, match="line 5 has 10 fields, the header 7"):
        read_table(put(tmp_path, "h.csv", text), HEADER)


def test_a_trailing_comma_on_the_data_rows_only_does_not_shift_the_columns(tmp_path):
    text = HEADER_ROW + "\n" + "".join(c + ",\n" for c in CHILDREN)
    df = read_table(put(tmp_path, "h.csv", text), HEADER).tables["header"]
    assert list(df["CHILD"]) == ["A1001", "A1002"] and list(df["SEX"]) == ["1", "2"]
    assert list(df["source_row"]) == [2, 3]


def test_a_published_statistic_is_quoted_as_it_is_having_no_personal_data():
    assert shown_value("140", quote="public") == "'140'" and shown_value("12,345", quote="public") == "'12,345'"


def test_a_value_beyond_the_last_named_column_refuses_the_file_rather_than_being_lost(tmp_path):
    text = HEADER_ROW + "\n" + CHILDREN[0] + ",\n" + CHILDREN[1] + ",EXTRA\n"
    with pytest.raises(UnreadableFile, match="line 3 has 8 cells, the header 7"):
        read_table(put(tmp_path, "h.csv", text), HEADER)
