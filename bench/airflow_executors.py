"""Wall time of one collection DAG run under each way of running Airflow, and how many tasks ran at once.

    .venv/bin/python bench/airflow_executors.py                 # task start-up, then all three setups
    .venv/bin/python bench/airflow_executors.py --only startup  # a task's own start-up only
    .venv/bin/python bench/airflow_executors.py --only celery --councils 8 --workers 2
    .venv/bin/python bench/airflow_executors.py --only local --parallelism 2 --batch-submissions 25 --no-preload

Task processes fork from workers that imported ``transforms.orchestration.preload`` (``PRELOAD``: the
scheduler's fork server, or Celery's ``imports``) unless ``--no-preload``; ``--batch-submissions`` sets
``CSRETURNS_BATCH_SUBMISSIONS`` (default 1 here, 25 in csreturns), ``--collection`` the DAG run
(``collect_<collection>``), ``--parallelism`` LocalExecutor's ``[core] parallelism``. Besides the run's
figures, each result gives the seconds with no task running, each stage's summed task time, and each task
process's DAG parse as Airflow logged it (``dag_file_parse_ms``).

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
BATCH_SUBMISSIONS = 1   # council returns per mapped task instance (--batch-submissions)
RUNS_SQL = ("SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id = '{dag_id}' "
            "ORDER BY start_date")
READS_SQL = ("SELECT count(*) FROM task_instance WHERE dag_id = '{dag_id}' AND run_id = '{run_id}' "
             "AND task_id = 'read' AND map_index >= 0")
TIS_SQL = ("SELECT task_id, map_index, state, start_date, end_date, hostname FROM task_instance "
           "WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'")


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


def idle_seconds(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Seconds between ``start`` and ``end`` when no task instance was running (the scheduler's gaps)."""
    busy, edge = 0.0, start
    for s, e in sorted(intervals):
        s, e = max(s, edge), min(e, end)
        if e > s:
            busy += (e - s).total_seconds()
            edge = e
    return max(0.0, (end - start).total_seconds() - busy)


def _figures(query, run_id: str, run: tuple[datetime, datetime] | None = None) -> dict:
    tis = [dict(zip(("task_id", "map_index", "state", "start", "end", "host"), row))
           for row in query(TIS_SQL.format(dag_id=DAG_ID, run_id=run_id))]
    ran = [(_ts(t["start"]), _ts(t["end"])) for t in tis if t["start"] and t["end"]]
    return {"task_instances": len(tis), "task_instances_run": len(ran),
            "mapped_per_stage": sum(1 for t in tis if t["task_id"] == "read" and int(t["map_index"]) >= 0),
            "max_concurrent_tasks": max_concurrent(ran),
            "hosts": sorted({t["host"] for t in tis if t["host"]}),
            "task_seconds_sum": round(sum((e - s).total_seconds() for s, e in ran), 1),
            **({"idle_seconds": round(idle_seconds(ran, *run), 1)} if run else {}),
            "seconds_per_task": {t: round(sum((_ts(i["end"]) - _ts(i["start"])).total_seconds() for i in tis
                                              if i["task_id"] == t and i["start"] and i["end"]), 1)
                                 for t in sorted({i["task_id"] for i in tis})}}


def _env(home: Path, landing: Path, repo: Path, **extra) -> dict:
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
               AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "transforms" / "orchestration" / "plugins"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME="3600",
               AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True", GX_ANALYTICS_ENABLED="False",
               CSRETURNS_LANDING=str(landing), CSRETURNS_REPO=str(repo), CSRETURNS_BATCH_SUBMISSIONS=str(BATCH_SUBMISSIONS),
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
    [[run_id, state, start, end]] = _sqlite(db, RUNS_SQL.format(dag_id=DAG_ID))
    return {"setup": "LocalExecutor, SQLite, airflow dags test", "state": state,
            "run_seconds": round((_ts(end) - _ts(start)).total_seconds(), 1),
            "command_seconds": round(command_seconds, 1), **_figures(lambda q: _sqlite(db, q), run_id)}


