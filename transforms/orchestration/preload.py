"""What a csreturns task imports, imported once in the process Airflow forks its task processes from.

Name this module in Airflow's configuration and each task process starts with Great Expectations, pandas,
DuckDB, the stages and the DAG builders already imported, instead of importing them itself (GX alone is
4-8 s of a validate task's start-up on a loaded 2-core machine; ``bench/airflow_executors.py --only
startup`` measures both ways):

LocalExecutor (the scheduler's workers)::

    AIRFLOW__SCHEDULER__MP_START_METHOD=forkserver
    AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=transforms.orchestration.preload

Celery workers (``transforms.orchestration.celery_config``: Airflow's default Celery configuration, plus
this module in Celery's ``imports``)::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=transforms.orchestration.celery_config.CELERY_CONFIG

Why this works (Airflow 3.3.2 as installed, read from its source):

- LocalExecutor's workers are ``multiprocessing`` processes; ``[scheduler] mp_start_method`` and
  ``mp_forkserver_preload`` (config.yml, "version_added: 3.3.0"; applied by
  ``airflow.utils.process_utils.set_component_mp_start_method("scheduler")`` before the executor starts)
  make them children of a fork server that imported the listed modules first. Each worker runs a task
  through ``BaseExecutor.run_workload`` -> ``supervise_task`` -> ``ActivitySubprocess.start``, which is a
  bare ``os.fork()`` on Linux (``os.execv`` of a fresh interpreter only on macOS, ``_FORK_EXEC_PLATFORMS``):
  the task process inherits every module of its worker, and its ``BundleDagBag`` parse of
  ``dags/collections.py`` finds ``transforms.*`` already in ``sys.modules``.
- The scheduler process itself imports none of this (a fork server, not ``fork`` from the scheduler), and
  neither do the api-server, the dag-processor or the CLI.
- Celery: Airflow's worker runs a task the same way (``execute_workload`` -> ``run_workload``) from a
  prefork pool child forked from the main worker process. Celery imports the modules named in its
  ``imports`` setting in that main process when the worker starts (``loader.import_default_modules``, the
  step where Airflow's own ``on_celery_import_modules`` preloads its operators "so other task processes
  won't have to import it again"), before the pool forks (``WorkController.__init__`` ->
  ``loader.init_worker``, celery 5.6). The scheduler reads the same configuration to send tasks but does
  not import ``imports``.

The price: a task runs the ``transforms`` code its worker imported, so after changing that code restart the
scheduler (LocalExecutor) or the Celery workers; the DAG files themselves are still parsed by every task.

Importing only: nothing here reads settings, opens the repository or starts a thread of its own. Three
idle native threads exist after these imports (numpy's OpenBLAS pool, Arrow's jemalloc background thread,
one more from GX's imports; all idle when the fork happens): Airflow's own Celery preload forks after
importing numpy the same way, and DuckDB's and Arrow's worker threads start only when a task first uses them. A module that fails to import is logged and skipped, so a task then imports it
itself, as it would without this module.
"""
from __future__ import annotations

import gc
import importlib
import logging

log = logging.getLogger(__name__)

# Every module a task body in transforms/orchestration/dags.py imports (tests/test_task_startup.py holds the
# list to them), what Airflow imports around a task, and what the stages load on first use. Not here: the
# S3 and SFTP provider hooks (boto3, paramiko), imported only where a replica or remote source is configured.
MODULES = (
    # Airflow's side: the worker's supervisor, the task runner, what its parse of the DAG file imports
    # (BundleDagBag), and what loading the plugins folder imports in every task process
    # (task_runner.get_template_context -> plugins_manager.integrate_macros_plugins -> our csreturns_ui
    # plugin, a FastAPI app behind the api-server's login: about 520 modules, 2 s under load).
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.dag_processing.bundles.manager",
    "airflow.sdk.plugins_manager",
    "airflow.plugins_manager",
    "airflow.api_fastapi.core_api.security",
    "fastapi",
    # csreturns' side
    "transforms.orchestration.dags",              # what parsing dags/*.py imports
    "transforms.ingest.landing",
    "transforms.ingest.record",
    "transforms.ingest.stages",
    "transforms.ingest.expectations",
    "transforms.ingest.validate",
    "transforms.ingest.rules",
    "transforms.ingest.resume",
    "transforms.ingest.error_report",
    "transforms.orchestration.plugins.validation_pages",
    "transforms.store.repository",
    "transforms.catalogue.build",                 # repository_refresh
    "transforms.report.html",
    "transforms.store.replica",
    "airflow.sdk.configuration",
    "airflow.sdk.exceptions",
    "transforms.ingest.reference_data",           # the DfE rules' LA codes and postcodes
    "duckdb_engine",                              # GX's SQLAlchemy dialect for DuckDB, loaded on first use
    "pyarrow.dataset",                            # what pandas' and Arrow's Parquet writers load on first use
    "pyarrow.parquet",
    # validate: GX, 6-8 s under load, the bulk of a task's start-up; after transforms.ingest.validate, which
    # turns GX's usage analytics off before GX is first imported (validate._gx imports these two)
    "great_expectations",
    "great_expectations.expectations",
)


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import ``modules``; return those that failed (each logged with its error, never raised)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:   # a task will import it itself and fail there, visibly, if it must
            log.warning("csreturns preload: %s not imported (%s: %s)", name, type(exc).__name__, exc)
            failed.append(name)
    # What is imported now lives as long as the process: keep it out of the collector's sweeps, here and in
    # every process forked from here, so a task's first full collection neither walks it nor copies its
    # pages (Python's gc.freeze, "for a process that will fork() without exec()"; Airflow does the same in
    # LocalExecutor._spawn_workers_with_gc_freeze and in its Celery worker's on_celery_import_modules).
    gc.freeze()
    return failed


preload()

