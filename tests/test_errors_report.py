"""DfE validation rules in the pipeline: a CIN return with known errors is loaded, its failures kept per load
and shown in the catalogue, a resubmission replaces them, and `csreturns errors` writes the council's report."""
from __future__ import annotations

from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
import pytest
from conftest import put

from transforms.ingest import error_report, rules
from transforms.run import ingest
from transforms.store.repository import Repository


def cin_message(la_code: str, children: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Message>
  <Header>
    <CollectionDetails><Collection>CIN</Collection><Year>2024</Year><ReferenceDate>2024-03-31</ReferenceDate></CollectionDetails>
    <Source><SourceLevel>L</SourceLevel><LEA>{la_code}</LEA><SoftwareCode>LA</SoftwareCode><Release>1</Release><SerialNo>1</SerialNo><DateTime>2024-05-01T10:00:00</DateTime></Source>
  </Header>
  <Children>{children}
  </Children>
</Message>
"""


UPNS = {"A1": "L301202400001", "B2": "A301202400002", "C3": "P301202400003"}  # valid check letters, council 301
# A return of three children always draws DfE's return-level query 2887Q (fewer than 8 children recorded with
# no disability): it has no row, and the tests about rows leave it aside.
RETURN_QUERIES = {"2887Q"}


def child(child_id: str, closure: str, cp_end: str) -> str:
    """A child referred on 6 June 2023, closed on ``closure``, whose CP plan (from 20 June) ended on ``cp_end``."""
    return f"""
    <Child>
      <ChildIdentifiers><LAchildID>{child_id}</LAchildID><UPN>{UPNS[child_id]}</UPN><PersonBirthDate>2015-03-27</PersonBirthDate><Sex>1</Sex></ChildIdentifiers>
      <ChildCharacteristics><Ethnicity>WBRI</Ethnicity><Disabilities><Disability>NONE</Disability></Disabilities></ChildCharacteristics>
      <CINdetails>
        <CINreferralDate>2023-06-06</CINreferralDate><ReferralSource>1A</ReferralSource><PrimaryNeedCode>N1</PrimaryNeedCode>
        <CINclosureDate>{closure}</CINclosureDate><ReasonForClosure>RC1</ReasonForClosure>
        <DateOfInitialCPC>2023-06-20</DateOfInitialCPC>
        <ReferralNFA>false</ReferralNFA>
        <ChildProtectionPlans>
          <CPPstartDate>2023-06-20</CPPstartDate><CPPendDate>{cp_end}</CPPendDate>
          <InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse>
          <NumberOfPreviousCPP>0</NumberOfPreviousCPP>
        </ChildProtectionPlans>
      </CINdetails>
    </Child>"""


# Child B's CIN episode closes before its referral (8630) and before its CP plan ends (8565, on both rows);
# child C's CP plan ends before it starts (8925).
WITH_ERRORS = cin_message("301", child("A1", "2024-01-10", "2023-12-01") + child("B2", "2023-06-01", "2023-06-30")
                          + child("C3", "2024-02-01", "2023-06-19"))
CORRECTED = cin_message("301", child("A1", "2024-01-10", "2023-12-01") + child("B2", "2023-08-01", "2023-06-30")
                        + child("C3", "2024-02-01", "2023-07-19"))


def line_of(text: str, element: str, nth: int) -> int:
    """The line (1-based) of the nth ``<element>`` in the file: the row number a council sees."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if f"<{element}>" in line]
    return lines[nth - 1]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    landing, repo_root = root / "landing", root / "repository"
    put(landing, "301/cin/CIN_Census_2024.xml", WITH_ERRORS)
    rows = ingest(landing, repo_root)
    return landing, repo_root, rows


def catalogue(repo_root: Path, query: str):
    with duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True) as con:
        return con.execute(query).fetchall()


def test_known_errors_in_a_cin_return_reach_validation_errors_with_their_source_rows(loaded):
    _, repo_root, rows = loaded
    found = catalogue(repo_root, """SELECT code, table_name, source_row, fields, load_id, la_code, return_year
                                    FROM validation_errors WHERE code <> '2887Q' ORDER BY code, table_name""")
    assert catalogue(repo_root, "SELECT table_name, source_row FROM validation_errors WHERE code = '2887Q'") == [
        ("disabilities", None)]
    load_id = rows[0]["load_id"]
    assert found == [
        # 8565 names both rows it compares, as DfE's report does: the closed episode and the plan ending after it
        ("8565", "cp_plans", line_of(WITH_ERRORS, "ChildProtectionPlans", 2),
         "CINclosureDate, AssessmentActualStartDate, AssessmentAuthorisationDate, S47ActualStartDate, "
         "DateOfInitialCPC, CINPlanStartDate, CINPlanEndDate, CPPendDate", load_id, "301", 2024),
        ("8565", "episodes", line_of(WITH_ERRORS, "CINdetails", 2),
         "CINclosureDate, AssessmentActualStartDate, AssessmentAuthorisationDate, S47ActualStartDate, "
         "DateOfInitialCPC, CINPlanStartDate, CINPlanEndDate, CPPendDate", load_id, "301", 2024),
        ("8630", "episodes", line_of(WITH_ERRORS, "CINdetails", 2), "CINclosureDate, CINreferralDate",
         load_id, "301", 2024),
        ("8925", "cp_plans", line_of(WITH_ERRORS, "ChildProtectionPlans", 3), "CPPendDate, CPPstartDate",
         load_id, "301", 2024),
    ]


