"""docker/ is checked statically: no Docker engine runs on this machine kind (nor in CI)."""
import re

import yaml
from conftest import ROOT

DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]


def test_compose_runs_airflow_on_postgres_and_redis_with_celery_workers():
    assert {"postgres", "redis", "airflow-init", *AIRFLOW} <= set(SERVICES)
    env = SERVICES["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert SERVICES["airflow-worker"]["command"] == ["celery", "worker"]


def test_every_long_running_service_has_a_health_check_and_waits_for_its_dependencies():
    for name in ["postgres", "redis", *AIRFLOW]:
        assert "healthcheck" in SERVICES[name], name
    for name in AIRFLOW:
        deps = SERVICES[name]["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name


def test_repository_and_landing_area_live_on_volumes_shared_by_all_airflow_services():
    for name in AIRFLOW:
        mounts = SERVICES[name]["volumes"]
        assert "landing:/data/landing" in mounts and "repository:/data/repository" in mounts
    assert {"landing", "repository", "postgres-db"} <= set(COMPOSE["volumes"])


def test_no_credentials_are_committed():
    text = (DOCKER / "compose.yaml").read_text()
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                   "CSRETURNS_PSEUDONYM_KEY"):
        assert f"${{{secret}:?" in text, f"{secret} must come from the env file and be required"
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert all(not example[k] for k in example if "PASSWORD" in k or "KEY" in k or "SECRET" in k)
    assert "docker/.env" in (ROOT / ".gitignore").read_text()


def test_every_variable_compose_needs_is_in_the_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", (DOCKER / "compose.yaml").read_text()))
    documented = {line.split("=", 1)[0] for line in (DOCKER / ".env.example").read_text().splitlines()
                  if "=" in line and not line.startswith("#")}
    assert used <= documented


def test_image_is_the_official_airflow_image_with_csreturns_installed_from_the_lock():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.\d+-python3\.11$", dockerfile, re.M)
    assert "-c /opt/csreturns/constraints.txt" in dockerfile
    assert "AIRFLOW__CORE__DAGS_FOLDER=/opt/csreturns/dags" in dockerfile