# How task processes inherit what the tasks import (transforms/orchestration/preload.py says why each works).
PRELOAD = {"local": {"AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
                     "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "transforms.orchestration.preload"},
           "celery": {"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "transforms.orchestration.celery_config.CELERY_CONFIG"}}


def _task_parse_ms(logs: Path) -> dict:
    """Airflow's own record of each task process's DAG file parse (task_runner.parse logs
    "Worker startup parse complete" with ``dag_file_parse_ms``): median and largest per task id."""
    seen: dict[str, list[int]] = {}
    for path in logs.rglob("*.log"):
        task_id = next((p.split("=", 1)[1] for p in path.parts if p.startswith("task_id=")), None)
        for line in path.read_text(errors="replace").splitlines():
            if "dag_file_parse_ms" in line and task_id:
                try:
                    seen.setdefault(task_id, []).append(int(json.loads(line)["dag_file_parse_ms"]))
                except (ValueError, KeyError):
                    pass
    return {t: {"median_ms": sorted(v)[len(v) // 2], "max_ms": max(v), "tasks": len(v)} for t, v in sorted(seen.items())}


def run_services(work: Path, landing: Path, setup: str, workers: int, concurrency: int,
                 preload: bool = True, parallelism: int | None = None) -> dict:
    """Start Airflow's processes, unpause the DAG (its schedule starts one run) and wait for that run.
    ``preload``: task processes inherit ``transforms.orchestration.preload`` (``PRELOAD``); ``parallelism``:
    LocalExecutor's ``[core] parallelism`` (default: as configured, Airflow's 32 unless the environment says)."""
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
        if parallelism:
            extra["AIRFLOW__CORE__PARALLELISM"] = str(parallelism)
    if preload:
        extra.update(PRELOAD[setup])
    label += ", tasks forked from a preloaded worker" if preload else ", tasks import for themselves"
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
            done = [r for r in query(RUNS_SQL.format(dag_id=DAG_ID)) if r[1] in ("success", "failed")]
            worked = [r for r in done if query(READS_SQL.format(dag_id=DAG_ID, run_id=r[0]))[0][0] != "0"]
            if worked:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no run finished: {query(RUNS_SQL.format(dag_id=DAG_ID))}")
            time.sleep(2)
        observed_seconds = time.perf_counter() - t0
        run_id, state, start, end = worked[0]
        result = {"setup": label, "state": state, "run_seconds": round((_ts(end) - _ts(start)).total_seconds(), 1),
                  "trigger_to_finish_seconds": round(observed_seconds, 1),
                  "parallelism": env.get("AIRFLOW__CORE__PARALLELISM", "32 (default)") if setup == "local" else None,
                  **_figures(query, run_id, (_ts(start), _ts(end))),
                  "task_dag_parse": _task_parse_ms(home / "logs")}
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
        for p in procs:  # a LocalExecutor worker can outlive its scheduler, idle, in the scheduler's group
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
from airflow.sdk.plugins_manager import integrate_macros_plugins
integrate_macros_plugins()                                      # as get_template_context does: the plugins folder
t2 = time.perf_counter()
for module in sys.argv[3:]:
    importlib.import_module(module)
t3 = time.perf_counter()
print(json.dumps({"parse_dag_s": t1 - t0, "plugins_s": t2 - t1, "imports_s": t3 - t2}))
"""


_STARTUP_WARM = """
import importlib, json, os, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk, airflow.sdk.execution_time.task_runner
import transforms.orchestration.preload                        # what the fork server (or Celery worker) imports once
preload_s = time.perf_counter() - t0
dag_id, dag_file, repeats, plan = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
out = {"preload_s": preload_s, "tasks": {}}
for task_id, modules in plan.items():
    runs = []
    for _ in range(repeats):
        read, write = os.pipe()
        t0 = time.perf_counter()                                 # CLOCK_MONOTONIC: the same clock in the child
        pid = os.fork()                                          # as ActivitySubprocess.start does on Linux
        if pid == 0:
            os.close(read)
            os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
            t1 = time.perf_counter()
            runpy.run_path(dag_file)
            t2 = time.perf_counter()
            from airflow.sdk.plugins_manager import integrate_macros_plugins
            integrate_macros_plugins()
            t3 = time.perf_counter()
            for module in modules:
                importlib.import_module(module)
            t4 = time.perf_counter()
            os.write(write, json.dumps({"fork_s": t1 - t0, "parse_dag_s": t2 - t1, "plugins_s": t3 - t2,
                                        "imports_s": t4 - t3, "startup_s": t4 - t0}).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as fh:
            runs.append(json.loads(fh.read()))
        os.waitpid(pid, 0)
    runs.sort(key=lambda r: r["startup_s"])
    out["tasks"][task_id] = runs[len(runs) // 2]
print(json.dumps(out))
"""


def run_startup(work: Path, landing: Path, repeats: int = 3) -> dict:
    """A task's own start-up: what a LocalExecutor (or Celery) worker's task process does before the task's
    code runs: parse the DAG file for ``collect_ssda903`` only, load the plugins folder (as the task runner's
    ``get_template_context`` does), then import what the task's callable imports.
    Median of ``repeats`` runs per task, measured two ways:

    - ``cold``: a fresh interpreter that has imported Airflow's task SDK (as the worker has) does it;
    - ``warm``: one process imports ``transforms.orchestration.preload`` once (``preload_s``, paid once per
      worker process: what the scheduler's fork server or a Celery worker does when configured as that
      module says), then forks a child per task that does it, as Airflow's supervisor forks a task
      process from its worker (``os.fork``); ``startup_s`` runs from before the fork to the end of the
      imports, in the child.
    """
    home = work / "startup" / "airflow"
    home.mkdir(parents=True)
    env = {**_env(home, landing, work / "startup" / "repository",
                  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}"), "PYTHONPATH": str(ROOT)}
    dag_file = str(ROOT / "dags" / "collections.py")
    cold = {}
    for task_id, modules in TASK_IMPORTS.items():
        runs = []
        for _ in range(repeats):
            done = subprocess.run([sys.executable, "-c", _STARTUP, DAG_ID, dag_file, *modules], env=env,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"start-up of {task_id} failed: {done.stderr[-2000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        for r in runs:
            r["startup_s"] = r["parse_dag_s"] + r["plugins_s"] + r["imports_s"]
        runs.sort(key=lambda r: r["startup_s"])
        cold[task_id] = {k: round(v, 2) for k, v in runs[len(runs) // 2].items()}
    done = subprocess.run([sys.executable, "-c", _STARTUP_WARM, DAG_ID, dag_file, str(repeats),
                           json.dumps(TASK_IMPORTS)], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"warm start-up failed: {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    warm = {task_id: {k: round(v, 3) for k, v in r.items()} for task_id, r in measured["tasks"].items()}
    return {"setup": "task start-up (DAG parse + plugins + the task's imports): cold = fresh interpreter with the task SDK, "
                     "warm = forked from a process that imported transforms.orchestration.preload",
            "state": "success", "preload_s": round(measured["preload_s"], 2),
            "tasks": {t: {"cold": cold[t], "warm": warm[t]} for t in TASK_IMPORTS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--councils", type=int, default=6)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="task slots per Celery worker")
    parser.add_argument("--only", choices=["startup", "dags-test", "local", "celery"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    parser.add_argument("--no-preload", action="store_true",
                        help="task processes import for themselves (as before transforms/orchestration/preload.py)")
    parser.add_argument("--parallelism", type=int, help="LocalExecutor's [core] parallelism (default: as configured)")
    parser.add_argument("--collection", default="ssda903",
                        help="the collection whose DAG runs (cin_census: XML large enough to read in worker processes)")
    parser.add_argument("--batch-submissions", type=int, default=1,
                        help="CSRETURNS_BATCH_SUBMISSIONS: council returns per mapped task (1: one task each)")
    args = parser.parse_args(argv)
    global BATCH_SUBMISSIONS, DAG_ID
    BATCH_SUBMISSIONS, DAG_ID = args.batch_submissions, f"collect_{args.collection}"
    setups = args.only or ["startup", "dags-test", "local", "celery"]
    work = Path(tempfile.mkdtemp(prefix="csreturns-bench-airflow-"))
    from transforms.synthetic.generator import generate_landing

    landing = work / "landing"
    summary = generate_landing(landing, n_las=args.councils, years=[args.year])
    for folder in [*landing.glob("*/*"), landing / "published"]:  # only the SSDA903 DAG runs
        if folder.is_dir() and folder.name != args.collection:
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
            result = run_services(work, landing, setup, args.workers, args.concurrency,
                                  preload=not args.no_preload, parallelism=args.parallelism)
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
