"""Run DAGs through Airflow in a few warm processes, leaving task logs the Airflow UI shows.

``make demo`` runs every collection DAG this way. Each run is a real DAG run in the metadata database (run
type manual, triggered by "dag_test"), every task is executed by Airflow's own in-process runner (what
``airflow dags test`` does), and each task's output is written to the file the UI reads for it:
``[logging] base_log_folder`` (default ``AIRFLOW_HOME/logs``) / ``[logging] log_filename_template``
(``dag_id=.../run_id=.../task_id=.../attempt=N.log``). ``airflow dags test`` itself pays about 25 s of
start-up per DAG (imports, parsing every DAG file, syncing them to the database) and keeps no task logs;
a ``Runner`` pays the start-up once for all its runs, and a ``RunnerPool`` keeps one ``Runner`` per core so
that DAG runs go on side by side (each run's own tasks still one after another, as in ``dags test``).

Several processes share the SQLite metadata database: Airflow opens it in WAL mode (readers never wait for
the writer), writers wait their turn for up to ``timeout`` seconds (the ``?timeout=`` of the connection URL,
``make demo`` sets 60), and the writes two processes could race on, the bundle and the parsed DAGs a Runner
syncs when it starts (the first inserts them), are made one process at a time under a file lock.

Nothing here is for production: there the scheduler and its executor run tasks and write their logs.
"""
from __future__ import annotations

import atexit
import fcntl
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

DEFAULT_TEMPLATE = ("dag_id={dag_id}/run_id={run_id}/task_id={task_id}/"
                    "{map_part}attempt={try_number}.log")


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so ``print``, logging handlers and
    anything a library writes) to ``path`` (appended) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    # Only the descriptors: loggers keep the stream objects they were made with (structlog's PrintLogger
    # holds sys.stdout), so swapping sys.stdout for a file closed after the task breaks the next task's logging.
    try:
        with open(path, "ab") as fh:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def task_log_path(ti) -> Path:
    """Where the Airflow UI looks for the log of task instance ``ti`` (its current try)."""
    from airflow.configuration import conf

    base = Path(conf.get("logging", "base_log_folder"))
    try:
        from airflow.utils.log.file_task_handler import FileTaskHandler

        return base / FileTaskHandler(str(base))._render_filename(ti, ti.try_number)
    except Exception:  # the reader's own renderer moved: fall back to Airflow's default template
        map_part = f"map_index={ti.map_index}/" if ti.map_index >= 0 else ""
        return base / DEFAULT_TEMPLATE.format(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                                              map_part=map_part, try_number=ti.try_number)


@contextmanager
def metadata_writes() -> Iterator[None]:
    """Hold ``AIRFLOW_HOME/.csreturns-dag-sync.lock`` (an exclusive ``flock``) while the block runs: Runners in
    several processes write their parsed DAGs to the metadata database one at a time."""
    from airflow.configuration import AIRFLOW_HOME

    path = Path(AIRFLOW_HOME) / ".csreturns-dag-sync.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Runner:
    """Parses the DAG folder once, syncs it to the metadata database, then runs DAGs on request.

    ``runner.run("collect_ssda903", conf={...})`` returns ``{"dag_id", "run_id", "state", "seconds",
    "tasks": {task_id: {state: count}}, "task_seconds": {task_id: seconds}}`` (``task_seconds``: the summed
    duration of the task's instances, mapped ones together, as the metadata database records them; the rest of
    ``seconds`` is Airflow's own work between tasks). Raises ``KeyError`` for a DAG the folder does not define.
    """

    def __init__(self) -> None:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

        manager = DagBundlesManager()
        bundle = manager.get_bundle("dags-folder")
        bundle.initialize()
        self.bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if self.bag.import_errors:
            raise RuntimeError(f"DAG files failed to import: {self.bag.import_errors}")
        with metadata_writes():  # the first Runner inserts the bundle and every DAG; two at once would both insert
            manager.sync_bundles_to_db()
            sync_bag_to_db(self.bag, bundle.name, bundle.version)

    def run(self, dag_id: str, conf: dict | None = None, on_task: Callable[[str], None] | None = None) -> dict:
        from airflow.dag_processing import dagbag as dagbag_module
        from airflow.sdk.definitions import dag as dag_module

        dag = self.bag.dags[dag_id]
        original, original_bag, original_sync = dag_module._run_task, dagbag_module.BundleDagBag, dagbag_module.sync_bag_to_db

        def run_task_with_log(*, ti, task, run_triggerer: bool = False):
            if on_task:
                on_task(ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""))
            with output_to(task_log_path(ti)):
                return original(ti=ti, task=task, run_triggerer=run_triggerer)

        started = time.perf_counter()
        # dag.test() calls the module's _run_task for every task; before each run it parses the whole DAG folder
        # again and writes every DAG to the metadata database (BundleDagBag, sync_bag_to_db: 5-10 s a run). The
        # bag parsed and synced when this Runner started is the same, so neither is done again.
        dag_module._run_task = run_task_with_log
        dagbag_module.BundleDagBag = lambda **_: self.bag
        dagbag_module.sync_bag_to_db = lambda *_, **__: None
        try:
            run = dag.test(run_conf=conf)
        finally:
            dag_module._run_task = original
            dagbag_module.BundleDagBag, dagbag_module.sync_bag_to_db = original_bag, original_sync
        tasks: dict[str, dict[str, int]] = {}
        task_seconds: dict[str, float] = {}
        for ti in sorted(run.get_task_instances(), key=lambda ti: (ti.start_date is None, ti.start_date)):
            states = tasks.setdefault(ti.task_id, {})
            state = str(getattr(ti.state, "value", ti.state))
            states[state] = states.get(state, 0) + 1
            task_seconds[ti.task_id] = round(task_seconds.get(ti.task_id, 0.0) + (ti.duration or 0.0), 1)
        return {"dag_id": dag_id, "run_id": run.run_id, "state": str(getattr(run.state, "value", run.state)),
                "seconds": round(time.perf_counter() - started, 1), "tasks": tasks, "task_seconds": task_seconds}


