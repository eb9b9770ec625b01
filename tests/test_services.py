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
