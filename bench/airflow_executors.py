"""Wall time of one collection DAG run under each way of running Airflow, and how many tasks ran at once.

    .venv/bin/python bench/airflow_executors.py                 # task start-up, then all three setups
    .venv/bin/python bench/airflow_executors.py --only startup  # a task's own start-up only
    .venv/bin/python bench/airflow_executors.py --only celery --councils 8 --workers 2

The same synthetic landing area (SSDA903 returns of N councils for one year, one submission per mapped
task instance so the work can spread) goes through ``collect_ssda903`` three ways (after ``startup``: what
each of its tasks costs before its own code runs, see ``run_startup``):

- ``dags-test``: LocalExecutor on SQLite via ``airflow dags test`` (what ``make demo`` does: every task in
  one process, one after another);
- ``local``: LocalExecutor on SQLite with the real scheduler, api-server and dag-processor (parallelism
  as configured: by default every mapped task instance at once);
- ``celery``: CeleryExecutor with PostgreSQL as the metadata database and Redis as the broker, with two
  (``--workers``) Celery workers of ``--concurrency`` slots each.

Figures come from the metadata database: the run's start and end, and the start and end of every task
instance, from which the largest number running at the same moment is counted. Needs PostgreSQL
(``PGHOST``/``PGPORT``/``PGUSER``, a role that may create databases) and Redis (``REDIS_HOST``/``REDIS_PORT``)
for the Celery setup; it is skipped, saying why, when either is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = [sys.executable, "-m", "airflow"]
DAG_ID = "collect_ssda903"
PG_HOST, PG_PORT, PG_USER = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432"), \
    os.environ.get("PGUSER", "postgres")
REDIS_HOST, REDIS_PORT = os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379"))
RUNS_SQL = (f"SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id = '{DAG_ID}' "
            "ORDER BY start_date")
READS_SQL = (f"SELECT count(*) FROM task_instance WHERE dag_id = '{DAG_ID}' AND run_id = '{{run_id}}' "
             "AND task_id = 'read' AND map_index >= 0")
TIS_SQL = ("SELECT task_id, map_index, state, start_date, end_date, hostname FROM task_instance "
           f"WHERE dag_id = '{DAG_ID}' AND run_id = '{{run_id}}'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _psql(sql: str, database: str = "postgres") -> list[list[str]]:
    out = subprocess.run(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", database, "-At", "-F", "\t",
                          "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def _sqlite(path: Path, sql: str) -> list[list[str]]:
    with sqlite3.connect(path) as con:
        return [[None if v is None else str(v) for v in row] for row in con.execute(sql).fetchall()]


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace(" ", "T")) if value else None


def max_concurrent(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most task instances running at one moment (an end at the same instant as a start does not overlap)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _figures(query, run_id: str) -> dict:
    tis = [dict(zip(("task_id", "map_index", "state", "start", "end", "host"), row))
           for row in query(TIS_SQL.format(run_id=run_id))]
    ran = [(_ts(t["start"]), _ts(t["end"])) for t in tis if t["start"] and t["end"]]
    return {"task_instances": len(tis), "task_instances_run": len(ran),
            "mapped_per_stage": sum(1 for t in tis if t["task_id"] == "read" and int(t["map_index"]) >= 0),
            "max_concurrent_tasks": max_concurrent(ran),
            "hosts": sorted({t["host"] for t in tis if t["host"]}),
            "task_seconds_sum": round(sum((e - s).total_seconds() for s, e in ran), 1)}


def _env(home: Path, landing: Path, repo: Path, **extra) -> dict:
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
               AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "transforms" / "orchestration" / "plugins"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME="3600",
               AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True", GX_ANALYTICS_ENABLED="False",
               CSRETURNS_LANDING=str(landing), CSRETURNS_REPO=str(repo), CSRETURNS_BATCH_SUBMISSIONS="1",
               CSRETURNS_PSEUDONYM_KEY=os.environ.get("CSRETURNS_PSEUDONYM_KEY", "bench-key-not-for-production-0001"))
    env.pop("CSRETURNS_ALERT_EMAIL", None)
    env.update(extra)
    return env


def _airflow(args: list[str], env: dict, log: Path, timeout: int = 900) -> None:
    with open(log, "ab") as fh:
        result = subprocess.run([*AIRFLOW, *args], stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed; see {log}")


def _prepare(env: dict, log: Path) -> None:
    _airflow(["db", "migrate"], env, log)
    _airflow(["pools", "set", "csreturns_writer", "1", "csreturns: one catalogue writer at a time"], env, log)


def run_dags_test(work: Path, landing: Path) -> dict:
    home, repo = work / "dags-test" / "airflow", work / "dags-test" / "repository"
    home.mkdir(parents=True)
    db = home / "airflow.db"
    env = _env(home, landing, repo, AIRFLOW__CORE__EXECUTOR="LocalExecutor",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}")
    _prepare(env, work / "dags-test" / "airflow.log")
    t0 = time.perf_counter()
    _airflow(["dags", "test", DAG_ID], env, work / "dags-test" / "airflow.log")
    command_seconds = time.perf_counter() - t0
    [[run_id, state, start, end]] = _sqlite(db, RUNS_SQL)
    return {"setup": "LocalExecutor, SQLite, airflow dags test", "state": state,
            "run_seconds": round((_ts(end) - _ts(start)).total_seconds(), 1),
            "command_seconds": round(command_seconds, 1), **_figures(lambda q: _sqlite(db, q), run_id)}


def run_services(work: Path, landing: Path, setup: str, workers: int, concurrency: int) -> dict:
    """Start Airflow's processes, unpause the DAG (its schedule starts one run) and wait for that run."""
    base = work / setup
    home, repo = base / "airflow", base / "repository"
    home.mkdir(parents=True)
    port = _free_port()
    extra = {"AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
             "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
             "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2"}
    database = None
    if setup == "celery":
        database = f"csreturns_bench_{secrets.token_hex(4)}"
        _psql(f"CREATE DATABASE {database}")
        url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
        queue = f"csreturns-bench-{secrets.token_hex(4)}"
        extra.update(AIRFLOW__CORE__EXECUTOR="CeleryExecutor", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=url,
                     AIRFLOW__CELERY__BROKER_URL=f"redis://{REDIS_HOST}:{REDIS_PORT}/{7 + port % 8}",
                     AIRFLOW__CELERY__RESULT_BACKEND="db+" + url, AIRFLOW__OPERATORS__DEFAULT_QUEUE=queue)
        query = lambda q: _psql(q, database)  # noqa: E731
        label = (f"CeleryExecutor, PostgreSQL + Redis, {workers} workers x {concurrency} slot(s), "
                 "scheduler + api-server + dag-processor")
    else:
        db = home / "airflow.db"
        extra.update(AIRFLOW__CORE__EXECUTOR="LocalExecutor", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}")
        query = lambda q: _sqlite(db, q)  # noqa: E731
        label = "LocalExecutor, SQLite, scheduler + api-server + dag-processor"
    env = _env(home, landing, repo, **extra)
    log = base / "airflow.log"
    _prepare(env, log)
    commands = {"api": ["api-server", "--port", str(port)], "scheduler": ["scheduler"], "dag_processor": ["dag-processor"]}
    if setup == "celery":
        for i in range(workers):
            commands[f"worker{i + 1}"] = ["celery", "worker", "--concurrency", str(concurrency), "--queues", queue,
                                          "--celery-hostname", f"bench-worker{i + 1}@%h"]
    logs = {name: open(base / f"{name}.log", "wb") for name in commands}
    procs = [subprocess.Popen([*AIRFLOW, *cmd], stdout=logs[name], stderr=subprocess.STDOUT, env=env,
                              start_new_session=True) for name, cmd in commands.items()]
    try:
        deadline = time.monotonic() + 240
        while not query(f"SELECT dag_id FROM dag WHERE dag_id = '{DAG_ID}'"):
            if time.monotonic() > deadline:
                raise RuntimeError("the dag-processor never serialised the DAG")
            time.sleep(2)
        if setup == "celery":  # both workers must be listening before the run, or one takes everything
            time.sleep(10)
        t0 = time.perf_counter()
        _airflow(["dags", "unpause", DAG_ID], env, log)
        # Unpausing may also start the hourly run (if the hour began less than 10 minutes ago), and
        # max_active_runs=1 puts one after the other: the figures are those of the run that did the work.
        _airflow(["dags", "trigger", DAG_ID], env, log)
        deadline = time.monotonic() + 1800
        while True:
            done = [r for r in query(RUNS_SQL) if r[1] in ("success", "failed")]
            worked = [r for r in done if query(READS_SQL.format(run_id=r[0]))[0][0] != "0"]
            if worked:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no run finished: {query(RUNS_SQL)}")
            time.sleep(2)
        observed_seconds = time.perf_counter() - t0
        run_id, state, start, end = worked[0]
        result = {"setup": label, "state": state, "run_seconds": round((_ts(end) - _ts(start)).total_seconds(), 1),
                  "trigger_to_finish_seconds": round(observed_seconds, 1), **_figures(query, run_id)}
        if setup == "celery":  # task instances record the machine's hostname, so count per worker from its log
            for fh in logs.values():
                fh.flush()
            result["tasks_received_per_worker"] = {
                name: (base / f"{name}.log").read_text(errors="replace").count("] received")
                for name in commands if name.startswith("worker")}
        return result
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
        if database:
            _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


