"""``csreturns doctor``: what a repository left by a kill holds, and --fix repairing what is safe."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest

from transforms.cli import main
from transforms.ingest.privacy import key_path
from transforms.store import faults
from transforms.store.repository import Partition, Repository, new_load_id


def _commit_sen2(repo: Repository, killed_at: str | None = None) -> str:
    """A SEN2 return (a collection without DfE rules) committed, or killed at a fault point."""
    load_id = new_load_id()
    part = Partition("sen2", "person", "201", 2025)
    staged = repo.write_staged(pa.table({"person_id": ["p1"], "load_id": [load_id]}),
                               repo.staging_dir(load_id) / "clean" / "person.parquet", load_id)
    row = {"load_id": load_id, "path": "/l/201/sen2.xml", "relpath": "201/sen2.xml", "sha256": load_id,
           "bytes": 1, "format": "xml", "collection": "sen2", "table": None, "tables": [], "dataset": None,
           "la_code": "201", "return_year": 2025, "year_source": "file", "received_at": "2026-01-01T00:00:00+00:00",
           "status": "loaded", "rows_in": 1, "rows_loaded": 1, "rows_quarantined": 0, "gx_success": True,
           "reason": None, "duplicate_of": None, "replaces": [], "normalised": {}}
    if killed_at:
        faults.arm(killed_at, action="raise")
    try:
        with repo.writer_lock():
            repo.commit(load_id, {part: staged}, row, None)
    finally:
        faults.disarm()
    return load_id


def _orphan_of_a_dead_process(repo: Repository) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    orphan = repo.staging / "20261129T000000.000001Z-dead01"
    orphan.mkdir()
    (orphan / ".owner").write_text(json.dumps({"pid": proc.pid, "host": __import__("socket").gethostname(),
                                               "single_process": True}))


def test_doctor_reports_journal_pending_checks_orphans_key_and_space(tmp_path, capsys):
    repo = Repository(tmp_path / "repo")
    with pytest.raises(faults.Killed):
        _commit_sen2(repo, killed_at="commit.manifest")
    _orphan_of_a_dead_process(repo)
    assert main(["doctor", "--repo", str(repo.root)]) == 1
    out = capsys.readouterr().out
    assert "commits in the journal: 1" in out
    assert "left by dead processes: 1" in out and "staging/20261129T000000.000001Z-dead01" in out
    assert "pseudonymisation key: from CSRETURNS_PSEUDONYM_KEY" in out and "free space:" in out
    assert "--fix" in out


def test_doctor_fix_finishes_the_commit_clears_checks_and_orphans(tmp_path, capsys):
    repo = Repository(tmp_path / "repo")
    with pytest.raises(faults.Killed):
        _commit_sen2(repo, killed_at="commit.manifest")
    _orphan_of_a_dead_process(repo)
    assert main(["doctor", "--repo", str(repo.root), "--fix"]) == 0
    out = capsys.readouterr().out
    assert "fixed: finished 1 commit(s) left in the journal" in out
    assert "DfE checks pending: 0" in out and "left by dead processes: 0" in out
    assert "snapshot: commit 1, 1 partition(s), live tree agrees" in out
    assert len(repo.ledger()) == 1


def test_doctor_fix_replaces_an_empty_key_only_in_a_repository_without_pseudonymised_data(tmp_path, capsys,
                                                                                          monkeypatch):
    monkeypatch.delenv("CSRETURNS_PSEUDONYM_KEY")
    repo = Repository(tmp_path / "repo")
    key_path(repo.root).parent.mkdir()
    key_path(repo.root).write_text("")
    assert main(["doctor", "--repo", str(repo.root)]) == 1
    assert f"the pseudonymisation key {key_path(repo.root)} is empty" in capsys.readouterr().out
    assert main(["doctor", "--repo", str(repo.root), "--fix"]) == 0
    assert "fixed: pseudonymisation key: replaced" in capsys.readouterr().out
    assert len(key_path(repo.root).read_text()) == 64


def test_doctor_refuses_to_replace_a_key_that_pseudonymised_data(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CSRETURNS_PSEUDONYM_KEY")
    repo = Repository(tmp_path / "repo")
    _commit_sen2(repo)
    key_path(repo.root).parent.mkdir()
    key_path(repo.root).write_text("short")
    assert main(["doctor", "--repo", str(repo.root), "--fix"]) == 1
    out = capsys.readouterr().out
    assert "not fixed: refused to replace" in out and "Restore the key file from your backup" in out
    assert key_path(repo.root).read_text() == "short"
