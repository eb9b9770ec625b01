"""Every ``CSRETURNS_*`` setting: its name, default and meaning, read from the environment in this one place.

``current()`` reads the environment each time it is called (cheap), so a test or an Airflow task that sets
a variable sees it at once; nothing caches it at import time. In Docker the variables come from
``docker/.env``; ``make demo`` and ``make test`` set their own. Airflow's own settings
(``AIRFLOW__*``) are Airflow's, not these.

Raises ``SettingsError`` naming the variable when a value cannot be used (a batch size that is not a
positive whole number, sources that are not a JSON object).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFIX = "CSRETURNS_"
ROOT = Path(__file__).resolve().parent.parent   # the checkout (schemas/, dags/, ../shared beside it)


class SettingsError(ValueError):
    """A ``CSRETURNS_*`` variable holds a value that cannot be used."""


class Settings(BaseModel):
    """The settings as one typed, read-only record. Field ``x`` is read from ``CSRETURNS_X``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    landing: Path = Field(Path("var/landing"), description=(
        "The landing area: LANDING/<la_code>/..., LANDING/published/..., LANDING/reference/<collection>/..."))
    repo: Path = Field(Path("var/repository"), description=(
        "The repository: Parquet partitions, ledger, quarantine, validations and the DuckDB catalogue"))
    shared: Path = Field(ROOT.parent / "shared", description=(
        "The public samples and published statistics the demo, tests and benchmarks read (../shared)"))
    pseudonym_key: str | None = Field(None, description=(
        "The pseudonymisation key (at least 16 bytes); unset: REPO/.secrets/pseudonym.key, made on first use. "
        "The same on every worker, backed up with the repository, never shared"))
    owner: str = Field("csreturns data team", description=(
        "Owner of every DAG in the Airflow UI: the team that runs csreturns"))
    alert_email: str = Field("", description=(
        "Who receives failure alerts and the daily overdue-returns list (comma-separated; empty: alerts are logged only)"))
    smtp_conn_id: str = Field("smtp_default", description="The Airflow connection of the mail server")
    batch_submissions: int = Field(25, gt=0, description=(
        "Council returns per mapped task instance (lower spreads a collection over more workers)"))
    refresh_settle_seconds: int = Field(900, ge=0, description=(
        "How long repository_refresh waits at most for collection DAG runs still queued or running before it "
        "rebuilds, so collections landing together are refreshed by one run"))
    read_workers: int = Field(0, ge=0, description=(
        "Processes that parse the files of one batch at once (0: one per core this process may use; "
        "1: every file in the task's own process)"))
    sources: str = Field("", description=(
        "Remote landing areas as JSON {name: {conn_id, path, ...}}: one fetch_<name> DAG each (see README)"))
    report: Path | None = Field(None, description="Where the HTML report is written (default REPO/report)")
    replica_url: str | None = Field(None, description=(
        "s3://bucket/prefix of the repository's read replica (unset: no replication)"))
    replica_conn_id: str | None = Field(None, description=(
        "The Airflow AWS connection of the replica (unset: boto3's own AWS_* configuration)"))

    @property
    def alert_recipients(self) -> list[str]:
        return [a for a in re.split(r"[,;\s]+", self.alert_email) if a]

    @property
    def read_processes(self) -> int:
        """``read_workers`` resolved: 0 becomes the cores this process may run on (its CPU affinity)."""
        if self.read_workers:
            return self.read_workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    @property
    def report_dir(self) -> Path:
        return self.report or self.repo / "report"

    def sources_spec(self) -> dict[str, Any]:
        """``CSRETURNS_SOURCES`` parsed (empty when unset)."""
        if not self.sources.strip():
            return {}
        try:
            spec = json.loads(self.sources)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{PREFIX}SOURCES is not valid JSON: {exc.msg} at character {exc.pos}") from None
        if not isinstance(spec, dict):
            raise SettingsError(f"{PREFIX}SOURCES must be a JSON object of sources, not {type(spec).__name__}")
        return spec


def variables() -> dict[str, str]:
    """Every variable this project reads, with its meaning: ``{"CSRETURNS_LANDING": "The landing area..."}``."""
    return {PREFIX + name.upper(): field.description or "" for name, field in Settings.model_fields.items()}


def current(environ: dict[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (default ``os.environ``); an empty variable counts as unset."""
    env = os.environ if environ is None else environ
    values = {name: env[PREFIX + name.upper()] for name in Settings.model_fields
              if env.get(PREFIX + name.upper(), "") != ""}
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = PREFIX + str(first["loc"][0]).upper()
        raise SettingsError(f"{name}: {first['msg']}") from None