def test_failures_name_the_pseudonymised_child_as_in_the_return_tables(loaded):
    _, repo_root, _ = loaded
    joined = catalogue(repo_root, """SELECT count(*) FROM validation_errors v
                                     JOIN cin_episodes e ON e.child_id = v.child_id AND e.source_row = v.source_row
                                     WHERE v.code = '8630'""")
    assert joined == [(1,)]
    assert catalogue(repo_root, "SELECT count(*) FROM validation_errors WHERE child_id = 'B2'") == [(0,)]


def test_validation_rules_lists_each_cin_rule_with_its_dfe_code_message_and_fields(loaded):
    _, repo_root, _ = loaded
    cin = catalogue(repo_root, "SELECT code, message, tables, fields, first_year, last_year FROM validation_rules "
                               "WHERE collection = 'cin_census' ORDER BY code")
    assert len(cin) >= 40
    by_code = {row[0]: row for row in cin}
    assert by_code["8630"][1:4] == ("CIN Closure Date is before CIN Referral Date for the same CIN episode",
                                    ["episodes"], ["CINclosureDate", "CINreferralDate"])
    assert by_code["8750"][4:] == (None, 2024)


def test_validation_relations_are_documented(loaded):
    _, repo_root, _ = loaded
    documented = {r[0] for r in catalogue(repo_root, "SELECT relation FROM relations")}
    assert {"validation_rules", "validation_errors"} <= documented
    columns = catalogue(repo_root, "SELECT column_name FROM column_dictionary WHERE relation = 'validation_errors'")
    assert [c[0] for c in columns] == rules.ERRORS_COLUMNS


def test_errors_command_writes_csv_and_xlsx_one_row_per_failing_record_and_rule(loaded, tmp_path, capsys):
    from transforms.cli import main

    _, repo_root, _ = loaded
    assert main(["errors", "--repo", str(repo_root), "--la", "301", "--collection", "cin_census",
                 "--year", "2024", "--out", str(tmp_path)]) == 0
    csv = pd.read_csv(tmp_path / "errors_cin_census_301_2024.csv", dtype=str)
    assert list(csv.loc[csv["code"].isin(RETURN_QUERIES), "severity"]) == ["query"]
    csv = csv[~csv["code"].isin(RETURN_QUERIES)]
    assert list(csv.columns) == ["severity", "la", "year", "file", "source_row", "child_id", "table", "fields",
                                 "code", "message"]
    assert set(csv["severity"]) == {"error"}  # (2887Q, a query, comes after them: errors first)
    assert set(csv["la"]) == {"301"} and set(csv["year"]) == {"2024"}
    assert sorted(zip(csv["code"], csv["table"], csv["source_row"].astype(int))) == [
        ("8565", "cp_plans", line_of(WITH_ERRORS, "ChildProtectionPlans", 2)),
        ("8565", "episodes", line_of(WITH_ERRORS, "CINdetails", 2)),
        ("8630", "episodes", line_of(WITH_ERRORS, "CINdetails", 2)),
        ("8925", "cp_plans", line_of(WITH_ERRORS, "ChildProtectionPlans", 3))]
    assert set(csv["file"]) == {"301/cin/CIN_Census_2024.xml"}
    assert not csv["child_id"].isin(["A1", "B2", "C3"]).any()  # pseudonymised, never the council's id
    book = openpyxl.load_workbook(tmp_path / "errors_cin_census_301_2024.xlsx", read_only=True)
    assert book.sheetnames == ["errors", "queries", "summary", "about"]
    assert len(list(book["errors"].iter_rows())) == 1 + len(csv)  # the errors sheet: errors only
    summary = [tuple(c.value for c in r) for r in book["summary"].iter_rows(min_row=2)]
    assert [(row[0], row[1], row[3]) for row in summary] == [
        ("error", "8565", 2), ("error", "8630", 1), ("error", "8925", 1), ("query", "2887Q", 1)]
    assert len(list(book["queries"].iter_rows())) == 2
    assert "pseudonymised" in " ".join(str(r[0].value) for r in book["about"].iter_rows())
    assert "pseudonymised" in capsys.readouterr().out


