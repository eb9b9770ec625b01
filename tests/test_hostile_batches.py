"""Hostile but realistic input for the batch paths: validation of a batch's files as one Arrow table, the DfE
rules as received in a kept read worker, the pseudonymiser's tokens, and the repository ledger's cached listing."""
from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import SAMPLES, need, pending_verdicts, put

from transforms.ingest import stages
from transforms.ingest.landing import discover
from transforms.ingest.stages import read_batch
from transforms.store.repository import Repository


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


def _kill_workers(pool) -> None:
    """SIGKILL every worker process of a ProcessPoolExecutor (the OOM killer's way) and wait for them to go."""
    import os
    import signal
    import time

    pids = list(pool._processes)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.is_alive() for p in pool._processes.values()):
        time.sleep(0.05)


@pytest.mark.parametrize("when, settle", [("before_rules", 0.0), ("after_rules", 0.0), ("after_rules", 1.0)])
def test_read_workers_killed_between_batches_cost_neither_batch(returns_903, tmp_path, when, settle):
    """Kept workers killed while idle, before the batch's rules are handed over or after its validation:
    the rules still find what they find in-process, and the next batch reads with new workers (the pool
    found broken, or breaking under the next read before it noticed) instead of failing, counted once."""
    import time

    stages._drop_read_pool()
    ref = Repository(tmp_path / "in_process")
    expected = read_batch(ref, returns_903, workers=1)
    read_as = [(f.rows_in, f.normalised, sorted(f.raw)) for f in expected]
    stages.validate_batch(ref, expected)
    repo = Repository(tmp_path / "killed")
    files = read_batch(repo, returns_903, workers=2)
    if when == "before_rules":
        _kill_workers(stages._kept_pool())
    stages.validate_batch(repo, files)
    if when == "after_rules":
        _kill_workers(stages._kept_pool())
    time.sleep(settle)                 # the pool may or may not have noticed yet
    assert pending_verdicts(tmp_path / "killed") == pending_verdicts(tmp_path / "in_process")
    again = Repository(tmp_path / "next")
    files = read_batch(again, returns_903, workers=2)
    assert [(f.rows_in, f.normalised, sorted(f.raw)) for f in files] == read_as and all(not f.problem for f in files)
    stages.validate_batch(again, files)
    stages._drop_read_pool()
    assert pending_verdicts(tmp_path / "next") == pending_verdicts(tmp_path / "in_process")


def test_rules_worker_killed_while_checking_leaves_the_same_verdicts(returns_903, tmp_path, caplog):
    """The worker running the rules is SIGKILLed as soon as the rules are handed to it: the validating
    process checks the returns itself (same verdicts), logs only the kind of failure, and the next batch
    reads with new workers."""
    import logging
    import threading
    import time

    stages._drop_read_pool()
    ref = Repository(tmp_path / "in_process")
    stages.validate_batch(ref, read_batch(ref, returns_903, workers=1))
    caplog.set_level(logging.INFO)
    repo = Repository(tmp_path / "killed")
    files = read_batch(repo, returns_903, workers=2)
    pool = stages._kept_pool()
    stop = threading.Event()

    def killer():
        while not stop.is_set():
            if pool._pending_work_items:          # the rules were submitted: kill the workers mid-run
                _kill_workers(pool)
                return
            time.sleep(0.001)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        stages.validate_batch(repo, files)
    finally:
        stop.set()
        thread.join()
    assert "DfE rules' worker process failed (BrokenProcessPool)" in caplog.text
    assert "DfE rules on ssda903 301 2024 as received" in caplog.text
    raw_ids = {r.split(",")[0] for r in (SAMPLES / "ssda903" / "header.csv").read_text().splitlines()[1:]}
    assert not raw_ids & set(re.findall(r"\b\w+\b", caplog.text))     # no raw child id in any log line
    assert pending_verdicts(tmp_path / "killed") == pending_verdicts(tmp_path / "in_process")
    again = Repository(tmp_path / "next")
    assert all(f.raw and not f.problem for f in read_batch(again, returns_903, workers=2))
    stages._drop_read_pool()