# What each task of collect_ssda903 imports when it runs (the ``from ... import`` lines of its callable in
# transforms/orchestration/dags.py); validate also builds a GX suite, which imports Great Expectations.
TASK_IMPORTS = {
    "discover": ["transforms.ingest.landing", "transforms.store.repository"],
    "read": ["transforms.ingest.landing", "transforms.ingest.stages", "transforms.store.repository"],
    "validate": ["transforms.ingest.record", "transforms.ingest.stages", "transforms.store.repository",
                 "great_expectations", "transforms.ingest.expectations"],
    "load": ["transforms.ingest.record", "transforms.ingest.stages", "transforms.store.repository"],
    "check_rules": ["transforms.ingest.error_report", "transforms.ingest.resume", "transforms.ingest.rules",
                    "transforms.store.repository"],
}
_STARTUP = """
import importlib, json, os, runpy, sys, time
import airflow.sdk, airflow.sdk.execution_time.task_runner   # the executor's worker has these already
os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = sys.argv[1]
t0 = time.perf_counter()
runpy.run_path(sys.argv[2])                                     # the DAG file, building only that DAG
t1 = time.perf_counter()
for module in sys.argv[3:]:
    importlib.import_module(module)
t2 = time.perf_counter()
print(json.dumps({"parse_dag_s": t1 - t0, "imports_s": t2 - t1}))
"""