def test_errors_command_refuses_a_return_that_was_never_received(loaded, tmp_path, capsys):
    from transforms.cli import main

    _, repo_root, _ = loaded
    code = main(["errors", "--repo", str(repo_root), "--la", "302", "--collection", "cin_census",
                 "--year", "2024", "--out", str(tmp_path)])
    assert code != 0
    assert "no cin_census return has been received for council 302" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no empty "clean" report


def test_errors_command_without_out_writes_into_the_repository_never_the_current_folder(loaded, tmp_path,
                                                                                        monkeypatch, capsys):
    from transforms.cli import main

    _, repo_root, _ = loaded
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["errors", "--repo", str(repo_root), "--la", "301", "--collection", "cin_census",
                 "--year", "2024"]) == 0
    assert list(here.iterdir()) == []
    folder = repo_root / "errors" / "cin_census" / "301" / "2024"
    assert (folder / "errors_cin_census_301_2024.csv").exists() and str(folder) in capsys.readouterr().out


def test_row_checks_with_a_dfe_code_join_the_report_in_dfes_terms(tmp_path):
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2024/header.csv",
        "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n1001,1,15/06/2010,WBRI,,,\n1002,1,31/02/2011,XXXX,,,\n")
    ingest(landing, repo_root, refresh=False)
    report = error_report.error_report(Repository(repo_root), "ssda903", "301", 2024)
    row = report[report["source_row"] == 3]
    # the row checks' 102 and 103 once each, beside what the whole-return rules find on the same row (the
    # rules run on the return as received, the quarantined row too: no episodes for the child, EPI)
    assert sorted(row["code"]) == ["102", "103", "EPI"]
    assert set(row["message"]) == {rules.rule("ssda903", c).message for c in ("102", "103", "EPI")}
    assert not report["message"].str.contains("31/02/2011|XXXX").any()  # no value of the return


def test_a_resubmission_replaces_the_earlier_errors_of_the_return(tmp_path):
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/cin/CIN_Census_2024.xml", WITH_ERRORS)
    first = ingest(landing, repo_root, refresh=False)[0]["load_id"]
    repo = Repository(repo_root)
    assert set(rules.current_errors(repo, "cin_census", "301", 2024)["code"]) - RETURN_QUERIES == {"8565", "8630", "8925"}
    put(landing, "301/cin/CIN_Census_2024_resubmitted.xml", CORRECTED)
    second = ingest(landing, repo_root, only_new=True, refresh=False)[0]["load_id"]
    assert set(rules.current_errors(repo, "cin_census", "301", 2024)["code"]) == RETURN_QUERIES
    # both checks are kept, immutable, one file per load
    kept = {p.stem for p in (repo_root / rules.ERRORS_DIR).glob("*.parquet")}
    assert kept == {first, second}
    assert len(pd.read_parquet(repo_root / rules.ERRORS_DIR / f"{first}.parquet")) == 4 + len(RETURN_QUERIES)


def test_each_loaded_file_gets_its_own_error_report_beside_the_repository(loaded):
    _, repo_root, rows = loaded
    written = error_report.write_file_reports(Repository(repo_root), rows)
    assert [p.relative_to(repo_root).parts[:4] for p in written] == [("errors", "cin_census", "301", "2024")]
    assert sorted(pd.read_csv(written[0], dtype=str)["code"]) == ["2887Q", "8565", "8565", "8630", "8925"]


def test_check_rules_runs_after_load_and_before_publish_in_the_collection_dag():
    from transforms.orchestration.dags import collection_dag

    dag = collection_dag("cin_census")
    assert dag.get_task("check_rules").upstream_task_ids == {"load"}
    publish = dag.get_task("publish")
    assert publish.upstream_task_ids == {"check_rules", "load"}
    assert publish.trigger_rule == "all_done"  # a failing rule check does not hold back the loaded data


@pytest.mark.airflow
@pytest.mark.slow
def test_the_collection_dag_checks_rules_and_writes_each_files_error_report(tmp_path, airflow_db, dagbag):
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/cin/CIN_Census_2024.xml", WITH_ERRORS)
    dag = dagbag.dags["collect_cin_census"]
    run = dag.test(run_conf={"landing": str(landing), "repo": str(repo_root)})
    assert run.state == "success"
    assert {ti.task_id for ti in run.get_task_instances() if ti.state == "success"} >= {"load", "check_rules", "publish"}
    reports = list((repo_root / "errors" / "cin_census" / "301" / "2024").glob("CIN_Census_2024.xml.*.csv"))
    assert len(reports) == 1
    assert sorted(pd.read_csv(reports[0], dtype=str)["code"]) == ["2887Q", "8565", "8565", "8630", "8925"]
