"""``validation_errors`` belongs to each return's current loads, whatever a kill interrupted: a return
resubmitted but not yet checked shows no errors of the replaced load, and its check is made by the next
refresh from the pending record."""
from __future__ import annotations

import duckdb
import pytest
from conftest import SAMPLES, need, put

from transforms.catalogue.build import build, publish
from transforms.ingest.rules import check_return, latest_load
from transforms.run import ingest
from transforms.store import faults
from transforms.store.repository import Repository

pytestmark = pytest.mark.slow


def _sample(name: str, lines: int) -> str:
    return "".join(need(SAMPLES / "ssda903" / name).read_text().splitlines(keepends=True)[:lines])


def _errors(catalogue) -> set[tuple]:
    with duckdb.connect(str(catalogue), read_only=True) as con:
        return set(con.execute("SELECT la_code, return_year, load_id FROM validation_errors").fetchall())


def test_a_resubmission_killed_before_its_rules_never_shows_the_replaced_loads_errors(landing, repo_root, tmp_path):
    put(landing, "301/ssda903/year=2018/header.csv", _sample("header.csv", 80))
    put(landing, "301/ssda903/year=2018/episodes.csv", _sample("episodes.csv", 80))
    ingest(landing, repo_root)
    before = _errors(repo_root / "csreturns.duckdb")
    assert before, "the sample return fails some DfE rules"
    put(landing, "301/ssda903/year=2018/episodes.csv", _sample("episodes.csv", 60))    # resubmitted
    faults.arm("rules.check", action="raise")
    try:
        with pytest.raises(faults.Killed):
            ingest(landing, repo_root)
    finally:
        faults.disarm()
    repo = Repository(repo_root)
    assert [(p["collection"], p["la_code"], p["return_year"]) for p in repo.pending_checks()][:1] == [
        ("ssda903", "301", 2018)]
    at_crash = tmp_path / "at_crash.duckdb"
    build(repo, at_crash)                  # a catalogue built over the repository as the kill left it
    assert _errors(at_crash) == set()      # pending: no errors rather than the replaced load's
    publish(repo)                          # the next refresh makes the check the kill lost
    after = _errors(repo_root / "csreturns.duckdb")
    current = latest_load(repo, "ssda903", "301", 2018)
    assert after and current in {load for _, _, load in after} and after != before
    assert repo.pending_checks() == []


def test_a_recheck_of_the_same_loads_shows_in_the_catalogue_without_a_refresh(landing, repo_root):
    put(landing, "301/ssda903/year=2018/header.csv", _sample("header.csv", 80))
    put(landing, "301/ssda903/year=2018/episodes.csv", _sample("episodes.csv", 80))
    ingest(landing, repo_root)
    before = _errors(repo_root / "csreturns.duckdb")
    repo = Repository(repo_root)
    check_return(repo, "ssda903", "301", 2018, latest_load(repo, "ssda903", "301", 2018))
    assert _errors(repo_root / "csreturns.duckdb") == before