def run_startup(work: Path, landing: Path, repeats: int = 3) -> dict:
    """A task's own start-up: what a LocalExecutor (or Celery) worker's task process does before the task's
    code runs, in a fresh interpreter that has imported Airflow's task SDK (as the worker has): parse the
    DAG file for ``collect_ssda903`` only, then import what the task's callable imports. Median of
    ``repeats`` runs per task."""
    home = work / "startup" / "airflow"
    home.mkdir(parents=True)
    env = _env(home, landing, work / "startup" / "repository",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}")
    out = {}
    for task_id, modules in TASK_IMPORTS.items():
        runs = []
        for _ in range(repeats):
            done = subprocess.run([sys.executable, "-c", _STARTUP, DAG_ID, str(ROOT / "dags" / "collections.py"),
                                   *modules], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                  text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"start-up of {task_id} failed: {done.stderr[-2000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        runs.sort(key=lambda r: r["parse_dag_s"] + r["imports_s"])
        median = runs[len(runs) // 2]
        out[task_id] = {"parse_dag_s": round(median["parse_dag_s"], 2), "imports_s": round(median["imports_s"], 2),
                        "startup_s": round(median["parse_dag_s"] + median["imports_s"], 2)}
    return {"setup": "task start-up (DAG parse + the task's imports, fresh interpreter with the task SDK)",
            "state": "success", "tasks": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--councils", type=int, default=6)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="task slots per Celery worker")
    parser.add_argument("--only", choices=["startup", "dags-test", "local", "celery"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    args = parser.parse_args(argv)
    setups = args.only or ["startup", "dags-test", "local", "celery"]
    work = Path(tempfile.mkdtemp(prefix="csreturns-bench-airflow-"))
    from transforms.synthetic.generator import generate_landing

    landing = work / "landing"
    summary = generate_landing(landing, n_las=args.councils, years=[args.year])
    for folder in [*landing.glob("*/*"), landing / "published"]:  # only the SSDA903 DAG runs
        if folder.is_dir() and folder.name != "ssda903":
            shutil.rmtree(folder)
    files = sum(1 for p in landing.rglob("*") if p.is_file())
    print(json.dumps({"landing": f"{args.councils} councils x {args.year}: {files} files",
                      "episodes": summary["episodes"]}), flush=True)
    results = []
    for setup in setups:
        if setup == "celery":
            problem = None if shutil.which("psql") else "psql not found"
            if not problem and subprocess.run(["pg_isready", "-h", PG_HOST, "-p", PG_PORT]).returncode != 0:
                problem = f"no PostgreSQL at {PG_HOST}:{PG_PORT}"
            if not problem and not _redis_up():
                problem = f"no Redis at {REDIS_HOST}:{REDIS_PORT}"
            if problem:
                print(json.dumps({"setup": "celery", "skipped": problem}), flush=True)
                continue
        if setup == "startup":
            result = run_startup(work, landing)
        elif setup == "dags-test":
            result = run_dags_test(work, landing)
        else:
            result = run_services(work, landing, setup, args.workers, args.concurrency)
        result["load_average_after"] = [round(x, 1) for x in os.getloadavg()]  # other work on the machine shows here
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["state"] == "success" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
