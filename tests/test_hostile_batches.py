"""Hostile but realistic input for the batch paths: validation of a batch's files as one Arrow table, the DfE
rules as received in a kept read worker, the pseudonymiser's tokens, and the repository ledger's cached listing."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES, need, put

from transforms.ingest import stages
from transforms.ingest.landing import discover
from transforms.ingest.stages import read_batch
from transforms.store.repository import Repository


def pending_verdicts(repo_root):
    """The DfE rules' verdicts awaiting the load, per return, without the load ids (new per ingest)."""
    out = {}
    for path in sorted((repo_root / "rule_pending").rglob("*.parquet")):
        rows = pq.read_table(path).drop_columns(["load_id", "run_id"]).to_pylist()
        out[str(path.relative_to(repo_root))] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


@pytest.fixture
def returns_903(tmp_path, monkeypatch):
    """Two councils' SSDA903 header and episodes (the samples break DfE rules), read by workers if asked."""
    landing = tmp_path / "landing"
    for la in ("301", "302"):
        for name in ("header", "episodes"):
            put(landing, f"{la}/ssda903/year=2024/{name}.csv", need(SAMPLES / "ssda903" / f"{name}.csv"))
    monkeypatch.setattr(stages, "PARALLEL_MIN_BYTES", 0)
    return discover(landing)


def test_rules_in_a_kept_worker_pseudonymise_with_the_key_the_validating_process_has_now(returns_903, tmp_path,
                                                                                        monkeypatch):
    """The read workers (and their fork server) keep the environment of when they started: a key set or
    changed since (a test's monkeypatch, a process ingesting for two deployments) must still be the one the
    rules' verdicts are pseudonymised with, or their child ids match no loaded row."""
    results = {}
    for name, workers in (("in_process", 1), ("worker", 2)):
        stages._drop_read_pool()
        monkeypatch.setenv("CSRETURNS_PSEUDONYM_KEY", "the-key-this-process-started-with")
        repo = Repository(tmp_path / name)
        files = read_batch(repo, returns_903, workers=workers)     # the workers start with that key
        monkeypatch.setenv("CSRETURNS_PSEUDONYM_KEY", "a-key-set-after-the-workers-started")
        stages.validate_batch(repo, files)
        results[name] = pending_verdicts(tmp_path / name)
    stages._drop_read_pool()
    assert any(r["child_id"] for rows in results["worker"].values() for r in rows)
    assert results["worker"] == results["in_process"]
