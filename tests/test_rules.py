"""The validation-rule engine and every declared rule, each with a passing and a failing case.

Rules live in ``schemas/rules/<collection>.yaml``; their cases in ``tests/rules/<collection>_cases.yaml``:

    collection: cin_census
    return_year: 2024                  # default for every case (a case may set its own)
    cases:
      "8525":
        pass:
          tables: {children: [{child_id: C1, birth_date: 2015-06-01}]}
        fail:
          tables: {children: [{child_id: C1, birth_date: 2015-06-01, expected_birth_date: 2024-06-01}]}
          previous: {}                 # optional: last year's return, same shape as tables
          expect: [[children, 1]]      # (table_name, source_row) of every failure, any order

Rows use catalogue column names; ``source_row`` defaults to the row's 1-based position in its table.
Every rule file and case file is picked up automatically.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from transforms.ingest import rules

CASES_DIR = Path(__file__).resolve().parent / "rules"


def _case_files() -> dict[str, dict]:
    out = {}
    for path in sorted(CASES_DIR.glob("*_cases.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out[spec.get("collection", path.stem.removesuffix("_cases"))] = spec
    return out


CASE_FILES = _case_files()


def _params():
    for collection in rules.collections_with_rules():
        for r in rules.rules(collection):
            for kind in ("pass", "fail"):
                yield pytest.param(collection, r.code, kind, id=f"{collection}-{r.code}-{kind}")


def _case(collection: str, code: str, kind: str) -> tuple[dict, int]:
    spec = CASE_FILES.get(collection) or {}
    case = ((spec.get("cases") or {}).get(str(code)) or {}).get(kind)
    if case is None:
        pytest.fail(f"tests/rules/{collection}_cases.yaml has no {kind} case for rule {code}")
    return case, int(case.get("return_year", spec.get("return_year", 2024)))


@pytest.mark.parametrize("collection, code, kind", list(_params()))
def test_rule_case(collection, code, kind):
    case, year = _case(collection, code, kind)
    found = rules.check(collection, code, case.get("tables") or {}, case.get("previous") or {}, return_year=year)
    got = sorted((t, None if pd.isna(s) else int(s)) for t, s in zip(found["table_name"], found["source_row"]))
    if kind == "pass":
        assert got == [], f"rule {code} flagged a passing case: {got}"
    else:
        expected = sorted((t, None if s is None else int(s)) for t, s in case["expect"])
        assert expected, f"rule {code}: the failing case must expect at least one failure"
        assert got == expected


def test_every_declared_rule_has_a_passing_and_a_failing_case():
    missing = []
    for collection in rules.collections_with_rules():
        cases = (CASE_FILES.get(collection) or {}).get("cases") or {}
        for r in rules.rules(collection):
            for kind in ("pass", "fail"):
                if kind not in (cases.get(r.code) or {}):
                    missing.append(f"{collection} {r.code} {kind}")
    assert not missing, "rules without cases: " + ", ".join(missing)


def test_every_case_is_for_a_declared_rule():
    stray = [f"{c} {code}" for c, spec in CASE_FILES.items() for code in (spec.get("cases") or {})
             if str(code) not in {r.code for r in rules.rules(c)}]
    assert not stray, "cases for undeclared rules: " + ", ".join(stray)


# -- the engine ------------------------------------------------------------------------------------
def _adhoc(sql: str, collection: str = "cin_census", tables=("episodes",), **kw) -> rules.Rule:
    return rules.Rule(collection=collection, code="TEST", message="test rule", tables=tuple(tables),
                      fields=("X",), sql=sql, **kw)


def test_working_days_between_in_sql_matches_transforms_workdays():
    from datetime import date, timedelta

    from transforms.workdays import working_days_between

    # across Easter, Christmas, the 2022 jubilee and state funeral, weekends, same day and backwards
    starts = [date(2022, 5, 27), date(2022, 9, 16), date(2023, 12, 22), date(2024, 3, 28), date(2024, 3, 31),
              date(2024, 1, 10)]
    pairs = [(s, s + timedelta(days=d)) for s in starts for d in (0, 1, 3, 10, 45, 70, -5)]
    con = rules._base().cursor()
    try:
        got = [con.execute("SELECT working_days_between($a, $b)", {"a": a, "b": b}).fetchone()[0] for a, b in pairs]
        assert con.execute("SELECT working_days_between(NULL, DATE '2024-01-01')").fetchone()[0] is None
        assert con.execute("SELECT count(*) FROM bank_holidays WHERE year(day) = 2022").fetchone()[0] == 10
    finally:
        con.close()
    assert got == [working_days_between(a, b) for a, b in pairs]


def test_codes_are_those_of_the_return_year_from_the_schema():
    children = {"children": [{"child_id": "C1", "sex": "M"}, {"child_id": "C2", "sex": "1"}]}
    assert list(rules.check("cin_census", "4180", children, return_year=2024)["source_row"]) == [1]
    assert list(rules.check("cin_census", "4180", children, return_year=2025)["source_row"]) == [2]


def test_a_rule_outside_its_years_is_not_run():
    with pytest.raises(rules.RuleError, match="does not apply to 2025"):
        rules.check("cin_census", "8750", {"children": [{"child_id": "C1"}]}, return_year=2025)


def test_previous_tables_hold_the_councils_return_of_the_year_before():
    rule = _adhoc("""SELECT 'episodes' AS table_name, e.source_row, e.child_id FROM episodes e
                     WHERE e.referral_date < $collection_start
                       AND NOT EXISTS (SELECT 1 FROM previous_episodes p WHERE p.child_id = e.child_id)""")
    this_year = {"episodes": [{"child_id": "C1", "cin_episode_seq": 1, "referral_date": "2023-02-01"},
                              {"child_id": "C2", "cin_episode_seq": 1, "referral_date": "2023-03-01"}]}
    last_year = {"episodes": [{"child_id": "C1", "cin_episode_seq": 1, "referral_date": "2023-02-01"}]}
    found = rules.check_rule(rule, this_year, last_year, return_year=2024)
    assert list(zip(found["table_name"], found["source_row"], found["child_id"])) == [("episodes", 2, "C2")]
    assert len(rules.check_rule(rule, this_year, {}, return_year=2024)) == 2  # no return last year: empty


def test_parameters_give_the_return_year_and_its_collection_period():
    rule = _adhoc("""SELECT 'episodes' AS table_name, NULL AS source_row, NULL AS child_id
                     WHERE $return_year = 2025 AND $collection_start = DATE '2024-04-01'
                       AND $collection_end = DATE '2025-03-31'""")
    assert len(rules.check_rule(rule, {}, return_year=2025)) == 1


def test_a_rule_whose_sql_fails_raises_naming_its_code():
    with pytest.raises(rules.RuleError, match="rule TEST: its SQL failed"):
        rules.check_rule(_adhoc("SELECT 'episodes' AS table_name, no_such_column AS source_row, NULL AS child_id FROM episodes"), {})
    with pytest.raises(rules.RuleError, match="rule TEST: the SELECT must return"):
        rules.check_rule(_adhoc("SELECT 1 AS source_row FROM episodes"), {})


@pytest.mark.parametrize("rule_text, problem", [
    ("{code: '1', message: m, tables: [episodes], fields: [A]}", "missing key 'sql'"),
    ("{code: '1', message: m, tables: [referrals], fields: [A], sql: SELECT 1}", "has no table referrals"),
    ("{code: '1', message: m, tables: [episodes], fields: [A], sql: SELECT 1, first_year: 2025, last_year: 2024}",
     "first_year 2025 is after last_year 2024"),
    ("{code: '1', message: m, tables: [episodes], fields: [A], sql: SELECT 1, year: 2024}", "unknown key 'year'"),
])
def test_rule_files_are_checked_when_loaded(tmp_path, rule_text, problem):
    path = tmp_path / "cin_census.yaml"
    path.write_text(f"collection: cin_census\nrules:\n  - {rule_text}\n")
    with pytest.raises(rules.RuleError, match=problem):
        rules.load_rules(path)


def test_rule_codes_are_unique_within_a_file(tmp_path):
    path = tmp_path / "cin_census.yaml"
    one = "{code: '8500', message: m, tables: [children], fields: [A], sql: SELECT 1}"
    path.write_text(f"collection: cin_census\nrules:\n  - {one}\n  - {one}\n")
    with pytest.raises(rules.RuleError, match="code 8500 declared twice"):
        rules.load_rules(path)


def test_at_least_forty_cin_census_rules_are_declared():
    assert len(rules.rules("cin_census")) >= 40


def _years_to_compile(collection: str) -> list[int]:
    from transforms import schema

    coll = schema.collection(collection)
    years = {2024, *coll.change_years}
    for r in rules.rules(collection):
        years.update(y for y in (r.first_year, r.last_year) if y)
    return sorted(years)


@pytest.mark.parametrize("collection", rules.collections_with_rules())
def test_every_rule_runs_on_an_empty_return_of_every_year_it_applies_to(collection):
    """A rule that only fails in a year its cases do not cover (a column dropped that year) fails here."""
    from transforms import schema

    coll = schema.collection(collection)
    for year in _years_to_compile(collection):
        con = rules.connect(coll, year, {}, {})
        try:
            for r in rules.rules(collection):
                if r.applies_to(year):
                    assert rules._run_rule(con, r, year).empty, f"rule {r.code} flags an empty {year} return"
        finally:
            con.close()


# -- DfE codes on row checks, reference data ------------------------------------------------------------
def test_row_checks_carry_the_dfe_code_the_schema_declares():
    from transforms import schema
    from transforms.ingest.validate import build_suite

    coll = schema.collection("ssda903")
    suite = build_suite(coll.table("header", 2026), coll.date_format)
    codes = {(e.meta["field"], e.meta["rule"]): e.meta.get("dfe_code") for e in suite.expectations}
    assert codes[("ETHNIC", "code_list")] == "103"
    assert codes[("DOB", "date")] == "102"
    cin = schema.collection("cin_census")
    suite = build_suite(cin.table("cp_plans", 2026), cin.date_format)
    assert {e.meta.get("dfe_code") for e in suite.expectations if e.meta["field"] == "LatestCategoryOfAbuse"} == {"8910"}


def test_a_dfe_rule_for_an_unknown_row_check_is_a_schema_error(tmp_path):
    from transforms import schema

    text = (schema.SCHEMA_DIR / "ssda903.yaml").read_text(encoding="utf-8").replace(
        'dfe_rules: {code_list: "101"}', 'dfe_rules: {spelling: "101"}', 1)
    path = tmp_path / "ssda903.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(schema.SchemaError, match=r"dfe_rules: unknown key 'spelling' \(one of .*code_list"):
        schema.load_collection(path).table("header", 2024)


def test_placements_are_located_with_the_ons_postcode_directory():
    con = rules._base().cursor()
    try:
        con.execute("""CREATE TEMP TABLE episodes AS SELECT * FROM (VALUES ('SO14 7LY', 'sw1a1aa'), ('EH1 1AA', 'ZZ9 9ZZ'))
                       t(home_post, pl_post)""")
        from transforms.ingest.reference_data import install_for_return
        install_for_return(con, {"episodes"})
        got = con.execute("""SELECT placement_la(home_post), placement_la(pl_post), placement_distance(home_post, pl_post)
                             FROM episodes""").fetchall()
    finally:
        con.close()
    # Southampton (unitary), Westminster (inner London borough), Edinburgh; the straight line is about 69 miles
    assert got[0][:2] == ("E06000045", "E09000033") and 60 < got[0][2] < 80
    assert got[1] == ("SCO", None, None)


# -- many returns at once (rules.run_batch) ----------------------------------------------------------
def _case_returns(collection: str) -> list[tuple[str, str, rules.ReturnTables]]:
    """Every case of a collection as a return of its own council (each case's ids, C1, C2..., recur in the
    others: councils' ids coincide), with (code, kind) of the case."""
    out = []
    for r in rules.rules(collection):
        for kind in ("pass", "fail"):
            case, year = _case(collection, r.code, kind)
            if not r.applies_to(year):
                continue
            tables = {n: rules._case_frame(rules.schema.collection(collection), n, rows)
                      for n, rows in (case.get("tables") or {}).items()}
            previous = {n: rules._case_frame(rules.schema.collection(collection), n, rows)
                        for n, rows in (case.get("previous") or {}).items()}
            given = {str(v) for f in [*tables.values(), *previous.values()] if "la_code" in f for v in f["la_code"]}
            la = given.pop() if given else f"T{len(out):04d}"  # a case about the council's own LA names it
            out.append((r.code, kind, rules.ReturnTables(collection, la, year, tables, previous, load_id=la)))
    return out


def _flags(found: pd.DataFrame, code: str | None = None) -> list[tuple]:
    if code is not None:
        found = found[found["code"] == code]
    return sorted((c, t, None if pd.isna(s) else int(s), None if pd.isna(i) else i)
                  for c, t, s, i in zip(found["code"], found["table_name"], found["source_row"], found["child_id"]))


@pytest.mark.parametrize("collection", ["cin_census", pytest.param("ssda903", marks=pytest.mark.slow)])
def test_a_batch_of_returns_finds_for_each_what_it_finds_alone(collection):
    """All the cases of a collection checked at once, each its own council's return, in one connection per
    year: each case still gets exactly its expected failures, with the ids as given, and a return's whole
    list of failures (every rule) is the one it gets checked alone."""
    returns = _case_returns(collection)
    batch = rules.run_batch([r for _, _, r in returns])
    for (code, kind, ret), found in zip(returns, batch):
        assert set(found["la_code"]) <= {ret.la_code} and set(found["load_id"]) <= {ret.load_id}
        got = [(t, s) for _, t, s, _ in _flags(found, code)]
        case, _ = _case(collection, code, kind)
        expected = sorted((t, None if s is None else int(s)) for t, s in case.get("expect") or [])
        assert got == expected, f"{collection} {code} {kind} in a batch: {got} != {expected}"
    # return-level failures, NULL child ids and shared ids: cases of rules that group a council's rows
    chosen = {"cin_census": ["2883", "2886Q", "8794"], "ssda903": ["1001", "199", "503D"]}[collection]
    for code, kind, ret in returns:
        if code in chosen and kind == "fail":
            i = [r for _, _, r in returns].index(ret)
            assert _flags(batch[i]) == _flags(rules.run_batch([ret])[0]), f"{collection} {code} {kind}"


# -- in the ingest: the return as received ------------------------------------------------------------
def test_the_ingest_checks_ages_on_the_full_date_of_birth_and_keeps_only_verdicts(tmp_path):
    """A child born on 15 March 2020, reviewed on 10 March 2024 as under 4 (PN0): right on the full date of
    birth. Cut to the month (1 March 2020) the child would be 4 and DfE's 440 would fire; the rules see the
    return as received, so it does not, while 441 (4 or over recorded as under 4) fires on the row below.
    What is kept names the pseudonymised child and the row, never the date of birth or the council's id."""
    from conftest import put

    from transforms.run import ingest
    from transforms.store.repository import Repository

    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2024/header.csv",
        "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nC7001,1,15/03/2020,WBRI,,,\nC7002,1,15/03/2021,WBRI,,,\n")
    put(landing, "301/ssda903/year=2024/reviews.csv",
        "CHILD,DOB,REVIEW,REVIEW_CODE\nC7001,15/03/2020,10/03/2024,PN0\nC7002,15/03/2021,10/03/2024,PN1\n")
    ingest(landing, repo_root, refresh=False)
    errors = rules.current_errors(Repository(repo_root), "ssda903", "301", 2024)
    reviews = errors[errors["table_name"] == "reviews"]
    assert "440" not in set(reviews["code"])
    assert list(reviews.loc[reviews["code"] == "441", "source_row"]) == [3]
    assert not list((repo_root / rules.PENDING_DIR).rglob("*.parquet"))  # published, then cleared
    kept = pd.concat([pd.read_parquet(p) for p in (repo_root / rules.ERRORS_DIR).glob("*.parquet")])
    text = kept.astype(str).to_csv()
    assert not any(v in text for v in ("C7001", "C7002", "2020-03-15", "15/03/2020", "2021-03-15"))


