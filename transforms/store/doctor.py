"""What ``csreturns doctor`` finds in a repository, and the fixes that are always safe.

``diagnose`` only reads: commits left in the journal, DfE checks pending, what dead processes left
(``Repository.orphans``), whether the manifest and the live tree agree, the free space. ``repair`` takes
the writer lock and lets ``Repository.recover`` finish the journal and remove the orphans; the pending
checks and the key are the callers' (they need the rules and the key's owner, outside this wing).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from transforms.store.repository import DATA_FILE, Repository

LOW_SPACE = 1024 ** 3          # below 1 GiB free, say so


@dataclass
class Diagnosis:
    root: Path
    journal: list[str] = field(default_factory=list)          # load ids of commits in flight
    pending: list[dict] = field(default_factory=list)         # returns awaiting their DfE checks
    orphans: list[Path] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)     # partitions where manifest and live tree differ
    manifest_seq: int | None = None
    partitions: int = 0
    free_bytes: int = 0

    @property
    def healthy(self) -> bool:
        return not (self.journal or self.pending or self.orphans or self.inconsistent)


def diagnose(repo: Repository) -> Diagnosis:
    """Read the repository's state without changing anything (safe while writers run; a writer in the
    middle of a commit may make its journal show as in flight)."""
    d = Diagnosis(root=repo.root, free_bytes=shutil.disk_usage(repo.root).free)
    d.journal = [f.stem for f in sorted(repo.journal.glob("*.json"))]
    d.pending = repo.pending_checks()
    d.orphans = repo.orphans(full=True)
    if repo.has_manifest() and not d.journal:
        snapshot = repo.snapshot()
        d.manifest_seq, d.partitions = snapshot.seq, len(snapshot.partitions)
        live = {p.parent.relative_to(repo.parquet).as_posix(): p for p in repo.parquet.rglob(DATA_FILE)}
        for rel in sorted(set(live) | set(snapshot.partitions)):
            obj = snapshot.partitions.get(rel)
            if obj is None or rel not in live or not obj.exists() or not os.path.samefile(obj, live[rel]):
                d.inconsistent.append(rel)
    return d


def repair(repo: Repository) -> list[str]:
    """Finish commits left in the journal and remove orphans (under the writer lock, so never a live
    writer's files). Returns the load ids replayed."""
    with repo.writer_lock(recover=False):
        return repo.recover(full=True)


def size(n: int) -> str:
    return f"{n / 1024 ** 3:.1f} GiB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.1f} MiB"
