"""The DAGs import cleanly, are generated from schemas/, and really run through Airflow."""
import os
import subprocess
import sys

import duckdb
import pytest
from conftest import SAMPLES, need, put

pytestmark = pytest.mark.airflow


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}


def test_airflow_cli_reports_no_import_errors(airflow_db):
    result = subprocess.run([sys.executable, "-m", "airflow", "dags", "list-import-errors", "--output", "json"],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] in ("[]", "No data found")


def test_one_collection_dag_per_schema_plus_the_repository_refresh(dagbag):
    from transforms import schema

    expected = {f"collect_{c}" for c in schema.collections()} | {"collect_unrecognised", "repository_refresh"}
    assert expected <= set(dagbag.dag_ids)


def test_collection_dags_have_the_stages_users_watch(dagbag):
    dag = dagbag.dags["collect_ssda903"]
    assert {"discover", "read", "validate", "load", "check_rules", "publish", "rejected_files"} == set(dag.task_ids)
    assert [o.name for o in dag.get_task("publish").outlets] == ["csreturns_ssda903"]


def test_repository_refresh_is_scheduled_on_every_collection_asset(dagbag):
    from transforms import schema

    dag = dagbag.dags["repository_refresh"]
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"  # any one collection changing is enough
    names = {a.name for a in condition.objects}
    assert names == {f"csreturns_{c}" for c in schema.collections()} | {"csreturns_unrecognised"}


def test_a_collection_dag_runs_end_to_end_through_airflow(airflow_db, dagbag, tmp_path):
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    for name in ("header.csv", "episodes.csv", "reviews.csv"):
        put(landing, f"301/ssda903/year=2018/{name}", need(SAMPLES / "ssda903" / name))
    put(landing, "301/ssda903/year=2018/notes.docx", b"not a return")
    conf = {"landing": str(landing), "repo": str(repo_root)}

    run = dagbag.dags["collect_ssda903"].test(run_conf=conf)
    # the run rejected notes.docx, so it is not plain green: only rejected_files failed, everything loaded
    assert run.state == "failed"
    states = {(ti.task_id, ti.state) for ti in run.get_task_instances()}
    assert {t for t, s in states if s != "success"} == {"rejected_files"}

    refresh = dagbag.dags["repository_refresh"].test(run_conf=conf)
    assert refresh.state == "success"
    with duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True) as con:
        ledger = dict(con.execute("SELECT relpath, status FROM load_ledger").fetchall())
        assert ledger["301/ssda903/year=2018/episodes.csv"] == "loaded"
        assert ledger["301/ssda903/year=2018/notes.docx"] == "rejected"
        assert con.execute("SELECT count(*) FROM ssda903_episodes").fetchone()[0] == 5050

    again = dagbag.dags["collect_ssda903"].test(run_conf=conf)  # nothing new: no work, green
    assert again.state == "success"


def test_rejections_are_listed_with_their_reasons_and_fail_the_task():
    from transforms.orchestration.alerts import FilesRejected, report_rejections

    rows = [{"relpath": "301/ssda903/year=2025/episodes.csv", "status": "partly_loaded", "reason": "",
             "rows_in": 120, "rows_quarantined": 2},
            {"relpath": "301/ssda903/year=2025/episodes_resent.csv", "status": "rejected",
             "reason": "required column(s) DECOM, RNE are missing", "rows_in": 118, "rows_quarantined": 118}]
    with pytest.raises(FilesRejected, match="1 file.*episodes_resent.csv: required column.*DECOM"):
        report_rejections("ssda903", rows)
    assert report_rejections("ssda903", rows[:1]) == {"files": 1, "rejected": 0, "with_quarantined_rows": 1,
                                                      "rows_quarantined": 2}
