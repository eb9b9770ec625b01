"""The schemas are the single description: year-by-year changes resolve, suites derive from them."""
import re

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


# -- every file under schemas/ is read into a typed model that refuses what it does not know -------------------
def test_every_yaml_file_under_schemas_is_read_by_a_loader_that_validates_it():
    from transforms.analytics import indicators
    from transforms.ingest import reference_data, rules

    read = {c.path.resolve() for c in schema.collections().values()}
    read |= {p.resolve() for p in rules.RULES_DIR.glob("*.yaml")}
    read.add(indicators.CATALOGUE_FILE.resolve())
    read.add(schema.COUNCILS_FILE.resolve())
    assert len(reference_data.la_codes()) > 150 and len(schema.councils().councils) > 150
    assert set(schema.SCHEMA_DIR.resolve().rglob("*.yaml")) == read
    assert all(c.declared is not None for c in schema.collections().values())
    assert rules.collections_with_rules() and rules.rules("ssda903")
    assert indicators.catalogue()


def test_a_typo_in_a_shipped_schema_is_named_by_file_and_key_path():
    path = schema.SCHEMA_DIR / "ssda903.yaml"
    data = schema.read_yaml(path)
    rne = data["tables"]["episodes"]["columns"][2]
    data["tables"]["episodes"]["columns"][2] = {**rne, "requried": True}
    with pytest.raises(schema.SchemaError) as refused:
        schema.parse_collection(data, path)
    assert str(refused.value) == ("schemas/ssda903.yaml: tables.episodes.columns[2] (RNE): "
                                  "unknown key 'requried' (did you mean 'required'?)")


EPISODES = """\
id: looked_after
title: Children looked after
owner: DfE
cadence: annual to 31 March
grain: episode
formats: [csv]
codes:
  sex: &sex {"1": Male, "2": Female}
tables:
  episodes:
    keys: [CHILD, DECOM]
    columns:
      - &child {name: CHILD, as: child_id, required: true, privacy: pseudonymise}
      - {name: DECOM, type: date, required: true}
      - {name: SEX, codes: *sex}
      - {name: UPN, normalise: id}
  reviews:
    keys: [CHILD, REVIEW]
    columns:
      - {<<: *child, description: Child (pseudonymised)}
      - {name: REVIEW, type: date}
changes:
  2025:
    - {table: episodes, column: SEX, codes: {M: Male, F: Female, U: Unknown}, note: M/F/U from 2025}
"""


