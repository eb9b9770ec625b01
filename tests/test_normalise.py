"""Cosmetic variants of valid values are made canonical per column kind before validation, and counted."""
from __future__ import annotations

import pyarrow as pa
import pytest

from transforms import schema
from transforms.ingest.normalise import kind_of, normalise_column, normalise_table

EPISODES = schema.collection("ssda903").table("episodes", 2024)
HEADER = schema.collection("ssda903").table("header", 2024)


def column(table, name):
    return table.column(name)


def one(values, table, name):
    out, changed = normalise_column(pa.array(values, pa.string()), column(table, name))
    return out.to_pylist(), changed


def test_the_kind_comes_from_privacy_codes_and_type_unless_declared():
    assert kind_of(column(EPISODES, "CHILD")) == "id"
    assert kind_of(column(HEADER, "UPN")) == "id"
    assert kind_of(column(EPISODES, "HOME_POST")) == "postcode"
    assert kind_of(column(EPISODES, "LS")) == "code"
    assert kind_of(column(EPISODES, "DECOM")) == "date"


def test_codes_exported_through_a_float_lose_the_tail_only_where_that_makes_a_listed_code():
    assert one(["2.0", "1.0", "2", "3.0", None], HEADER, "SEX") == (["2", "1", "2", "3.0", None], 2)


def test_codes_typed_in_lower_case_are_upper_cased_only_where_that_makes_a_listed_code():
    assert one(["s", "S", "q", "p"], EPISODES, "RNE") == (["S", "S", "q", "P"], 2)
    assert one(["c2", "wbri"], EPISODES, "LS")[0] == ["C2", "wbri"]   # wbri is no legal status


def test_ids_lose_surrounding_spaces_a_whole_number_tail_and_case():
    assert one([" 1001.0", "ab12 ", "C3", "12.5"], EPISODES, "CHILD") == (["1001", "AB12", "C3", "12.5"], 2)


@pytest.mark.parametrize("sent, kept", [("eg194ab", "EG19 4AB"), ("EG19  4AB", "EG19 4AB"), (" e1 6an", "E1 6AN"),
                                        ("EG19", "EG19"), ("e1", "E1"), ("SW1A1AA", "SW1A 1AA")])
def test_postcodes_in_any_case_and_spacing_become_one_form_and_an_outward_code_alone_is_kept(sent, kept):
    assert one([sent], EPISODES, "HOME_POST")[0] == [kept]


def test_empty_and_blank_cells_become_null_and_are_not_counted_as_changes():
    assert one(["", "   ", None], EPISODES, "DECOM") == ([None, None, None], 0)


def test_a_table_reports_how_many_values_each_normalisation_changed():
    raw = pa.table({"CHILD": ["c1", "C2"], "SEX": ["1.0", "2"], "DOB": ["01/05/2012", "01/05/2012"]})
    out, counts = normalise_table(raw, HEADER)
    assert out.column("SEX").to_pylist() == ["1", "2"]
    assert counts == {"CHILD: id": 1, "SEX: code": 1}


def test_a_declared_kind_overrides_the_derived_one():
    declared = schema.Column(name="URN", out="urn", normalise="id")
    out, changed = normalise_column(pa.array(["123456.0"]), declared)
    assert out.to_pylist() == ["123456"] and changed == 1