def test_a_quarantined_episode_does_not_make_its_neighbours_fail(tmp_path):
    """Three episodes of one child, each ending (X1) the day the next starts; the middle one has a reason for
    new episode that is not a DfE code, so its row is quarantined. Checked after quarantine, the first
    episode would look like it ended on a day no episode starts (DfE's 388); checked as received, it is
    right, and the middle row is reported for its own fault only."""
    from conftest import put

    from transforms.run import ingest
    from transforms.store.repository import Repository

    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2024/header.csv",
        "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nC8001,1,15/06/2010,WBRI,,,\n")
    put(landing, "301/ssda903/year=2024/episodes.csv",
        "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\n"
        "C8001,01/05/2023,S,C2,N1,U1,PR1,01/06/2023,X1,,,,\n"
        "C8001,01/06/2023,ZZ,C2,N1,U1,PR1,01/07/2023,X1,,,,\n"
        "C8001,01/07/2023,P,C2,N1,U1,PR1,,,,,,\n")
    rows = ingest(landing, repo_root, refresh=False)
    episodes = next(r for r in rows if r["table"] == "episodes")
    assert (episodes["rows_loaded"], episodes["rows_quarantined"]) == (2, 1)
    errors = rules.current_errors(Repository(repo_root), "ssda903", "301", 2024)
    assert "388" not in set(errors.loc[errors["table_name"] == "episodes", "code"])


