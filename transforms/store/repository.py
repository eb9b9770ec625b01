"""The Parquet repository: partitioned, atomic, resubmission-safe, with a ledger of every file received.

Layout under ``REPO``::

    parquet/collection=<c>/table=<t>/la_code=<la>/return_year=<yyyy>/data.parquet   council returns
    parquet/collection=published/table=published_statistics/dataset=<d>/data.parquet
    ledger/<load_id>.parquet         one row per file received (never rewritten)
    quarantine/<load_id>.parquet     one row per rejected row or file
    validations/<load_id>/*.json     Great Expectations results
    staging/<load_id>/               work in progress of one file (raw, clean, quarantine)
    journal/<load_id>.json           a commit in flight (replayed after a crash)

A partition holds one file, so a resubmission replaces it with ``os.replace`` (readers see the old file or
the new, never a mix). A commit that touches several partitions first writes a journal; if the process
dies midway, the next writer replays the journal to completion. The ledger row is written last: it is
the commit record.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DATA_FILE = "data.parquet"

LEDGER_SCHEMA = pa.schema([
    ("load_id", pa.string()), ("path", pa.string()), ("relpath", pa.string()), ("sha256", pa.string()),
    ("bytes", pa.int64()), ("format", pa.string()), ("collection", pa.string()), ("table", pa.string()),
    ("tables", pa.list_(pa.string())), ("dataset", pa.string()), ("la_code", pa.string()),
    ("return_year", pa.int32()), ("year_source", pa.string()), ("received_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()), ("rows_in", pa.int64()), ("rows_loaded", pa.int64()),
    ("rows_quarantined", pa.int64()), ("gx_success", pa.bool_()), ("reason", pa.string()),
    ("duplicate_of", pa.string()), ("replaces", pa.list_(pa.string())),
    ("normalised", pa.map_(pa.string(), pa.int64())),
])
FAILURE = pa.struct([("field", pa.string()), ("rule", pa.string()), ("message", pa.string())])
QUARANTINE_SCHEMA = pa.schema([
    ("load_id", pa.string()), ("collection", pa.string()), ("table_name", pa.string()),
    ("la_code", pa.string()), ("return_year", pa.int32()), ("source_row", pa.int64()),
    ("field", pa.string()), ("rule", pa.string()), ("message", pa.string()),
    ("failures", pa.list_(FAILURE)), ("raw", pa.map_(pa.string(), pa.string())),
])
PUBLISHED_SCHEMA = pa.schema([
    ("time_period", pa.string()), ("time_identifier", pa.string()), ("geographic_level", pa.string()),
    ("country_code", pa.string()), ("country_name", pa.string()), ("region_code", pa.string()),
    ("region_name", pa.string()), ("old_la_code", pa.string()), ("new_la_code", pa.string()),
    ("la_name", pa.string()), ("breakdowns", pa.map_(pa.string(), pa.string())), ("measure", pa.string()),
    ("value", pa.float64()), ("value_symbol", pa.string()), ("period_end", pa.date32()),
    ("published_on", pa.date32()), ("source_row", pa.int64()), ("load_id", pa.string()),
])
STATUSES = ("loaded", "partly_loaded", "rejected", "duplicate")


_last_micros = 0


def new_load_id() -> str:
    """Sortable by arrival time (to the microsecond, strictly increasing within a process); the random
    suffix keeps ids unique across concurrent workers."""
    global _last_micros
    micros = max(time.time_ns() // 1000, _last_micros + 1)
    _last_micros = micros
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{fraction:06d}Z-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Partition:
    collection: str
    table: str
    la_code: str | None = None
    return_year: int | None = None
    dataset: str | None = None

    def relative(self) -> Path:
        path = Path(f"collection={self.collection}") / f"table={self.table}"
        if self.dataset is not None:
            return path / f"dataset={self.dataset}"
        return path / f"la_code={self.la_code}" / f"return_year={self.return_year}"


class Repository:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        for sub in ("parquet", "ledger", "quarantine", "validations", "staging", "journal"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    parquet = property(lambda self: self.root / "parquet")
    ledger_dir = property(lambda self: self.root / "ledger")
    quarantine_dir = property(lambda self: self.root / "quarantine")
    validations = property(lambda self: self.root / "validations")
    staging = property(lambda self: self.root / "staging")
    journal = property(lambda self: self.root / "journal")
    catalogue_path = property(lambda self: self.root / "csreturns.duckdb")

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time for commits and catalogue builds (across processes and Airflow workers)."""
        with open(self.root / ".writer.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self.recover()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def partition_file(self, partition: Partition) -> Path:
        return self.parquet / partition.relative() / DATA_FILE

    def staging_dir(self, load_id: str) -> Path:
        path = self.staging / load_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- reading the ledger -------------------------------------------------------------------------
    def _refresh_ledger(self) -> dict:
        """Ledger files are immutable, so only those not read before are read (cheap on every call)."""
        state = self.__dict__.setdefault("_ledger_state", {"rows": {}, "loaded_sha": {}, "seen": set()})
        for f in self.ledger_dir.glob("*.parquet"):
            if f.stem in state["rows"]:
                continue
            row = pq.read_table(f, schema=LEDGER_SCHEMA).to_pylist()[0]
            state["rows"][f.stem] = row
            state["seen"].add((row["relpath"], row["sha256"]))
            if row["status"] in ("loaded", "partly_loaded"):
                state["loaded_sha"].setdefault(row["sha256"], row["load_id"])
        return state

    def ledger(self) -> pd.DataFrame:
        rows = self._refresh_ledger()["rows"]
        return pa.Table.from_pylist([rows[k] for k in sorted(rows)], schema=LEDGER_SCHEMA).to_pandas()

    def loaded_copy_of(self, sha256: str) -> str | None:
        """The load that already brought in these exact bytes, if any (rejected files may be retried)."""
        return self._refresh_ledger()["loaded_sha"].get(sha256)

    def seen(self) -> set[tuple[str, str]]:
        return set(self._refresh_ledger()["seen"])

    def current_load(self, partition: Partition) -> str | None:
        path = self.partition_file(partition)
        if not path.exists():
            return None
        meta = pq.read_schema(path).metadata or {}
        return meta.get(b"csreturns.load_id", b"").decode() or None

    # -- writing ------------------------------------------------------------------------------------
    def write_staged(self, table: pa.Table, path: Path, load_id: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"csreturns.load_id": load_id.encode()})
        pq.write_table(table, path, compression="zstd")
        return path

    def commit(self, load_id: str, replacements: dict[Partition, Path | None], ledger_row: dict,
               quarantine: pa.Table | None) -> None:
        """Swap staged files into their partitions (None deletes the partition), then record the load.

        Must be called under ``writer_lock``.
        """
        ops = [{"partition": str(p.relative()), "staged": str(src) if src else None}
               for p, src in replacements.items()]
        staged_quarantine = None
        if quarantine is not None and quarantine.num_rows:
            staged_quarantine = self.staging_dir(load_id) / "quarantine.parquet"
            pq.write_table(quarantine, staged_quarantine)
        ledger_row = {**ledger_row, "received_at": ledger_row["received_at"].isoformat()
                      if hasattr(ledger_row["received_at"], "isoformat") else ledger_row["received_at"]}
        entry = {"load_id": load_id, "ops": ops, "ledger": ledger_row,
                 "quarantine": str(staged_quarantine) if staged_quarantine else None}
        journal_file = self.journal / f"{load_id}.json"
        tmp = journal_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, default=str))
        _fsync_file(tmp)
        os.replace(tmp, journal_file)
        _fsync_dir(self.journal)
        self._apply(entry)
        journal_file.unlink()

    def _apply(self, entry: dict) -> None:
        """Idempotent: safe to run again on a journal left by a crash."""
        for op in entry["ops"]:
            target = self.parquet / op["partition"] / DATA_FILE
            if op["staged"]:
                staged = Path(op["staged"])
                if staged.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged, target)
                    _fsync_dir(target.parent)
            elif target.exists():
                target.unlink()
        if entry.get("quarantine") and Path(entry["quarantine"]).exists():
            os.replace(entry["quarantine"], self.quarantine_dir / f"{entry['load_id']}.parquet")
        row = dict(entry["ledger"])
        row["received_at"] = pd.Timestamp(row["received_at"])
        ledger_file = self.ledger_dir / f"{entry['load_id']}.parquet"
        tmp = ledger_file.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist([row], schema=LEDGER_SCHEMA), tmp)
        os.replace(tmp, ledger_file)
        shutil.rmtree(self.staging / entry["load_id"], ignore_errors=True)

    def recover(self) -> list[str]:
        """Finish commits a crash interrupted (their staged files are complete; only swaps remained)."""
        replayed = []
        for journal_file in sorted(self.journal.glob("*.json")):
            self._apply(json.loads(journal_file.read_text()))
            journal_file.unlink()
            replayed.append(journal_file.stem)
        return replayed


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
