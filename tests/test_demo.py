"""``make demo``: its landing area shows a rejected file and a resubmission, and its DAG runs leave task logs
that the Airflow UI reads."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLES, SHARED, need, put


@pytest.fixture(scope="module")
def one_council(tmp_path_factory):
    """The demo's landing area for its first council and one year."""
    from transforms.synthetic.demo import DEMO_COUNCILS, prepare_landing

    landing = tmp_path_factory.mktemp("demo") / "landing"
    summary = prepare_landing(landing, la_codes=DEMO_COUNCILS[:1], years=(2025,), shared=SHARED)
    return landing, summary


def test_the_demo_lands_a_file_that_is_rejected_whole_for_its_missing_columns(one_council):
    from transforms.ingest.landing import discover

    landing, summary = one_council
    arrival = next(a for a in discover(landing) if a.relpath == str(summary["rejected"].relative_to(landing)))
    assert (arrival.collection, list(arrival.tables), arrival.la_code) == ("ssda903", ["episodes"], "301")
    assert "DECOM, RNE" in arrival.problem


def test_a_resubmission_is_the_same_return_later_with_one_child_fewer(one_council):
    from lxml import etree

    from transforms.ingest.landing import discover
    from transforms.synthetic.demo import land_resubmission

    landing, _ = one_council
    path = land_resubmission(landing, "301")
    arrivals = {a.relpath: a for a in discover(landing, "cin_census")}
    original, again = arrivals["301/cin_census/CIN_Census_2025.xml"], arrivals[str(path.relative_to(landing))]
    assert (again.la_code, again.return_year, again.problem) == ("301", 2025, None)
    children = [len(etree.parse(a.path).findall("Children/Child")) for a in (original, again)]
    assert children[1] == children[0] - 1
    assert etree.parse(again.path).findtext("Header/Source/SerialNo") == "002"


@pytest.mark.airflow
@pytest.mark.slow
def test_runs_leave_task_logs_that_the_airflow_ui_reads(airflow_db, tmp_path, capfd):
    from airflow.models import TaskInstance
    from airflow.utils.log.log_reader import TaskLogReader
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from transforms.orchestration.local_runs import Runner

    landing, repo = tmp_path / "landing", tmp_path / "repository"
    for name in ("header.csv", "episodes.csv"):
        put(landing, f"301/ssda903/year=2018/{name}", need(SAMPLES / "ssda903" / name))
    put(landing, "301/ssda903/year=2018/notes.docx", b"not a return")

    with capfd.disabled():  # as in make demo: the process's own stdout and stderr, not the test runner's capture
        result = Runner().run("collect_ssda903", conf={"landing": str(landing), "repo": str(repo)})
    assert result["state"] == "failed" and result["tasks"]["rejected_files"] == {"failed": 1}
    assert result["tasks"]["publish"] == {"success": 1}
    with create_session() as session:
        ti = session.scalars(select(TaskInstance).where(
            TaskInstance.run_id == result["run_id"], TaskInstance.task_id == "rejected_files")).one()
        lines, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {})
        text = "\n".join(getattr(line, "event", str(line)) for line in lines)
    assert "REJECTED 301/ssda903/year=2018/notes.docx: no collection schema reads .docx files" in text

    from airflow.configuration import conf

    logs = list(Path(conf.get("logging", "base_log_folder")).glob(f"dag_id=collect_ssda903/run_id={result['run_id']}/**/*.log"))
    assert len(logs) >= 7  # discover, read, validate, load, check_rules, publish, rejected_files
    spurious = [p for p in logs if "XCom not found" in p.read_text()]
    assert not spurious, f"spurious XCom errors in {spurious}"


@pytest.mark.airflow
@pytest.mark.slow
def test_a_pool_of_airflow_processes_runs_dags_side_by_side_leaving_task_logs(airflow_db, tmp_path, monkeypatch):
    from airflow.configuration import conf

    from transforms.orchestration.local_runs import RunnerPool

    landing, repo = tmp_path / "landing", tmp_path / "repository"
    put(landing, "published/c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv",
        need(SHARED / "reference" / "ees" / "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"))
    put(landing, "published/d3_cpps_subsequent_plan_2013_to_2025.csv",
        need(SHARED / "reference" / "ees" / "d3_cpps_subsequent_plan_2013_to_2025.csv"))
    # as make demo: the two processes wait for each other's writes to the SQLite metadata database
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", conf.get("database", "sql_alchemy_conn") + "?timeout=60")
    paths = {"landing": str(landing), "repo": str(repo)}
    with RunnerPool(2, tmp_path / "airflow.log") as pool:
        pool.start()  # both processes start, and write the DAGs to the database, at the same moment
        futures = [pool.submit(dag_id, conf=paths) for dag_id in ("collect_ees_c1_referrals", "collect_ees_d3_repeat_cp_plans")]
        results = [f.result() for f in futures]

    assert [r["state"] for r in results] == ["success", "success"]
    assert all(r["tasks"]["load"] == {"success": 1} for r in results)
    base = Path(conf.get("logging", "base_log_folder"))
    for r in results:
        logs = list(base.glob(f"dag_id={r['dag_id']}/run_id={r['run_id']}/**/*.log"))
        assert len(logs) >= 7, r["dag_id"]  # discover, read, validate, load, check_rules, publish, rejected_files


def test_make_ui_starts_airflows_components_from_the_venv_without_an_activated_venv():
    """``airflow standalone`` starts its scheduler, api-server, dag-processor and triggerer as ``airflow``
    from PATH: ``make ui`` puts the venv's bin first (outside an activated venv they were not found)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "-o", ".venv/bin/csreturns", "ui"], cwd=root, capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    command = next(line for line in dry.splitlines() if "standalone" in line)
    assert command.startswith(f'PATH="{root}/.venv/bin:') and command.endswith(".venv/bin/airflow standalone")