def test_a_rule_whose_sql_fails_on_a_value_never_quotes_that_value():
    """DuckDB names the value it could not cast; a child's postcode or id must not reach the error or its chain."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE header AS SELECT 'AB12 3CD' AS HOME_POST, 1 AS source_row, 'C0001' AS child_id")
    rule = rules.Rule(collection="ssda903", code="TEST", message="test", tables=("header",), fields=("HOME_POST",),
                      sql="SELECT 'header' AS table_name, source_row, child_id FROM header "
                          "WHERE CAST(HOME_POST AS INTEGER) > 0")
    with pytest.raises(rules.RuleError) as caught:
        rules._run_rule(con, rule, 2025)
    assert "rule TEST: its SQL failed" in str(caught.value)
    assert "AB12" not in str(caught.value) and caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_return_landed_after_next_years_has_next_years_return_checked_again_once(tmp_path):
    """Next year's rules read this year's return as last year's: loading a 2024 return whose 2025 return
    is already held checks 2025 again too, once however many of the 2024 files the batch holds."""
    from conftest import SAMPLES, put

    from transforms.ingest import stages
    from transforms.ingest.landing import discover
    from transforms.ingest.rules import check_returns
    from transforms.store.repository import Repository

    repo = Repository(tmp_path / "repo")
    for year in (2025, 2024):
        landing = tmp_path / f"landing{year}"
        for name in ("header.csv", "episodes.csv"):
            put(landing, f"301/ssda903/year={year}/{name}", SAMPLES / "ssda903" / name)
        files = stages.validate_batch(repo, stages.read_batch(repo, discover(landing), workers=1))
        checked = check_returns(repo, stages.load_batch(repo, files))
    assert sorted((c["la_code"], c["return_year"]) for c in checked) == [("301", 2024), ("301", 2025)]
