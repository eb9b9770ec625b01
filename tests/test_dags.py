"""The DAGs import cleanly, are generated from schemas/, and really run through Airflow."""
import os
import signal
import socket
import subprocess
import sys
import urllib.request

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


def test_the_refresh_waits_while_a_collection_run_is_queued_or_running_and_at_most_its_settle_time():
    from transforms.orchestration.settle import settled

    assert settled(active=2, waited=30, max_wait=900) is None            # the burst is still landing
    done = settled(active=0, waited=30, max_wait=900)
    assert done is not None and not done.timed_out and "no collection run" in done.describe()
    late = settled(active=1, waited=900, max_wait=900)                    # a stuck collection delays no one long
    assert late is not None and late.timed_out and late.active == 1 and "1 collection run(s)" in late.describe()


def test_without_the_api_connection_the_held_events_are_left_to_start_one_more_run(monkeypatch, capsys):
    from datetime import datetime, timezone

    from transforms.orchestration.settle import release_held_events

    monkeypatch.delenv("AIRFLOW_CONN_CSRETURNS_AIRFLOW_API", raising=False)
    assert release_held_events("repository_refresh", before=datetime.now(timezone.utc)) is False
    [line] = capsys.readouterr().out.splitlines()
    assert "csreturns_airflow_api" in line and "one more run" in line


def _one_council(tmp_path):
    from transforms.run import ingest

    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2018/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    ingest(landing, repo_root, refresh=False)      # loaded; the catalogue is the refresh DAG's to build
    return landing, repo_root


def test_a_refresh_with_nothing_new_since_the_last_build_skips_the_rebuild(airflow_db, dagbag, tmp_path):
    from transforms.run import ingest

    landing, repo_root = _one_council(tmp_path)
    refresh = dagbag.dags["repository_refresh"]
    conf = {"landing": str(landing), "repo": str(repo_root)}

    def states(run):
        return {ti.task_id: ti.state for ti in run.get_task_instances()}

    assert states(refresh.test(run_conf=conf))["build_catalogue"] == "success"
    assert states(refresh.test(run_conf=conf))["build_catalogue"] == "skipped"
    put(landing, "302/ssda903/year=2018/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    ingest(landing, repo_root, only_new=True, refresh=False)
    assert states(refresh.test(run_conf=conf))["build_catalogue"] == "success"


@pytest.mark.slow
def test_collections_landing_together_are_refreshed_by_one_catalogue_build(airflow_db, tmp_path):
    """The real scheduler and LocalExecutor, with the api-server the refresh reaches through
    ``csreturns_airflow_api``: two collections' assets change while a third collection's run is still going;
    it then changes too. One run builds the catalogue after all three, and clears the event that came during
    its wait, so Airflow starts no second run for it."""
    import time
    from datetime import datetime, timezone

    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dagrun import DagRun
    from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    landing, repo_root = _one_council(tmp_path)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "CSRETURNS_REPO": str(repo_root), "CSRETURNS_LANDING": str(landing),
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW_CONN_CSRETURNS_AIRFLOW_API": f"http://127.0.0.1:{port}",
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__CORE__PARALLELISM": "2",
           "AIRFLOW__LOGGING__BASE_LOG_FOLDER": os.environ.get("UI_DEBUG_LOGS", str(tmp_path / "logs"))}
    airflow = [sys.executable, "-m", "airflow"]
    for args in (["dags", "reserialize"], ["dags", "unpause", "repository_refresh"], ["pools", "set",
                 "csreturns_writer", "1", "catalogue builds, one at a time"]):
        done = subprocess.run(airflow + args, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    with create_session() as session:   # a collection run still going (its DAG paused: nothing executes it)
        session.add(DagRun(dag_id="collect_sen2", run_id="landing_together", run_type="manual",
                           state=DagRunState.QUEUED, run_after=datetime.now(timezone.utc)))

    def event(collection):
        with create_session() as session:
            asset_manager.register_asset_change(
                asset=SerializedAssetUniqueKey(name=f"csreturns_{collection}",
                                               uri=f"file://csreturns/parquet/{collection}"), session=session)

    def refresh_runs():
        with create_session() as session:
            runs = session.query(DagRun).filter(DagRun.dag_id == "repository_refresh",
                                                DagRun.run_type == "asset_triggered").order_by(DagRun.id).all()
            return [(r.run_id, r.state, {ti.task_id: ti.state for ti in r.get_task_instances(session=session)},
                     {e.asset.name for e in r.consumed_asset_events}) for r in runs]

    def wait_for(condition, what, seconds=300):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition(refresh_runs()):
                return
            time.sleep(2)
        raise AssertionError(f"{what}: {refresh_runs()}\n{scheduler_log.read_text()[-3000:]}")

    scheduler_log = tmp_path / "scheduler.log"     # the scheduler's, and the api-server tasks report to
    services = [subprocess.Popen(airflow + [name], env=env, stdout=scheduler_log.open("a"), stderr=subprocess.STDOUT,
                                 start_new_session=True) for name in ("api-server", "scheduler")]
    try:
        deadline = time.monotonic() + 300
        while True:                      # tasks report to the api-server: start nothing before it answers
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, scheduler_log.read_text()[-3000:]
                time.sleep(2)
        event("ssda903")
        event("cin_census")
        wait_for(lambda runs: runs and runs[0][2].get("settle") == "up_for_reschedule", "the first run settles")
        event("sen2")                                               # sen2's run ends: its event comes last
        with create_session() as session:
            session.query(DagRun).filter(DagRun.run_id == "landing_together").update({"state": DagRunState.SUCCESS})
        wait_for(lambda runs: runs and runs[0][1] in ("success", "failed"), "the first run ends")
        time.sleep(20)     # some twenty scheduler loops: time enough to start the run the held events would start
        with create_session() as session:
            held = session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == "repository_refresh").count()
    finally:
        for service in services:
            os.killpg(service.pid, signal.SIGTERM)
        for service in services:
            service.wait(timeout=60)
    runs = refresh_runs()
    assert len(runs) == 1, runs
    [only] = runs
    assert only[1] == "success" and only[2]["build_catalogue"] == "success"
    assert {"csreturns_ssda903", "csreturns_cin_census"} <= only[3] and "csreturns_sen2" not in only[3]
    assert held == 0
