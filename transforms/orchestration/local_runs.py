"""Run DAGs through Airflow in one process, one run after another, leaving task logs the Airflow UI shows.

``make demo`` runs every collection DAG this way. Each run is a real DAG run in the metadata database (run
type manual, triggered by "dag_test"), every task is executed by Airflow's own in-process runner (what
``airflow dags test`` does), and each task's output is written to the file the UI reads for it:
``[logging] base_log_folder`` (default ``AIRFLOW_HOME/logs``) / ``[logging] log_filename_template``
(``dag_id=.../run_id=.../task_id=.../attempt=N.log``). ``airflow dags test`` itself pays about 25 s of
start-up per DAG (imports, parsing every DAG file, syncing them to the database) and keeps no task logs;
here the start-up is paid once for all runs.

Nothing here is for production: there the scheduler and its executor run tasks and write their logs.
"""
from __future__ import annotations

import os
import sys
import time
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
    streams = sys.stdout, sys.stderr
    try:
        with open(path, "ab") as fh, open(path, "a", buffering=1, encoding="utf-8", errors="replace") as text:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            sys.stdout = sys.stderr = text  # also when sys.stdout is not fd 1 (e.g. under a test runner)
            try:
                yield
            finally:
                text.flush()
                sys.stdout, sys.stderr = streams
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


class Runner:
    """Parses the DAG folder once, syncs it to the metadata database, then runs DAGs on request.

    ``runner.run("collect_ssda903", conf={...})`` returns ``{"dag_id", "run_id", "state", "seconds",
    "tasks": {task_id: {state: count}}}``. Raises ``KeyError`` for a DAG the folder does not define.
    """

    def __init__(self) -> None:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

        manager = DagBundlesManager()
        manager.sync_bundles_to_db()
        bundle = manager.get_bundle("dags-folder")
        bundle.initialize()
        self.bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if self.bag.import_errors:
            raise RuntimeError(f"DAG files failed to import: {self.bag.import_errors}")
        sync_bag_to_db(self.bag, bundle.name, bundle.version)

    def run(self, dag_id: str, conf: dict | None = None, on_task: Callable[[str], None] | None = None) -> dict:
        from airflow.sdk.definitions import dag as dag_module

        dag = self.bag.dags[dag_id]
        original = dag_module._run_task

        def run_task_with_log(*, ti, task, run_triggerer: bool = False):
            if on_task:
                on_task(ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""))
            with output_to(task_log_path(ti)):
                return original(ti=ti, task=task, run_triggerer=run_triggerer)

        started = time.perf_counter()
        dag_module._run_task = run_task_with_log  # dag.test() calls the module's _run_task for every task
        try:
            run = dag.test(run_conf=conf)
        finally:
            dag_module._run_task = original
        tasks: dict[str, dict[str, int]] = {}
        for ti in run.get_task_instances():
            states = tasks.setdefault(ti.task_id, {})
            state = str(getattr(ti.state, "value", ti.state))
            states[state] = states.get(state, 0) + 1
        return {"dag_id": dag_id, "run_id": run.run_id, "state": str(getattr(run.state, "value", run.state)),
                "seconds": round(time.perf_counter() - started, 1), "tasks": tasks}
