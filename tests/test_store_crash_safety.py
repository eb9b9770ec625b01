"""The repository's commit protocol under crashes: a snapshot readers resolve through, pending checks
recorded with the data, orphans of dead processes removed, space checked. Fast: no GX, tiny tables."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms.store import faults
from transforms.store.repository import Load, OutOfSpace, Partition, Repository, new_load_id

CHILDREN = Partition("cin_census", "children", "201", 2024)
EPISODES = Partition("cin_census", "episodes", "201", 2024)


@pytest.fixture(autouse=True)
def _disarmed():
    yield
    faults.disarm()


def _ledger_row(load_id: str, status: str = "loaded") -> dict:
    return {"load_id": load_id, "path": "/landing/201/cin.xml", "relpath": "201/cin.xml", "sha256": load_id,
            "bytes": 10, "format": "xml", "collection": "cin_census", "table": None, "tables": [],
            "dataset": None, "la_code": "201", "return_year": 2024, "year_source": "file",
            "received_at": "2026-11-29T12:00:00+00:00", "status": status, "rows_in": 2, "rows_loaded": 2,
            "rows_quarantined": 0, "gx_success": True, "reason": None, "duplicate_of": None, "replaces": [],
            "normalised": {}}


def _load(repo: Repository, children: int, episodes: int) -> str:
    """Commit one CIN return of ``children`` child rows and ``episodes`` episode rows (two partitions)."""
    load_id = new_load_id()
    staged = {}
    for partition, n in ((CHILDREN, children), (EPISODES, episodes)):
        table = pa.table({"child_id": [f"c{i}" for i in range(n)], "load_id": [load_id] * n})
        staged[partition] = repo.write_staged(table, repo.staging_dir(load_id) / "clean" / f"{partition.table}.parquet",
                                              load_id)
    with repo.writer_lock():
        repo.commit(load_id, staged, _ledger_row(load_id), None)
    return load_id


def _loads_seen(snapshot) -> dict[str, str]:
    """table -> load id of each partition's file, as a reader resolving the snapshot reads them."""
    return {rel.split("/")[1]: pq.read_table(path).column("load_id")[0].as_py()
            for rel, path in snapshot.partitions.items()}


def test_a_commit_becomes_visible_through_the_snapshot_as_a_whole(tmp_path):
    repo = Repository(tmp_path / "repo")
    first = _load(repo, 3, 5)
    assert _loads_seen(repo.snapshot()) == {"table=children": first, "table=episodes": first}
    second = _load(repo, 2, 4)
    assert _loads_seen(repo.snapshot()) == {"table=children": second, "table=episodes": second}
    assert repo.current_load(CHILDREN) == second      # the live tree follows


def test_a_reader_at_a_crash_inside_a_multi_table_swap_sees_the_old_return_whole(tmp_path):
    repo = Repository(tmp_path / "repo")
    first = _load(repo, 3, 5)
    faults.arm("commit.swap", action="raise")        # after children is swapped, before episodes
    with pytest.raises(faults.Killed):
        _load(repo, 2, 4)
    assert repo.current_load(CHILDREN) != repo.current_load(EPISODES)       # the live tree is mid-swap
    assert _loads_seen(repo.snapshot()) == {"table=children": first, "table=episodes": first}
    with repo.writer_lock():                          # the next writer finishes the commit
        pass
    seen = _loads_seen(repo.snapshot())
    assert seen["table=children"] == seen["table=episodes"] != first
    assert pq.read_table(repo.snapshot().partitions[str(CHILDREN.relative())]).num_rows == 2


def _staged_load(repo: Repository, partition: Partition, n: int) -> Load:
    load_id = new_load_id()
    table = pa.table({"child_id": [f"c{i}" for i in range(n)], "load_id": [load_id] * n})
    staged = repo.write_staged(table, repo.staging_dir(load_id) / "clean" / f"{partition.table}.parquet", load_id)
    return Load(load_id, {partition: staged}, _ledger_row(load_id))


