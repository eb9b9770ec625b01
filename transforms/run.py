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
from transforms.ingest.resume import run_pending
from transforms.ingest.rules import check_returns
from transforms.ingest.stages import load_batch, read_batch, validate_batch
from transforms.store import faults
from transforms.store.repository import OutOfSpace, Repository, is_out_of_space

ROOM_PER_LANDED_BYTE = 3        # staged raw + clean Parquet (and validation results) of a file, generously
ROOM_MARGIN = 16 * 1024 * 1024  # the ledger, journal, manifest and catalogue's own small files


def ingest_batch(repo: Repository, arrivals: list[Arrival]) -> list[dict]:
    """Read the files (in parallel processes, ``read_batch``), validate them together, load them (one commit),
    then run the DfE validation rules once per return the loads changed (after the commits, outside the
    writer lock), and any check a killed run left pending (``transforms.ingest.resume``). Returns the ledger rows.

    Raises ``OutOfSpace`` before reading anything if the disk lacks room for the batch (an estimate:
    ``ROOM_PER_LANDED_BYTE`` times the landed bytes, plus ``ROOM_MARGIN``)."""
    repo.ensure_room(ROOM_PER_LANDED_BYTE * sum(a.bytes or 0 for a in arrivals) + ROOM_MARGIN,
                     f"a batch of {len(arrivals)} file(s)")
    states = validate_batch(repo, read_batch(repo, arrivals))
    rows = load_batch(repo, states)
    faults.point("rules.check")
    check_returns(repo, rows)
    faults.point("rules.checked")
    run_pending(repo)
    return rows


def ingest(landing: Path, repo_root: Path, collection: str | None = None, only_new: bool = False,
           progress: Callable[[int, int, dict], None] | None = None, refresh: bool = True) -> list[dict]:
    """Ingest everything under ``landing`` and (``refresh``) rebuild the catalogue.

    Returns the ledger rows written, one per file, in the order they were committed.
    """
    repo = Repository(repo_root, single_process=True)
    arrivals = discover(landing, collection, seen=repo.seen() if only_new else None)
    rows = []
    ledger_before = len(repo.ledger())
    try:
        run_pending(repo)          # checks a killed run left, before anything new
        for batch in batches(arrivals):
            for row in ingest_batch(repo, batch):
                rows.append(row)
                if progress:
                    progress(len(rows), len(arrivals), row)
        if refresh:
            refresh_catalogue(repo)
    except OutOfSpace as exc:
        raise OutOfSpace(f"{exc} ({_committed(repo, ledger_before, len(arrivals))})") from None
    except Exception as exc:
        if not is_out_of_space(exc):
            raise
        raise OutOfSpace(
            f"out of disk space in the repository {repo.root} (writing {getattr(exc, 'filename', None) or 'a file'}): "
            f"{_committed(repo, ledger_before, len(arrivals))}; a commit cut short is finished by the next run. "
            "Free some space and run the same command again (committed files are then skipped as "
            "duplicates).") from None
    return rows


def _committed(repo: Repository, ledger_before: int, total: int) -> str:
    committed = len(repo.ledger()) - ledger_before
    return f"{committed} of {total} file(s) committed, {total - committed} not committed"


def refresh_catalogue(repo: Repository | Path | str) -> Path:
    """Run the DfE checks still pending, then rebuild the DuckDB catalogue (views, indicators, early
    warning, council risk) and swap it in."""
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