def write(tmp_path, text: str, name: str = "looked_after.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_anchors_merge_keys_changes_by_year_and_a_valid_normalise_are_accepted(tmp_path):
    coll = schema.load_collection(write(tmp_path, EPISODES))
    assert set(coll.table("episodes", 2024).column("SEX").codes) == {"1", "2"}
    assert set(coll.table("episodes", 2025).column("SEX").codes) == {"M", "F", "U"}
    reviews_child = coll.table("reviews").column("CHILD")
    assert (reviews_child.out, reviews_child.privacy, reviews_child.description) == (
        "child_id", "pseudonymise", "Child (pseudonymised)")
    assert coll.table("episodes").column("UPN").normalise == "id"
    assert coll.declared.kind == "return" and coll.declared.tables["episodes"].columns[1].type == "date"


def changed(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize("old, new, where", [
    ("{name: DECOM, type: date, required: true}", "{name: DECOM, type: date, requried: true}",
     "tables.episodes.columns[1] (DECOM): unknown key 'requried' (did you mean 'required'?)"),
    ("{name: SEX, codes: *sex}", "{name: SEX, codez: *sex}",
     "tables.episodes.columns[2] (SEX): unknown key 'codez' (did you mean 'codes'?)"),
    ("    keys: [CHILD, DECOM]", "    kyes: [CHILD, DECOM]", "tables.episodes: unknown key 'kyes' (did you mean 'keys'?)"),
    ("cadence: annual", "cadense: annual", "unknown key 'cadense' (did you mean 'cadence'?)"),
    ("column: SEX, codes:", "column: SEX, code:", "changes.2025[0] (episodes.SEX): unknown key 'code' (did you mean 'codes'?)"),
])
def test_a_misspelled_key_in_a_return_schema_is_refused_naming_file_and_key_path(tmp_path, old, new, where):
    path = write(tmp_path, changed(EPISODES, old, new))
    with pytest.raises(schema.SchemaError, match=re.escape(f"{path}: {where}")):
        schema.load_collection(path)


@pytest.mark.parametrize("old, new, refused", [
    ("{name: DECOM, type: date,", "{name: DECOM, type: datetime,",
     "tables.episodes.columns[1] (DECOM): unknown type 'datetime'"),
    ("privacy: pseudonymise}", "privacy: hash}", "tables.episodes.columns[0] (CHILD): unknown privacy 'hash'"),
    ("normalise: id}", "normalise: upper}", "tables.episodes.columns[3] (UPN): unknown normalise 'upper'"),
    ("required: true, privacy", "required: 'yes', privacy",
     "tables.episodes.columns[0] (CHILD): required should be true or false, not 'yes'"),
    ("column: SEX, codes:", "column: SEX, type: datetime, codes:", "changes.2025[0] (episodes.SEX): unknown type 'datetime'"),
    ("{table: episodes, column: SEX,", "{table: episodes, column: ETHNIC,",
     "changes.2025[0] (episodes.ETHNIC): episodes has no column 'ETHNIC' by then"),
])
def test_a_value_outside_what_the_code_handles_is_refused(tmp_path, old, new, refused):
    path = write(tmp_path, changed(EPISODES, old, new))
    with pytest.raises(schema.SchemaError, match=re.escape(f"{path}: {refused}")):
        schema.load_collection(path)


def test_a_comma_in_an_unquoted_description_is_refused_with_a_hint(tmp_path):
    path = write(tmp_path, changed(EPISODES, "{name: REVIEW, type: date}",
                                   "{name: REVIEW, type: date, description: Review (statutory, or other)}"))
    with pytest.raises(schema.SchemaError, match=re.escape(
            "tables.reviews.columns[1] (REVIEW): unknown key 'or other)' (a comma in an unquoted value? quote the value)")):
        schema.load_collection(path)


PUBLISHED = """\
id: published
kind: published
title: Published statistics
owner: DfE
cadence: annual
grain: LA / year
formats: [ees_csv]
relation: published_statistics
key_columns: [time_period, geographic_level, old_la_code]
required_columns: [time_period, geographic_level]
suppression_symbols: {c: confidential, x: not available}
default_publication_lag_months: 12
datasets: {}
"""
REFERRALS = """\
id: ees_referrals
kind: ees
title: Referrals
owner: DfE
cadence: annual
grain: LA / year
formats: [ees_csv]
dataset: referrals
match: "c1_referrals*"
period: {end: "03-31"}
published: {months_after_period_end: 7}
confirmed: true
breakdowns: [category]
measures:
  referral_count: {unit: count}
  rereferral_percent: {unit: percent, description: Re-referrals within 12 months}
"""


def ees_folder(tmp_path, referrals: str = REFERRALS, published: str = PUBLISHED):
    (tmp_path / "ees").mkdir()
    write(tmp_path, published, "published.yaml")
    return write(tmp_path / "ees", referrals, "c1_referrals.yaml")


def test_a_folder_of_ees_schemas_loads_and_links_its_datasets(tmp_path):
    ees_folder(tmp_path)
    colls = schema.collections(tmp_path)
    assert colls["ees_referrals"].dataset == "referrals"
    assert schema.measures(colls["ees_referrals"])["rereferral_percent"]["unit"] == "percent"
    assert colls["published"].dataset_for("c1_referrals_2025.csv")[0] == "referrals"


@pytest.mark.parametrize("old, new, refused", [
    ("{unit: count}", "{unti: count}", "measures.referral_count: unknown key 'unti' (did you mean 'unit'?)"),
    ("{unit: count}", "{unit: children}", "measures.referral_count: unknown unit 'children'"),
    ("published: {months_after", "publised: {months_after", "unknown key 'publised' (did you mean 'published'?)"),
    ('period: {end: "03-31"}', 'period: {end: "31-03"}', "period: end: '31-03' should be a day of the year as MM-DD"),
])
def test_an_ees_schema_with_a_typo_or_an_unknown_unit_is_refused(tmp_path, old, new, refused):
    path = ees_folder(tmp_path, changed(REFERRALS, old, new))
    with pytest.raises(schema.SchemaError, match=re.escape(f"{path}: {refused}")):
        schema.collections(tmp_path)


def test_a_typo_in_the_published_conventions_is_refused(tmp_path):
    ees_folder(tmp_path, published=changed(PUBLISHED, "suppression_symbols:", "supression_symbols:"))
    with pytest.raises(schema.SchemaError, match=re.escape(
            f"{tmp_path / 'published.yaml'}: unknown key 'supression_symbols' (did you mean 'suppression_symbols'?)")):
        schema.collections(tmp_path)


RULE = """\
collection: cin_census
rules:
  - code: "8500"
    message: "All children must have a sex."
    tables: [children]
    fields: [Sex]
    first_year: 2024
    sql: SELECT 'children' AS table_name, source_row, child_id FROM children WHERE sex IS NULL
"""


@pytest.mark.parametrize("old, new, refused", [
    ("    first_year: 2024", "    frist_year: 2024", "rules[0] (8500): unknown key 'frist_year' (did you mean 'first_year'?)"),
    ("    first_year: 2024", "    first_year: '2024'", "rules[0] (8500): first_year should be a whole number, not '2024'"),
    ("rules:", "rulez:", "unknown key 'rulez' (did you mean 'rules'?)"),
])
def test_a_typo_in_a_rule_file_is_refused_naming_file_and_rule(tmp_path, old, new, refused):
    from transforms.ingest import rules

    path = write(tmp_path, RULE, "cin_census.yaml")
    assert [r.code for r in rules.load_rules(path)] == ["8500"]
    write(tmp_path, changed(RULE, old, new), "cin_census.yaml")
    with pytest.raises(schema.SchemaError, match=re.escape(f"{path}: {refused}")):
        rules.load_rules(path)


INDICATORS = """\
indicators:
  - id: rereferral_12m
    title: Re-referrals within 12 months
    definition: Referrals in the period within 365 days of the child's previous referral, as a percentage.
    numerator: Referrals within 365 days of the child's previous referral
    denominator: Referrals in the period
    unit: percent
    polarity: higher_is_worse
    source_returns: [cin_census]
    source_relations: [cin_episodes]
    child_level: true
    coverage: [cin_episodes]
    needs_months: 24
    reference: "Characteristics of children in need, table C1"
    lait_measure: "Percentage of re-referrals to children's social care within 12 months"
    published:
      dataset: c1_referrals
      measure: rereferral_percent
      numerator: {measure: rereferral_count}
      denominator: {measure: referral_count}
"""


@pytest.mark.parametrize("old, new, refused", [
    ("    polarity: higher_is_worse", "    polarity: higher_is_worse\n    polartiy: context",
     "indicators[0] (rereferral_12m): unknown key 'polartiy' (did you mean 'polarity'?)"),
    ("numerator: {measure: rereferral_count}", "numerator: {mesure: rereferral_count}",
     "indicators[0] (rereferral_12m).published.numerator: unknown key 'mesure' (did you mean 'measure'?)"),
    ("    unit: percent", "    unit: per_cent", "indicators[0] (rereferral_12m): unknown unit 'per_cent'"),
    ("    needs_months: 24\n", "", "indicators[0] (rereferral_12m): child-level indicators declare coverage and needs_months"),
])
def test_a_typo_in_the_indicator_catalogue_is_refused_naming_file_and_indicator(tmp_path, old, new, refused):
    from transforms.analytics import indicators

    path = write(tmp_path, INDICATORS, "indicators.yaml")
    assert [i["id"] for i in indicators.catalogue(path)] == ["rereferral_12m"]
    path = write(tmp_path, changed(INDICATORS, old, new), "typo.yaml")
    with pytest.raises(schema.SchemaError, match=re.escape(f"{path}: {refused}")):
        indicators.catalogue(path)


# -- councils as data: schemas/councils.yaml ------------------------------------------------------------------
def test_every_council_in_the_published_statistics_is_declared_with_its_region():
    import csv

    from conftest import SHARED

    declared = schema.councils().councils
    path = SHARED / "reference" / "ees" / "b1_children_in_need_2013_to_2025.csv"
    with path.open(encoding="utf-8-sig") as f:
        published = {(r["old_la_code"], r["region_name"]) for r in csv.DictReader(f)
                     if r["geographic_level"] == "Local authority"}
    assert published and all(code in declared and declared[code].region == region for code, region in published)


def test_reorganised_councils_link_to_their_successors_from_the_day_they_were_abolished():
    from datetime import date

    c = schema.councils()
    assert c.predecessors("839") == ["835", "836", "837"]                  # BCP, 1 April 2019
    assert c.councils["835"].successors == ["838", "839"]                  # Dorset county: Christchurch to BCP
    assert c.councils["928"].until == date(2021, 3, 31) and c.predecessors("941") == ["928"]
    assert c.councils["943"].from_ == date(2023, 4, 1) and c.predecessors("942") == ["909"]
    assert {j.code: j.members for j in c.joint_returns} == {"314 / 318": ["314", "318"], "940 / 941": ["940", "941"]}


def test_an_abolished_council_without_successors_is_refused():
    data = schema.read_yaml(schema.COUNCILS_FILE)
    data["councils"]["909"] = {**data["councils"]["909"], "successors": []}
    with pytest.raises(schema.SchemaError, match="names its successors"):
        schema.parse(schema.CouncilsFile, data, schema.COUNCILS_FILE)