def test_a_batch_of_loads_is_one_journal_entry_replayed_whole_after_a_crash(tmp_path):
    repo = Repository(tmp_path / "repo")
    first = _load(repo, 3, 5)
    batch = [_staged_load(repo, CHILDREN, 2), _staged_load(repo, EPISODES, 4)]
    faults.arm("commit.swap", action="raise")        # the first file's table swapped, the second's not
    with pytest.raises(faults.Killed):
        with repo.writer_lock():
            repo.commit_many(batch)
    assert [f.stem for f in repo.journal.glob("*.json")] == [batch[0].load_id]
    assert _loads_seen(repo.snapshot()) == {"table=children": first, "table=episodes": first}
    with repo.writer_lock():                          # the next writer finishes every load of the batch
        pass
    assert _loads_seen(repo.snapshot()) == {"table=children": batch[0].load_id, "table=episodes": batch[1].load_id}
    assert set(repo.ledger()["load_id"]) == {first, batch[0].load_id, batch[1].load_id}


def test_a_later_load_of_the_same_partition_in_a_batch_wins(tmp_path):
    repo = Repository(tmp_path / "repo")
    earlier, later = _staged_load(repo, CHILDREN, 2), _staged_load(repo, CHILDREN, 6)
    with repo.writer_lock():
        repo.commit_many([earlier, later])
    assert _loads_seen(repo.snapshot()) == {"table=children": later.load_id}
    assert pq.read_table(repo.partition_file(CHILDREN)).num_rows == 6
    assert list(repo.journal.iterdir()) == [] and not (repo.staging / earlier.load_id).exists()


def test_a_commit_records_its_return_and_the_next_year_as_pending_checks_in_the_same_journal(tmp_path):
    repo = Repository(tmp_path / "repo")
    faults.arm("commit.journaled", action="raise")
    with pytest.raises(faults.Killed):
        _load(repo, 1, 1)
    assert repo.pending_checks() == []                # nothing applied yet: nothing visible, nothing pending
    with repo.writer_lock():
        pass
    pending = {(p["collection"], p["la_code"], p["return_year"]) for p in repo.pending_checks()}
    assert pending == {("cin_census", "201", 2024), ("cin_census", "201", 2025)}


def test_a_pending_check_made_pending_again_during_the_check_stays_pending(tmp_path):
    repo = Repository(tmp_path / "repo")
    _load(repo, 1, 1)
    item = next(p for p in repo.pending_checks() if p["return_year"] == 2024)
    newer = _load(repo, 2, 2)                         # a resubmission lands while the rules run
    assert repo.clear_pending(item) is False
    assert next(p for p in repo.pending_checks() if p["return_year"] == 2024)["token"] == newer
    assert repo.clear_pending(next(p for p in repo.pending_checks() if p["return_year"] == 2024)) is True


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_writer_removes_what_a_dead_process_left_and_keeps_a_live_ones(tmp_path):
    repo = Repository(tmp_path / "repo")
    dead = _dead_pid()
    orphan = repo.staging / "20261129T000000.000001Z-dead01"
    (orphan / "raw").mkdir(parents=True)
    (orphan / ".owner").write_text(json.dumps({"pid": dead, "host": os.uname().nodename, "single_process": True}))
    (repo.root / ".locks").mkdir(exist_ok=True)
    (repo.root / ".locks" / f"{dead}.lock").write_text("")
    (repo.validations / orphan.name).mkdir()
    building = repo.root / f".csreturns.duckdb.building-{dead}"
    building.write_bytes(b"half")
    building.with_name(building.name + ".wal").write_bytes(b"wal")
    (repo.journal / "20261129T000000.000002Z-dead02.tmp").write_text("")
    mine = repo.staging_dir(new_load_id())            # this process is alive: its staging stays
    with repo.writer_lock():
        pass
    left = sorted(p.name for p in repo.root.rglob("*") if ".secrets" not in p.parts)
    assert orphan.exists() is False and (repo.validations / orphan.name).exists() is False
    assert not [n for n in left if "building" in n or n.endswith(".tmp") or n == f"{dead}.lock"]
    assert mine.is_dir()


