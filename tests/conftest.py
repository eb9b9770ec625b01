"""Shared fixtures. Airflow's home is a throwaway folder per test session, never the user's."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CSRETURNS_SHARED", ROOT.parent / "shared")).resolve()
SAMPLES = SHARED / "samples"
EES = SHARED / "reference" / "ees"

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="csreturns-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
    "GX_ANALYTICS_ENABLED": "False",
    "CSRETURNS_PSEUDONYM_KEY": "test-key-not-for-production-use-0001",
})


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (tests read the public samples from ../shared)")
    return path


@pytest.fixture
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture
def repo_root(tmp_path) -> Path:
    return tmp_path / "repository"


def put(landing: Path, relpath: str, content: str | bytes | Path) -> Path:
    """Place a file in the landing area: text, bytes, or a copy of a sample."""
    target = landing / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, target)
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")
    return target


def pending_verdicts(repo_root: Path) -> dict[str, list[dict]]:
    """The DfE rules' verdicts awaiting the load (``REPO/rule_pending``), per return file, in a stable order,
    without the load and run ids (new per ingest)."""
    import json

    import pyarrow.parquet as pq

    out = {}
    for path in sorted((repo_root / "rule_pending").rglob("*.parquet")):
        rows = pq.read_table(path).drop_columns(["load_id", "run_id"]).to_pylist()
        out[str(path.relative_to(repo_root))] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata database in the session's throwaway AIRFLOW_HOME (once per session)."""
    result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                            env=os.environ.copy(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="session")
def dagbag():
    """Every DAG in dags/, parsed as the dag-processor parses them."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))