@settings(max_examples=150, deadline=None)
@given(key=st.binary(min_size=16, max_size=200),
       values=st.lists(st.one_of(st.text(max_size=30), st.integers(-10**12, 10**12)), min_size=1, max_size=8),
       scopes=st.lists(st.sampled_from(["", "301", "302", "E09000002", "3|0", "é"]), min_size=1, max_size=3))
def test_vectorised_tokens_are_hmac_new_for_any_key_value_and_scope(key, values, scopes):
    """``tokens`` and ``tokens_arrow`` (one memo per scope, kept across calls) give what the code before
    gave, ``hmac.new(key, f"{scope}|{value}")``, for keys shorter, as long as and longer than a SHA-256
    block, ids as text or numbers, and the same id in several scopes in one object's life."""
    import hashlib
    import hmac

    import pandas as pd
    import pyarrow as pa

    from transforms.ingest.privacy import TOKEN_HEX, Pseudonymiser

    def reference(value, scope):
        return hmac.new(key, f"{scope}|{value}".encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX]

    p = Pseudonymiser(key)
    texts = [str(v) for v in values]
    for scope in scopes:
        expected = [reference(v, scope) for v in texts]
        assert p.tokens(pd.Series(values, dtype=object), scope).tolist() == expected
        assert p.tokens_arrow(pa.array(texts + [None]), scope).to_pylist() == expected + [None]
        assert [p.token(v, scope) for v in texts] == expected


def test_the_same_child_in_two_councils_gets_two_tokens_and_nationally_a_third():
    from transforms.ingest.privacy import Pseudonymiser

    p = Pseudonymiser(b"k" * 40)
    one, two, national = (p.tokens_arrow(pa_array(["A1", "A1"]), scope).to_pylist() for scope in ("301", "302", ""))
    assert one[0] == one[1] and len({one[0], two[0], national[0]}) == 3
    assert p.tokens_arrow(pa_array(["A1"]), "301").to_pylist() == [one[0]]   # the memo keeps scopes apart


def pa_array(values):
    import pyarrow as pa

    return pa.array(values, pa.string())


def _ledger_of(repo_root) -> list[tuple]:
    """(relpath, sha256, status, duplicate_of is set) of every ledger row, read from the ledger files."""
    import pyarrow as pa

    rows = pa.concat_tables([pq.read_table(p) for p in sorted((repo_root / "ledger").glob("*.parquet"))],
                            promote_options="permissive").to_pylist()
    return sorted((r["relpath"], r["sha256"], r["status"], r["duplicate_of"] is not None) for r in rows)


