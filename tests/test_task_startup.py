"""Task processes start with what the tasks import already imported (transforms/orchestration/preload.py):
the list covers every import of the collection tasks, Airflow accepts the configuration that names it, and
a process started the way LocalExecutor starts its workers has it without importing it again."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, **env) -> dict:
    return _run(["-c", code], **env)


def _run(args: list[str], **env) -> dict:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _task_imports() -> set[str]:
    """Every module a task body in transforms/orchestration/dags.py imports (``from X import ...`` inside a
    function), as the task processes import them when they run."""
    tree = ast.parse((ROOT / "transforms" / "orchestration" / "dags.py").read_text())
    found = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
    return found


def test_the_preload_imports_every_module_the_tasks_import_and_great_expectations():
    wanted = sorted(_task_imports() | {"great_expectations", "transforms.orchestration.dags"})
    assert "transforms.ingest.stages" in wanted   # the walk found the tasks' imports
    out = _python("import json, sys\nimport transforms.orchestration.preload as p\n"
                  f"print(json.dumps({{'failed': p.preload(), 'missing': [m for m in {wanted!r} if m not in sys.modules]}}))")
    assert out == {"failed": [], "missing": []}


def test_celery_workers_get_the_preload_in_celerys_imports_and_the_scheduler_does_not_import_it():
    out = _python("import json, sys\n"
                  "from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG as d\n"
                  "from transforms.orchestration.celery_config import CELERY_CONFIG as c\n"
                  "print(json.dumps({'imports': list(c['imports']), 'same': {k: v for k, v in c.items() if k != 'imports'} == d,"
                  " 'gx': 'great_expectations' in sys.modules}))")
    assert out == {"imports": ["transforms.orchestration.preload"], "same": True, "gx": False}


def test_airflow_starts_the_schedulers_workers_from_a_fork_server_that_imported_the_preload(tmp_path):
    """Airflow's own ``set_component_mp_start_method("scheduler")``, as ``airflow scheduler`` calls it before
    LocalExecutor starts; then a worker process from that start method, as ``LocalExecutor._spawn_worker``
    starts one: it finds GX imported, the scheduler's process does not."""
    code = """
import json, multiprocessing, sys
from airflow.utils.process_utils import set_component_mp_start_method

def worker(queue):
    before = set(sys.modules)
    import great_expectations, transforms.ingest.stages, transforms.orchestration.dags  # noqa: F401
    queue.put({"had_gx": "great_expectations" in before, "imported": sorted(set(sys.modules) - before)})

if __name__ == "__main__":
    set_component_mp_start_method("scheduler")
    queue = multiprocessing.SimpleQueue()
    p = multiprocessing.Process(target=worker, args=(queue,))
    p.start()
    got = queue.get()
    p.join()
    print(json.dumps({"method": multiprocessing.get_start_method(), "scheduler_has_gx": "great_expectations" in sys.modules, **got}))
"""
    script = tmp_path / "scheduler.py"
    script.write_text(code)
    out = _run([str(script)], AIRFLOW__SCHEDULER__MP_START_METHOD="forkserver",
               AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD="transforms.orchestration.preload")
    assert out["method"] == "forkserver" and out["had_gx"] and not out["scheduler_has_gx"]
    assert out["imported"] == []   # the worker imported nothing of it itself


def test_make_ui_and_docker_compose_name_the_preload():
    """``make ui``'s scheduler and the compose file's Celery workers are configured with the modules above."""
    import yaml

    make = dict(line.removeprefix("export ").split(" := ", 1) for line in (ROOT / "Makefile").read_text().splitlines()
                if line.startswith("export AIRFLOW__SCHEDULER__MP_"))
    assert make == {"AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
                    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "transforms.orchestration.preload"}
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "transforms.orchestration.celery_config.CELERY_CONFIG"
