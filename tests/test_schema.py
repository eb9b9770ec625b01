"""The schemas are the single description: year-by-year changes resolve, suites derive from them."""
import pytest

from transforms import schema
from transforms.ingest.validate import build_suite


def test_every_schema_loads_and_names_its_tables():
    colls = schema.collections()
    assert {"ssda903", "cin_census", "published"} <= set(colls)
    assert schema.collection("ssda903").relation("episodes") == "ssda903_episodes"
    assert schema.collection("cin_census").relation("cp_plans") == "cin_cp_plans"


def test_ssda903_sex_codes_change_in_2025():
    coll = schema.collection("ssda903")
    assert set(coll.table("header", 2024).column("SEX").codes) == {"1", "2"}
    assert set(coll.table("header", 2025).column("SEX").codes) == {"M", "F", "U"}


def test_placement_codes_follow_the_return_year():
    coll = schema.collection("ssda903")
    codes = {y: set(coll.table("episodes", y).column("PLACE").codes) for y in (2024, 2025, 2026)}
    assert {"H5", "P2"} <= codes[2024] and "K3" not in codes[2024]
    assert not {"H5", "P2"} & codes[2025] and "K3" in codes[2025]
    assert {"Z11", "Z12", "Z13", "Z14"} <= codes[2026] - codes[2025]


def test_tables_declare_the_years_they_are_collected():
    coll = schema.collection("ssda903")
    assert not coll.table("sw_episodes").collected_in(2023)
    assert coll.table("sw_episodes").collected_in(2024)
    assert coll.table("dolo").first_year == 2027


def test_parquet_types_come_from_the_schema():
    arrow = schema.collection("ssda903").table("episodes").arrow_schema()
    assert str(arrow.field("decom").type) == "date32[day]"
    assert str(arrow.field("child_id").type) == "string"
    assert "la_code" not in arrow.names  # partition key lives in the path


def test_suite_is_generated_per_year_with_the_years_codes():
    coll = schema.collection("ssda903")
    suite = build_suite(coll.table("episodes", 2025), coll.date_format)
    place = [e for e in suite.expectations
             if e.expectation_type == "expect_column_values_to_be_in_set" and e.column == "PLACE"][0]
    assert "K3" in place.value_set and "H5" not in place.value_set
    kinds = {e.expectation_type for e in suite.expectations}
    assert {"expect_column_values_to_not_be_null", "expect_column_values_to_be_dates",
            "expect_compound_columns_to_be_unique"} <= kinds


def schema_file(tmp_path, column: str, extra: str = ""):
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\ntitle: X\nowner: DfE\ncadence: annual\ngrain: child\nformats: [csv]\n"
                    f"tables:\n  t:\n    columns:\n      - {column}\n{extra}")
    return path


def test_a_change_naming_an_unknown_table_is_refused(tmp_path):
    bad = schema_file(tmp_path, "{name: A}", "changes:\n  2025:\n    - {table: nope, column: A, codes: [1]}\n")
    with pytest.raises(schema.SchemaError, match="unknown table 'nope'"):
        schema.load_collection(bad)


def test_an_unknown_type_is_refused(tmp_path):
    with pytest.raises(schema.SchemaError, match="unknown type"):
        schema.load_collection(schema_file(tmp_path, "{name: A, type: datetime}"))


def test_the_committed_column_dictionary_is_generated_from_the_schemas():
    from pathlib import Path

    from transforms.catalogue.dictionary import column_docs

    committed = (Path(__file__).resolve().parent.parent / "docs" / "columns.md").read_text(encoding="utf-8")
    assert committed == column_docs(), "docs/columns.md is stale: run `make docs`"


def test_unquoted_yes_no_codes_are_refused_because_yaml_reads_them_as_booleans(tmp_path):
    with pytest.raises(schema.SchemaError, match='quote codes such as "YES"'):
        schema.load_collection(schema_file(tmp_path, "{name: A, codes: [YES, NO, DIED]}"))