_worker_runner: Runner | None = None


def _start_worker(output: str) -> None:
    """In a pool's new process: Airflow's and the tasks' own output (file descriptors 1 and 2) to ``output``
    for the life of the process, then a Runner (imports, parse, sync: paid once per process) and the
    in-process execution API its tasks talk to (built on the first task otherwise)."""
    global _worker_runner
    fh = open(output, "ab")
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)
    atexit.register(_exit_at_once)  # registered last, so run first
    _worker_runner = Runner()
    try:
        from airflow.sdk.execution_time.supervisor import in_process_api_server

        in_process_api_server().app  # noqa: B018 - building it is the point
    except (ImportError, AttributeError):  # moved in another Airflow release: the first task builds it
        pass


def _exit_at_once() -> None:
    """A pool process, its runs over, leaves without tearing down its heap (Airflow, GX, pandas, DuckDB: 5-10 s
    of the interpreter's own clean-up on a busy machine). Every run's state is committed to the metadata
    database and every task log closed by then; SQLite finds its committed WAL on the next open."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_in_worker(dag_id: str, conf: dict | None) -> dict:
    return _worker_runner.run(dag_id, conf=conf)


class RunnerPool:
    """``workers`` processes, each with its own ``Runner``, taking DAG runs in the order they are submitted as
    soon as one is free: ``pool.submit("collect_cin_census")`` returns a ``Future`` of ``Runner.run``'s dict.

    Processes are started fresh (``spawn``: nothing of the caller's Airflow state is shared) with the caller's
    environment; their output, Airflow's and the tasks' (task logs aside), is appended to ``output``. Use as a
    context manager: leaving it waits for the submitted runs and stops the processes; leaving it on an
    exception (Ctrl-C included) kills them, runs unfinished. A run that raises, or a process that dies, makes
    its future raise (``concurrent.futures.process.BrokenProcessPool`` for a death).
    """

    def __init__(self, workers: int, output: Path) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, not {workers}")
        output.parent.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(str(output),))

    def start(self) -> None:
        """Start every process now (each imports Airflow, parses and syncs the DAG folder) instead of on the
        first runs, so that the caller can do other work meanwhile. Needs the migrated metadata database."""
        for _ in range(self.workers):  # a submission finding no idle process starts one, up to ``workers``
            self._executor.submit(os.getpid)

    def submit(self, dag_id: str, conf: dict | None = None) -> Future:
        return self._executor.submit(_run_in_worker, dag_id, conf)

    def __enter__(self) -> "RunnerPool":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self._executor.shutdown(wait=True)
            return
        # Interrupted (Ctrl-C, an error): the processes would finish their runs first, deaf to SIGINT and SIGTERM
        # while Airflow runs a task, and outlive the caller. The executor keeps no public handle on them.
        for process in list(getattr(self._executor, "_processes", {}).values()):
            process.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)
