"""Readers find values and where they came from; they never judge them."""
import pytest
from conftest import SAMPLES, need, put

from transforms import schema
from transforms.ingest.readers import UnreadableFile
from transforms.ingest.readers.csv_tables import read_table
from transforms.ingest.readers.xml_records import read_records

HEADER = schema.collection("ssda903").table("header", 2024)


def test_csv_rows_keep_their_line_numbers_across_blank_lines(tmp_path):
    path = put(tmp_path, "h.csv", "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nA1,1,01/01/2010,WBRI,,,\n\n,,,,,,\nA2,2,02/02/2011,WBRI,,,\n")
    df = read_table(path, HEADER).tables["header"]
    assert list(df["CHILD"]) == ["A1", "A2"]
    assert list(df["source_row"]) == [2, 5]


def test_windows_1252_csv_is_read(tmp_path):
    text = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nSéan1,1,01/01/2010,WBRI,,,\n"
    path = put(tmp_path, "h.csv", text.encode("cp1252"))
    raw = read_table(path, HEADER)
    assert raw.tables["header"]["CHILD"].iloc[0] == "Séan1" and raw.meta["encoding"] == "cp1252"


def test_utf8_bom_is_removed_from_the_first_header(tmp_path):
    path = put(tmp_path, "h.csv", "\ufeffCHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nA1,1,01/01/2010,WBRI,,,\n".encode("utf-8"))
    assert read_table(path, HEADER).tables["header"]["CHILD"].iloc[0] == "A1"


def test_entity_expansion_bomb_is_refused_before_parsing(tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            "<EXPSSDA903><CHILD><HEADER><CHILDID>&lol2;</CHILDID></HEADER></CHILD></EXPSSDA903>")
    coll = schema.collection("ssda903")
    with pytest.raises(UnreadableFile, match="DOCTYPE"):
        read_records(put(tmp_path, "bomb.xml", bomb), coll, coll.tables(2020))


def test_ssda903_xml_flattens_into_the_same_tables_as_the_csv():
    coll = schema.collection("ssda903")
    raw = read_records(need(SAMPLES / "ssda903" / "fake_903.xml"), coll, coll.tables(2018))
    header, episodes = raw.tables["header"], raw.tables["episodes"]
    assert len(header) == int(raw.meta["records"])
    assert episodes["CHILD"].notna().all() and set(episodes["CHILD"]) <= set(header["CHILD"])
    assert episodes["PLACE"].notna().any()  # <PL> in the XML is PLACE
    assert (episodes["source_row"] > 0).all()


def test_cin_census_flattens_into_related_tables_keyed_by_position():
    coll = schema.collection("cin_census")
    raw = read_records(need(SAMPLES / "cin_census" / "CIN_Census_2024.xml"), coll, coll.tables(2024))
    factors = raw.tables["assessment_factors"]
    assert set(factors.columns) >= {"LAchildID", "cin_episode_seq", "assessment_seq", "AssessmentFactors"}
    assert list(factors["AssessmentFactors"][:3]) == ["1C", "RB", "6B"]
    assert raw.tables["children"]["Sex"].iloc[0] == "1"


def test_ssda903_xml_blocks_that_only_some_children_have_become_rows_of_their_tables():
    coll = schema.collection("ssda903")
    path = need(SAMPLES / "ssda903" / "fake_903.xml")
    raw = read_records(path, coll, coll.tables(2018)).tables
    text = path.read_text()
    assert len(raw["missing"]) == text.count("<AMISSING>")
    assert len(raw["placed_adoption"]) == text.count("<AD_PLACED>")
    assert len(raw["oc3"]) == text.count("<IN_TOUCH>")
    assert len(raw["ad1"]) == text.count("<DATE_INT>")
    assert len(raw["uasc"]) == text.count("<DUC>")
    assert raw["oc3"]["CHILD"].notna().all() and raw["uasc"]["DUC"].notna().all()


def test_cin_census_with_a_namespace_reads_the_same_as_without(tmp_path):
    source = need(SAMPLES / "cin_census" / "CIN_Census_2024.xml").read_text()
    namespaced = put(tmp_path, "ns.xml", source.replace("<Message>", '<Message xmlns="http://www.dfe.gov.uk/CIN">', 1))
    coll = schema.collection("cin_census")
    plain = read_records(SAMPLES / "cin_census" / "CIN_Census_2024.xml", coll, coll.tables(2024)).tables
    with_ns = read_records(namespaced, coll, coll.tables(2024)).tables
    assert {k: len(v) for k, v in with_ns.items()} == {k: len(v) for k, v in plain.items()}
    assert with_ns["episodes"].equals(plain["episodes"])
