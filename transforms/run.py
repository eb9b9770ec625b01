"""Ingest and refresh without a scheduler: what the command line calls, and what one Airflow DAG run does.

``ingest`` finds the files under a landing area, takes them through the ingest stages in batches (read,
validate, load, then the DfE rules per return) and, by default, rebuilds the catalogue; ``refresh``
rebuilds the catalogue (indicators, early warning and council risk with it). The DAG tasks call the same
stage functions one by one; this module strings them together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from transforms.ingest.landing import Arrival, batches, discover
from transforms.ingest.rules import check_returns
from transforms.ingest.stages import load_stage, read_stage, validate_batch
from transforms.store.repository import Repository


def ingest_batch(repo: Repository, arrivals: list[Arrival]) -> list[dict]:
    """Read each file, validate them together, load each, then run the DfE validation rules once per
    return the loads changed (after the commits, outside the writer lock). Returns the ledger rows."""
    states = validate_batch(repo, [read_stage(repo, a) for a in arrivals])
    rows = [load_stage(repo, state) for state in states]
    check_returns(repo, rows)
    return rows


def ingest(landing: Path, repo_root: Path, collection: str | None = None, only_new: bool = False,
           progress: Callable[[int, int, dict], None] | None = None, refresh: bool = True) -> list[dict]:
    """Ingest everything under ``landing`` and (``refresh``) rebuild the catalogue.

    Returns the ledger rows written, one per file, in the order they were committed.
    """
    repo = Repository(repo_root)
    arrivals = discover(landing, collection, seen=repo.seen() if only_new else None)
    rows = []
    for batch in batches(arrivals):
        for row in ingest_batch(repo, batch):
            rows.append(row)
            if progress:
                progress(len(rows), len(arrivals), row)
    if refresh:
        refresh_catalogue(repo)
    return rows


def refresh_catalogue(repo: Repository | Path | str) -> Path:
    """Rebuild the DuckDB catalogue (views, indicators, early warning, council risk) and swap it in."""
    from transforms.catalogue.build import publish

    return publish(repo if isinstance(repo, Repository) else Repository(repo))


def summarise(rows: Iterable[dict]) -> pd.DataFrame:
    """Files and rows per collection and status, from the ledger rows ``ingest`` returns."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return df
    df["collection"] = df["collection"].fillna("(unrecognised)")
    return df.groupby("collection").agg(
        files=("load_id", "count"),
        loaded=("status", lambda s: int((s == "loaded").sum())),
        partly_loaded=("status", lambda s: int((s == "partly_loaded").sum())),
        rejected=("status", lambda s: int((s == "rejected").sum())),
        duplicate=("status", lambda s: int((s == "duplicate").sum())),
        rows_in=("rows_in", "sum"), rows_loaded=("rows_loaded", "sum"),
        rows_quarantined=("rows_quarantined", "sum"))
