"""Resuming the stages after a commit: the DfE rule checks a kill (or a failed rule) left pending.

Every commit records, in the same journal entry as its data, which returns it changed
(``Repository.pending_checks``: the return and the following year's, whose rules read it as last year's).
The batch's own checks run as before (``rules.check_returns``); ``run_pending`` then goes through the
record: a return already checked on its current loads since the commit (the usual case) is simply
cleared, any other is checked through the rules' own entry point (``rules.check_return``, which uses the
verdicts staged as received when there are some). The command line's ingest runs it after each batch and
before its first, ``publish`` (refresh) before building the catalogue, and the Airflow ``check_rules`` task
after ``check_returns``, so a check lost to a kill is made by the next ingest or refresh, and
``csreturns doctor`` lists what is still pending.
"""
from __future__ import annotations

import logging

import pyarrow.parquet as pq

from transforms import schema
from transforms.ingest import rules
from transforms.store import faults
from transforms.store.repository import Partition, Repository

log = logging.getLogger(__name__)


def run_pending(repo: Repository) -> list[dict]:
    """Check every pending return not yet checked on its current data; returns the rule-run rows
    (``rules.check_return``) of the checks it made. A return without rules or without data any more is
    cleared without a check. A rule that fails (``RuleError``) propagates and leaves its return pending."""
    done = []
    for item in repo.pending_checks():
        collection, la_code, year = item["collection"], item["la_code"], int(item["return_year"])
        load_id = rules.latest_load(repo, collection, la_code, year) if rules.rules(collection) else None
        if load_id is not None and not _checked_since(repo, item, load_id):
            faults.point("rules.check")
            done.append(rules.check_return(repo, collection, la_code, year, load_id))
            faults.point("rules.checked")
        if not repo.clear_pending(item):
            log.info("rules %s %s %s: changed again while checked; still pending", collection, la_code, year)
    return done


def _checked_since(repo: Repository, item: dict, load_id: str) -> bool:
    """Whether the return's latest check (``rule_runs/<load_id>.parquet``) started after the commit that
    made it pending (run ids and load ids sort by time) and saw exactly the loads it holds now."""
    path = repo.root / rules.RUNS_DIR / f"{load_id}.parquet"
    if not path.exists():
        return False
    run = pq.read_table(path).to_pylist()[0]
    coll = schema.collection(item["collection"])
    current = sorted({x for n in coll.table_names if (x := repo.current_load(
        Partition(item["collection"], n, item["la_code"], int(item["return_year"]))))})
    return run["run_id"] > item["token"] and sorted(run["loads"] or []) == current
