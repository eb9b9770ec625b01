"""A full disk: a batch without room is refused before it starts, and running out midway ends in one
clear line naming the repository and what was and was not committed, never a traceback. The real-disk
tests mount a small tmpfs (they skip, saying why, where mounting is not allowed)."""
from __future__ import annotations

import subprocess
import uuid

import pytest
from conftest import put

from transforms import run
from transforms.cli import main
from transforms.store import faults
from transforms.store.repository import Repository

HEADER = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n"


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs mounted for the test (root only)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _landing(landing, councils=("301",), rows=3):
    for la in councils:
        body = "".join(f"{la}C{i},1,01/05/2012,WBRI,,,\n" for i in range(rows))
        put(landing, f"{la}/year=2024/header.csv", HEADER + body)


def test_a_batch_is_refused_before_it_starts_when_the_disk_has_no_room(landing, small_disk, capsys):
    _landing(landing)
    repo_root = small_disk / "repo"
    assert main(["ingest", str(landing), "--repo", str(repo_root), "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"not enough space in {repo_root} for a batch of 1 file(s)" in err[0]
    assert "0 of 1 file(s) committed, 1 not committed" in err[0]
    assert len(Repository(repo_root).ledger()) == 0


def test_running_out_midway_names_the_repository_and_what_was_committed(landing, small_disk, monkeypatch, capsys):
    """Past the estimate (set to nothing here), the disk fills up while the batch's second clean table is
    staged: one line naming the repository and the path, nothing committed, and the next run lands both."""
    _landing(landing, councils=("301", "302"), rows=3)
    monkeypatch.setattr(run, "ROOM_PER_LANDED_BYTE", 0)
    monkeypatch.setattr(run, "ROOM_MARGIN", 0)
    repo_root = small_disk / "repo"
    Repository(repo_root)
    faults.arm("stage.write", after=2, action="enospc")      # the disk is full at the second staged table
    try:
        code = main(["ingest", str(landing), "--repo", str(repo_root), "--quiet"])
    finally:
        faults.disarm()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    assert f"out of disk space in the repository {repo_root.resolve()}" in err[0]
    assert "staging" in err[0] and "0 of 2 file(s) committed, 2 not committed" in err[0]
    assert "run the same command again" in err[0]
    assert main(["ingest", str(landing), "--repo", str(repo_root), "--quiet"]) == 0
    assert sorted(Repository(repo_root).ledger()["la_code"]) == ["301", "302"]


def test_a_real_enospc_while_staging_is_one_clear_line(landing, small_disk, monkeypatch, capsys):
    _landing(landing, councils=("301",), rows=3)
    monkeypatch.setattr(run, "ROOM_PER_LANDED_BYTE", 0)
    monkeypatch.setattr(run, "ROOM_MARGIN", 0)
    repo_root = small_disk / "repo"
    Repository(repo_root)
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:                           # fill the disk to the last block
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    code = main(["ingest", str(landing), "--repo", str(repo_root), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    assert f"out of disk space in the repository {repo_root.resolve()}" in err[0]
    assert "0 of 1 file(s) committed, 1 not committed" in err[0]
    filler.unlink()
    assert main(["ingest", str(landing), "--repo", str(repo_root), "--quiet"]) == 0   # room again: it lands
    assert len(Repository(repo_root).ledger()) == 1
