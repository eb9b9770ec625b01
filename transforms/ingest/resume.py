"""Resuming the stages after a commit: the DfE rule checks a kill (or a failed rule) left pending.

Every commit records, in the same journal entry as its data, which returns it changed
(``Repository.pending_checks``: the return and the following year's, whose rules read it as last year's).
``run_pending`` runs the rules on each through the rules' own entry point (``rules.check_return``) and then
clears the record, unless a newer commit made it pending again meanwhile. The command line's ingest runs
it after each batch and ``publish`` (refresh) before building the catalogue, so a check lost to a kill is
made by the next ingest or refresh, and ``csreturns doctor`` lists what is still pending.
"""
from __future__ import annotations

import logging

from transforms.ingest import rules
from transforms.store import faults
from transforms.store.repository import Repository

log = logging.getLogger(__name__)


def run_pending(repo: Repository) -> list[dict]:
    """Run the DfE rules of every pending return on its current data; returns the rule-run rows
    (``rules.check_return``), one per return checked. A return without rules or without data any more is
    cleared without a check. A rule that fails (``RuleError``) propagates and leaves its return pending."""
    done = []
    for item in repo.pending_checks():
        collection, la_code, year = item["collection"], item["la_code"], int(item["return_year"])
        load_id = rules.latest_load(repo, collection, la_code, year) if rules.rules(collection) else None
        if load_id is not None:
            faults.point("rules.check")
            done.append(rules.check_return(repo, collection, la_code, year, load_id))
            faults.point("rules.checked")
        if not repo.clear_pending(item):
            log.info("rules %s %s %s: changed again while checked; still pending", collection, la_code, year)
    return done