def test_two_processes_ingesting_the_same_file_into_one_repository_load_it_once(tmp_path):
    """Two command-line ingests at once into one repository, each landing area holding the same file (and
    one of its own): whichever commits second sees the first's ledger row under the writer lock (the
    ledger folder's listing is cached by its mtime) and records a duplicate."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    for side, own in (("a", "302"), ("b", "303")):
        put(tmp_path / side, "301/ssda903/year=2024/episodes.csv", need(SAMPLES / "ssda903" / "episodes.csv"))
        put(tmp_path / side, f"{own}/ssda903/year=2024/header.csv", SAMPLES / "ssda903" / "header.csv")
    repo = tmp_path / "repo"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-m", "transforms.cli", "ingest", str(tmp_path / side), "--repo",
                              str(repo), "--quiet"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for side in ("a", "b")]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err.decode()[-2000:]
    ledger = _ledger_of(repo)
    shared = [r for r in ledger if r[0] == "301/ssda903/year=2024/episodes.csv"]
    assert sorted(r[2] for r in shared) == ["duplicate", "loaded"] and [r[3] for r in shared if r[2] == "duplicate"] == [True]
    headers = [r for r in ledger if r[0].endswith("header.csv")]
    # the two header files have the same bytes too: whichever came second is a duplicate of the first
    assert sorted(r[2] for r in headers) == ["duplicate", "loaded"]


def test_a_file_resubmitted_right_after_its_load_is_a_duplicate(tmp_path):
    """The same bytes landed again within the ledger's settle window, by the same Repository object and by
    another one that listed the ledger before the load (a second process's view)."""
    from transforms.run import ingest_batch

    landing = tmp_path / "landing"
    first = put(landing, "301/ssda903/year=2024/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    again = put(landing, "301/ssda903/year=2024/header_resent.csv", first)
    other = Repository(tmp_path / "repo")
    assert other.seen() == set()                     # listed (empty) before anything is loaded
    repo = Repository(tmp_path / "repo")
    arrivals = {a.relpath: a for a in discover(landing)}
    assert ingest_batch(repo, [arrivals[first.relative_to(landing).as_posix()]])[0]["status"] == "loaded"
    for who in (repo, other):
        row = ingest_batch(who, [arrivals[again.relative_to(landing).as_posix()]])[0]
        assert row["status"] == "duplicate" and row["duplicate_of"]


def test_a_kept_pool_shut_down_under_the_rules_leaves_the_rules_in_process_and_the_next_read_new_workers(
        returns_903, tmp_path, caplog):
    """The kept pool shut down between the read and the rules' hand-over (as a failed read on another thread
    does): the rules run here with the same verdicts, and the next batch does not read through the dead pool."""
    stages._drop_read_pool()
    ref = Repository(tmp_path / "in_process")
    stages.validate_batch(ref, read_batch(ref, returns_903, workers=1))
    repo = Repository(tmp_path / "shut")
    files = read_batch(repo, returns_903, workers=2)
    stages._kept_pool().shutdown(wait=True)
    stages.validate_batch(repo, files)
    assert pending_verdicts(tmp_path / "shut") == pending_verdicts(tmp_path / "in_process")
    assert stages._kept_pool() is None
    assert all(f.raw and not f.problem for f in read_batch(Repository(tmp_path / "next"), returns_903, workers=2))
    stages._drop_read_pool()


def test_one_tables_files_with_other_columns_orders_and_empty_columns_validate_as_one_batch(tmp_path):
    """Files of one table in one batch (one Arrow table, ``promote_options="permissive"``): columns missing
    or in another order, header names in another case with spaces, a column empty in every row (null type
    once staged) or of spaces only, a file whose every row fails, and a file rejected unread."""
    import duckdb

    from transforms.run import ingest

    landing = tmp_path / "landing"
    head = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n"
    put(landing, "301/ssda903/year=2024/header.csv", head + "A1,1,01/02/2010,WBRI,,,\nA2,2,03/04/2011,WBRI,,,\n")
    put(landing, "302/ssda903/year=2024/header.csv", "ETHNIC,CHILD,DOB,SEX,UPN\nWBRI,B1,01/02/2010,1,\nwbri,B2,01/02/2010,2,\n")
    put(landing, "303/ssda903/year=2024/header.csv",
        " child ,Sex,DOB,ETHNIC,UPN,MOTHER,MC_DOB\nC1,1,01/02/2010,WBRI,  ,,\nC2,2,01/02/2010,WBRI,   ,,\n")
    put(landing, "304/ssda903/year=2024/header.csv", head + "D1,9,99/99/9999,ZZZZ,,,\nD2,9,31/02/2010,ZZZZ,,,\n")
    put(landing, "305/ssda903/year=2024/header.csv", b"\x00\xff\xfe not a return\x00")
    put(landing, "306/ssda903/year=2024/header.csv", head + "E1,1,01/02/2010,WBRI,,,\nE2,1,   ,WBRI,,,\n")
    rows = {r["relpath"].split("/")[0]: r for r in ingest(landing, tmp_path / "repo")}
    assert {la: (r["status"], r["rows_in"], r["rows_loaded"], r["rows_quarantined"]) for la, r in rows.items()} == {
        "301": ("loaded", 2, 2, 0), "302": ("loaded", 2, 2, 0), "303": ("loaded", 2, 2, 0),
        "304": ("rejected", 2, 0, 2), "305": ("rejected", 1, 0, 1), "306": ("partly_loaded", 2, 1, 1)}
    assert rows["304"]["reason"] == "every row failed validation"
    with duckdb.connect(str(tmp_path / "repo" / "csreturns.duckdb"), read_only=True) as con:
        loaded = con.sql("SELECT la_code, source_row, sex, dob, ethnic, upn, mother, mc_dob FROM ssda903_header "
                         "ORDER BY la_code, source_row").fetchall()
        quarantined = con.sql("SELECT la_code, source_row, field FROM quarantine WHERE source_row IS NOT NULL "
                              "ORDER BY la_code, source_row").fetchall()
    from datetime import date
    assert [r[:2] for r in loaded] == [("301", 2), ("301", 3), ("302", 2), ("302", 3), ("303", 2), ("303", 3), ("306", 2)]
    assert {r[4] for r in loaded} == {"WBRI"} and {r[5:] for r in loaded} == {(None, None, None)}
    assert {r[3] for r in loaded} == {date(2010, 2, 1), date(2011, 4, 1)}      # dates of birth to the month
    assert quarantined == [("304", 2, "SEX, DOB, ETHNIC"), ("304", 3, "SEX, DOB, ETHNIC"), ("306", 3, "DOB")]


def test_a_settled_cached_ledger_listing_still_sees_another_repository_objects_load(tmp_path):
    """One Repository lists the ledger well after its last change (a listing it then trusts while the
    folder's mtime stays); another loads a file; the first must see that load (a copy is a duplicate)."""
    import time

    from transforms.run import ingest_batch

    landing = tmp_path / "landing"
    put(landing, "301/ssda903/year=2024/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    put(landing, "301/ssda903/year=2024/episodes.csv", SAMPLES / "ssda903" / "episodes.csv")
    put(landing, "302/ssda903/year=2024/episodes_again.csv", SAMPLES / "ssda903" / "episodes.csv")
    arrivals = {a.relpath.split("/")[-1]: a for a in discover(landing)}
    writer, watcher = Repository(tmp_path / "repo"), Repository(tmp_path / "repo")
    assert ingest_batch(writer, [arrivals["header.csv"]])[0]["status"] == "loaded"
    time.sleep(1.2)                              # past the settle window: the next listing is cached by mtime
    assert len(watcher.seen()) == 1 and watcher._ledger_state["mtime"] is not None
    assert ingest_batch(writer, [arrivals["episodes.csv"]])[0]["status"] == "loaded"
    assert len(watcher.seen()) == 2
    row = ingest_batch(watcher, [arrivals["episodes_again.csv"]])[0]
    assert row["status"] == "duplicate" and row["duplicate_of"]


def _cin_variant(la: str, edit) -> str:
    text = (SAMPLES / "cin_census" / "CIN_Census_2024.xml").read_text(encoding="utf-8")
    return edit(text.replace("<LEA>201</LEA>", f"<LEA>{la}</LEA>"))


def test_cin_returns_with_comments_cdata_prefixes_and_an_element_absent_from_one_file_validate_as_one_batch(tmp_path):
    """The rewritten XML walk on councils' CIN returns read as one batch: comments and processing
    instructions among a child's elements, CDATA and padded texts, a namespace prefix and attributes on
    elements, a repeated single-valued element, an element absent from every record of one file (a column
    of no values, null-typed, beside the other files' text) and an undeclared element holding a declared one."""
    import re as regex

    import duckdb

    from transforms.run import ingest

    need(SAMPLES / "cin_census" / "CIN_Census_2024.xml")
    landing = tmp_path / "landing"
    put(landing, "201/cin/year=2024/CIN_201.xml", _cin_variant("201", lambda t: t
        .replace("<LAchildID>", "<!-- note --><?pi x?><LAchildID>", 3)
        .replace("<Sex>1</Sex>", "<Sex><![CDATA[1]]></Sex>", 2)
        .replace("<Ethnicity>WBRI</Ethnicity>", "<Ethnicity>\n   WBRI  \n</Ethnicity>", 2)
        .replace("<FormerUPN>X98765432123B</FormerUPN>", "<FormerUPN/>", 1)
        .replace("<ReferralSource>1A</ReferralSource>", "<ReferralSource>1A<!-- c -->B</ReferralSource>", 1)))
    put(landing, "202/cin/year=2024/CIN_202.xml", _cin_variant("202", lambda t: t
        .replace("<Message>", '<Message xmlns="http://www.dcsf.gov.uk/" xmlns:x="urn:x">', 1)
        .replace("<UPN>A123456789123</UPN>", '<x:Foo a="1">z</x:Foo><UPN  attr="q">A123456789123</UPN>', 2)
        .replace("<PrimaryNeedCode>N4</PrimaryNeedCode>",
                 "<PrimaryNeedCode>N4</PrimaryNeedCode><PrimaryNeedCode>N5</PrimaryNeedCode>", 1)))
    put(landing, "203/cin/year=2024/CIN_203.xml", _cin_variant("203", lambda t: regex.sub(
        r"\s*<(UPNunknown|CINPlanEndDate)>[^<]*</\1>", "", t)
        .replace("<Disabilities>", "<Unknown><Disability>ZZZ</Disability></Unknown><Disabilities>", 1)))
    rows = {r["relpath"].split("/")[0]: r for r in ingest(landing, tmp_path / "repo")}
    assert {la: (r["status"], r["rows_in"], r["rows_loaded"], r["rows_quarantined"]) for la, r in rows.items()} == {
        "201": ("partly_loaded", 16, 14, 2), "202": ("partly_loaded", 16, 15, 1), "203": ("partly_loaded", 16, 15, 1)}
    with duckdb.connect(str(tmp_path / "repo" / "csreturns.duckdb"), read_only=True) as con:
        def q(query):
            return con.sql(query).fetchall()
        assert q("SELECT la_code, ethnicity, sex, upn_unknown IS NULL FROM cin_children ORDER BY 1") == [
            ("201", "WBRI", "1", False), ("202", "WBRI", "1", False), ("203", "WBRI", "1", True)]
        assert q("SELECT la_code, count(*), count(end_date) FROM cin_plans GROUP BY 1 ORDER BY 1")[2][2] == 0
        assert q("SELECT la_code, count(*) FROM cin_disabilities GROUP BY 1 ORDER BY 1") == [
            ("201", 3), ("202", 3), ("203", 3)]
        assert q("SELECT la_code, field FROM quarantine ORDER BY la_code, source_row") == [
            ("201", "ReferralSource"), ("201", "Sex"), ("202", "Sex"), ("203", "Sex")]


def test_a_published_file_with_columns_reordered_blank_and_spaces_only_loads_its_values(tmp_path):
    """Published statistics (their clean rows go back to pandas for reshaping): columns in reverse order,
    a column blank in every row, one of spaces only and a trailing unnamed empty column."""
    import csv
    import io

    import duckdb
    from conftest import EES

    from transforms.run import ingest

    source = need(EES / "cla_number_and_rate_per_10k_children.csv").read_text(encoding="utf-8-sig").splitlines()
    rows = list(csv.reader(source))
    head = rows[0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(reversed(head)) + [""])
    for r in rows[1:200]:
        r = list(r)
        r[head.index("region_name")], r[head.index("la_name")] = "", "   "
        writer.writerow(list(reversed(r)) + [""])
    put(tmp_path / "landing", "published/cla_number_and_rate_per_10k_children.csv", out.getvalue())
    [row] = ingest(tmp_path / "landing", tmp_path / "repo")
    assert (row["status"], row["rows_in"], row["rows_loaded"], row["rows_quarantined"]) == ("loaded", 199, 199, 0)
    with duckdb.connect(str(tmp_path / "repo" / "csreturns.duckdb"), read_only=True) as con:
        got = con.sql("SELECT source_row, value, value_symbol, region_name FROM published_statistics "
                      "WHERE measure = 'children_count' ORDER BY source_row").fetchall()
    counts = [r[head.index("children_count")] for r in rows[1:200]]
    assert [g[0] for g in got] == list(range(2, 201))
    assert [g[1] if g[1] is not None else g[2] for g in got] == [
        float(c) if c.replace(".", "").isdigit() else c for c in counts]
    assert {g[3] for g in got} == {None}