def test_an_airflow_tasks_staging_outlives_its_process_for_the_grace_period(tmp_path):
    repo = Repository(tmp_path / "repo")
    handed_on = repo.staging / "20261129T000000.000003Z-task01"
    handed_on.mkdir(parents=True)
    (handed_on / ".owner").write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename,
                                                  "single_process": False}))
    assert handed_on not in repo.orphans()            # the validate task may not have started yet
    assert handed_on in repo.orphans(now=time.time() + 2 * 24 * 3600)


def test_superseded_versions_are_kept_while_a_pinned_catalogue_may_read_them(tmp_path):
    repo = Repository(tmp_path / "repo")
    _load(repo, 1, 1)
    first = repo.snapshot()
    with repo.writer_lock():
        repo.pin(first)
    _load(repo, 2, 2)
    _load(repo, 3, 3)
    with repo.writer_lock():
        repo.collect_garbage()
    assert all(p.exists() for p in first.partitions.values())         # the pinned catalogue's files
    objects = sorted(repo.objects.rglob("*.parquet"))
    assert len(objects) == 4                          # first (pinned) and third (current); second gone
    for _ in range(2):                                # two later catalogues: the first's files may go
        with repo.writer_lock():
            repo.pin(repo.snapshot())
        _load(repo, 1, 1)
    with repo.writer_lock():
        repo.collect_garbage()
    assert not any(p.exists() for p in first.partitions.values())


def test_a_repository_written_before_manifests_gets_one_from_its_live_tree(tmp_path):
    repo = Repository(tmp_path / "repo")
    load_id = new_load_id()
    target = repo.partition_file(CHILDREN)
    repo.write_staged(pa.table({"child_id": ["c1"], "load_id": [load_id]}), target, load_id)
    assert list(repo.snapshot().partitions) == [str(CHILDREN.relative())]      # read from the live tree
    with repo.writer_lock():
        pass
    snap = repo.snapshot()
    assert snap.seq == 0 and snap.partitions[str(CHILDREN.relative())].stem == load_id


def test_a_batch_without_room_is_refused_naming_the_repository(tmp_path):
    repo = Repository(tmp_path / "repo")
    with pytest.raises(OutOfSpace, match=f"not enough space in {repo.root} for a batch") as caught:
        repo.ensure_room(1 << 62, "a batch of 3 file(s)")
    assert "nothing of it was committed" in str(caught.value) and "run the same command again" in str(caught.value)


def test_a_ledger_file_another_writer_adds_is_seen_by_a_repository_object_that_listed_before(tmp_path, monkeypatch):
    """The ledger folder is listed again only when it changed (its mtime); a file another process commits
    later (another Airflow worker) is still seen."""
    import shutil as _shutil

    from transforms.store import repository
    from transforms.store.repository import LEDGER_SCHEMA

    monkeypatch.setattr(repository, "LEDGER_SETTLE_NS", 0)   # trust every listing: the mtime alone decides
    first = Repository(tmp_path / "repo")
    first.ledger_dir.mkdir(parents=True, exist_ok=True)
    assert first.loaded_copy_of("a" * 64) is None
    assert first.loaded_copy_of("a" * 64) is None      # listed once, remembered with the folder's mtime
    time.sleep(0.05)                                   # past the file system clock's tick
    writer = Repository(tmp_path / "repo")
    source = tmp_path / "one.parquet"
    row = {name: None for name in LEDGER_SCHEMA.names}
    row.update(load_id="20261130T000000.000000Z-aaaaaa", sha256="a" * 64, status="loaded", relpath="x.csv")
    pq.write_table(pa.Table.from_pylist([row], schema=LEDGER_SCHEMA), source)
    _shutil.copy(source, writer.ledger_dir / f"{row['load_id']}.parquet")
    assert first.loaded_copy_of("a" * 64) == row["load_id"]
