"""Against real servers on this machine: PostgreSQL as Airflow's production metadata database."""
import os
import secrets
import subprocess
import sys

import duckdb
import pytest
from conftest import SAMPLES, need, put

pytestmark = [pytest.mark.services, pytest.mark.airflow]
PG_HOST, PG_PORT, PG_USER = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432"), os.environ.get("PGUSER", "postgres")


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                           "-c", sql], capture_output=True, text=True, timeout=60)


@pytest.fixture
def postgres_database():
    """A throwaway database on the machine's PostgreSQL, dropped afterwards."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed")
    probe = subprocess.run(["pg_isready", "-h", PG_HOST, "-p", PG_PORT], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no PostgreSQL server at {PG_HOST}:{PG_PORT}: {probe.stdout.strip()}")
    name = f"csreturns_test_{secrets.token_hex(4)}"
    created = _psql(f"CREATE DATABASE {name}")
    assert created.returncode == 0, created.stderr
    yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_collection_dag_runs_with_postgresql_as_the_metadata_database(postgres_database, tmp_path):
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2018/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    put(landing, "301/ssda903/year=2018/episodes.csv", SAMPLES / "ssda903" / "episodes.csv")
    env = dict(os.environ, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres_database,
               CSRETURNS_LANDING=str(landing), CSRETURNS_REPO=str(repo_root))
    for args in (["db", "migrate"], ["dags", "test", "collect_ssda903"], ["dags", "test", "repository_refresh"]):
        result = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=env,
                                timeout=600)
        assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    runs = _psql_db(postgres_database, "SELECT dag_id, state FROM dag_run ORDER BY dag_id")
    assert "collect_ssda903|success" in runs and "repository_refresh|success" in runs
    with duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ssda903_episodes").fetchone()[0] == 5050


def _psql_db(url: str, sql: str) -> str:
    name = url.rsplit("/", 1)[1]
    result = subprocess.run(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", name, "-At", "-c", sql],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_up(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.slow
def test_a_real_celery_worker_picks_up_the_tasks_through_redis(postgres_database, tmp_path):
    """CeleryExecutor as in production: scheduler, dag-processor, api-server (the workers' execution API)
    and a Celery worker, on PostgreSQL and Redis."""
    import signal
    import time

    pytest.importorskip("airflow.providers.celery", reason="apache-airflow-providers-celery is not installed")
    redis_host, redis_port = os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379"))
    if not _redis_up(redis_host, redis_port):
        pytest.skip(f"no Redis server at {redis_host}:{redis_port}")
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    for name in ("header.csv", "episodes.csv", "reviews.csv"):
        put(landing, f"301/ssda903/year=2018/{name}", need(SAMPLES / "ssda903" / name))
    port = _free_port()
    queue = f"csreturns-test-{secrets.token_hex(4)}"  # no other worker on this Redis can take our tasks
    sync_url = postgres_database
    env = dict(os.environ, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sync_url,
               AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
               AIRFLOW__CELERY__BROKER_URL=f"redis://{redis_host}:{redis_port}/{7 + port % 8}",
               AIRFLOW__CELERY__RESULT_BACKEND="db+" + sync_url,
               AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
               AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
               AIRFLOW__OPERATORS__DEFAULT_QUEUE=queue,
               CSRETURNS_LANDING=str(landing), CSRETURNS_REPO=str(repo_root))
    airflow = [sys.executable, "-m", "airflow"]
    migrated = subprocess.run([*airflow, "db", "migrate"], capture_output=True, text=True, env=env, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    pool = subprocess.run([*airflow, "pools", "set", "csreturns_writer", "1", "one catalogue writer at a time"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert pool.returncode == 0, pool.stderr[-3000:]
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("api", "scheduler", "dag_processor", "worker")}
    commands = {"api": ["api-server", "--port", str(port)], "scheduler": ["scheduler"],
                "dag_processor": ["dag-processor"], "worker": ["celery", "worker", "--concurrency", "2", "--queues", queue]}
    procs = [subprocess.Popen([*airflow, *cmd], stdout=logs[name], stderr=subprocess.STDOUT, env=env,
                              start_new_session=True) for name, cmd in commands.items()]
    try:
        deadline = time.monotonic() + 180
        while not {"collect_ssda903", "repository_refresh"} <= set(_psql_db(sync_url, "SELECT dag_id FROM dag").split()):
            assert time.monotonic() < deadline, "the dag-processor never serialised the DAGs"
            time.sleep(2)
        # only the two DAGs under test run: the other collections' hourly schedules would queue ~40 runs
        for dag_id in ("collect_ssda903", "repository_refresh"):
            unpaused = subprocess.run([*airflow, "dags", "unpause", dag_id], capture_output=True, text=True,
                                      env=env, timeout=120)
            assert unpaused.returncode == 0, unpaused.stderr[-3000:]
        triggered = subprocess.run([*airflow, "dags", "trigger", "collect_ssda903"], capture_output=True, text=True,
                                   env=env, timeout=120)
        assert triggered.returncode == 0, triggered.stderr[-3000:]
        deadline = time.monotonic() + 400
        state = ""
        while state not in ("success", "failed"):
            assert time.monotonic() < deadline, f"the run did not finish; state {state!r}"
            time.sleep(3)
            state = _psql_db(sync_url, "SELECT state FROM dag_run WHERE dag_id = 'collect_ssda903' "
                                       "AND run_type = 'manual'").strip()
        assert state == "success", (tmp_path / "worker.log").read_text()[-3000:]
        # the collection's asset event schedules repository_refresh, which rebuilds the catalogue
        deadline = time.monotonic() + 240
        # (the hourly schedules start their own runs too, so there may be several refreshes: any success will do)
        refreshed = ""
        while refreshed != "t":
            assert time.monotonic() < deadline, "repository_refresh did not run after the asset event"
            time.sleep(3)
            refreshed = _psql_db(sync_url, """
                SELECT bool_or(r.state = 'success') FROM dag_run r JOIN dag_run c
                  ON c.dag_id = 'collect_ssda903' AND c.run_type = 'manual' AND r.start_date > c.start_date
                WHERE r.dag_id = 'repository_refresh' AND r.run_type = 'asset_triggered'""").strip()
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for fh in logs.values():
            fh.close()
    worker_log = (tmp_path / "worker.log").read_text()
    assert worker_log.count("] received") >= 5  # discover, read, validate, load, publish ran on the worker
    with duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ssda903_episodes").fetchone()[0] == 5050
        assert con.execute("SELECT count(*), sum(rows_in - rows_loaded - rows_quarantined) FROM load_ledger").fetchone() == (3, 0)
