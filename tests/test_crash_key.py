"""The pseudonymisation key file: made atomically, one key for concurrent first ingests, a broken file
reported with its path and repaired only when nothing was pseudonymised with it."""
from __future__ import annotations

import multiprocessing

import pytest

from transforms.ingest.privacy import KeyFileError, key_path, repair_key, repository_key


def _first_use(repo: str, start, out) -> None:
    start.wait()
    out.put(repository_key(repo).decode())


def test_concurrent_first_uses_all_succeed_with_one_key(tmp_path):
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_first_use, args=(str(tmp_path), start, out)) for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 6
    keys = {out.get(timeout=5) for _ in procs}
    assert keys == {key_path(tmp_path).read_text()} and len(keys.pop()) == 64
    assert oct(key_path(tmp_path).stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in key_path(tmp_path).parent.iterdir()] == ["pseudonym.key"]   # no temp file left


def test_an_empty_key_file_is_reported_with_its_path_and_the_remedy(tmp_path):
    key_path(tmp_path).parent.mkdir(parents=True)
    key_path(tmp_path).write_text("")
    with pytest.raises(KeyFileError) as caught:
        repository_key(tmp_path)
    message = str(caught.value)
    assert str(key_path(tmp_path)) in message and "empty" in message
    assert f"csreturns doctor --repo {tmp_path} --fix" in message and "backup" in message


def test_a_broken_key_is_replaced_only_if_nothing_was_pseudonymised_with_it(tmp_path):
    key_path(tmp_path).parent.mkdir(parents=True)
    key_path(tmp_path).write_text("abc")
    with pytest.raises(KeyFileError, match="refused to replace .* restore the key file from your backup"
                       .replace("restore", "Restore")):
        repair_key(tmp_path, pseudonymised=True)
    assert key_path(tmp_path).read_text() == "abc"
    repair_key(tmp_path, pseudonymised=False)
    assert len(repository_key(tmp_path)) == 64
