"""The Parquet repository: partitioned, atomic, resubmission-safe, with a ledger of every file received.

Layout under ``REPO``::

    parquet/collection=<c>/table=<t>/la_code=<la>/return_year=<yyyy>/data.parquet   council returns (live tree)
    parquet/collection=published/table=published_statistics/dataset=<d>/data.parquet
    objects/<partition>/<load_id>.parquet   each committed version of a partition (a hard link, no copy)
    manifest/shards/<c>~<la>.json    the committed snapshot of one council's collection: partition -> object,
                                     swapped with one os.replace (``FORMAT`` says the manifest exists)
    manifest/pinned-<seq>.json       snapshots a catalogue was built on (the last two are kept)
    pending/<c>~<la>~<year>.json     returns whose DfE rules have not run on their current data
    ledger/<load_id>.parquet         one row per file received (never rewritten: a load a resubmission
                                     replaced is read as ``superseded``, see ``Repository.ledger``)
    quarantine/<load_id>.parquet     one row per rejected row or file
    validations/<load_id>/*.json     Great Expectations results
    staging/<load_id>/               work in progress of one file (raw, clean, quarantine; ``.owner``)
    journal/<load_id>.json           a commit in flight (replayed after a crash)
    .locks/<pid>.lock                held (flock) by each live process that owns staging folders

A commit (``commit``) first writes a journal, then, idempotently: the pending-check records of the returns
it changes, each partition's new file (linked into ``objects/`` and swapped into the live tree with
``os.replace``), the new manifest shard of the council's collection (one ``os.replace``: the moment
the whole commit becomes visible to readers), the quarantine and, last, the ledger row. Readers that must never see a mix of two commits
(the catalogue, whose views list the files of one snapshot) resolve partitions through the manifest
(``snapshot``); the live tree is the writer's (and the replica's) view. If the process dies midway, the
next writer replays the journal to completion and removes what dead processes left (``recover``).
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.store import faults

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
STATUSES = ("loaded", "partly_loaded", "rejected", "duplicate")   # as written, once, at commit
SUPERSEDED = "superseded"   # read, never written: a loaded file none of whose rows the repository still holds


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


LEDGER_SETTLE_NS = 1_000_000_000   # a folder's mtime this recent may hide a file added in the same clock tick
STAGING_GRACE_SECONDS = 24 * 3600   # staging of a dead Airflow task may still be wanted by the next task
TMP_GRACE_SECONDS = 3600            # rule results' temporary files are written outside the writer lock
PINNED_KEPT = 2                     # catalogue snapshots whose files are kept (an analyst may hold the older)


class OutOfSpace(RuntimeError):
    """The disk under the repository is full (or would be): the message names the path and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """One committed state of the repository: ``partitions`` maps a partition's relative path
    (``collection=<c>/table=<t>/...``) to the absolute path of its immutable file; ``seq`` counts commits."""

    seq: int
    partitions: dict

    def files(self, prefix: str) -> list[Path]:
        """The files of the partitions under ``prefix`` (e.g. ``collection=cin_census/table=children/``)."""
        return [self.partitions[rel] for rel in sorted(self.partitions) if rel.startswith(prefix)]

    def loads_by_return(self) -> dict[tuple[str, str, int], list[str]]:
        """(collection, la_code, return_year) -> sorted load ids of the return's partitions (file stems)."""
        out: dict[tuple[str, str, int], set[str]] = {}
        for rel, path in self.partitions.items():
            parts = dict(p.split("=", 1) for p in rel.split("/") if "=" in p)
            if "la_code" in parts and "return_year" in parts:
                key = (parts["collection"], parts["la_code"], int(parts["return_year"]))
                out.setdefault(key, set()).add(Path(path).stem)
        return {k: sorted(v) for k, v in out.items()}

    def load_ids(self) -> set[str]:
        """The loads whose rows the snapshot holds (each partition's file is named by its load; a repository
        without a manifest is read from its files' ``csreturns.load_id`` metadata)."""
        out = set()
        for path in self.partitions.values():
            path = Path(path)
            if path.name == DATA_FILE:
                out.add((pq.read_schema(path).metadata or {}).get(b"csreturns.load_id", b"").decode())
            else:
                out.add(path.stem)
        return out


@dataclass(frozen=True)
class Load:
    """One landed file's commit: the staged file of each partition it replaces (None deletes the
    partition), its ledger row and its quarantined rows (see ``Repository.commit``)."""

    load_id: str
    replacements: dict
    ledger_row: dict
    quarantine: pa.Table | None = None


_PID_LOCKS: dict[str, object] = {}     # repository root -> open, flocked .locks/<pid>.lock of this process


class Repository:
    def __init__(self, root: Path | str, single_process: bool = False):
        """``single_process``: this process takes each file through every stage itself (the command line),
        so its staging is an orphan the moment it dies; otherwise (Airflow tasks hand staging on to the
        next task) a dead owner's staging is kept for ``STAGING_GRACE_SECONDS``."""
        self.root = Path(root).resolve()
        self.single_process = single_process
        for sub in ("parquet", "ledger", "quarantine", "validations", "staging", "journal"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    parquet = property(lambda self: self.root / "parquet")
    ledger_dir = property(lambda self: self.root / "ledger")
    quarantine_dir = property(lambda self: self.root / "quarantine")
    validations = property(lambda self: self.root / "validations")
    staging = property(lambda self: self.root / "staging")
    journal = property(lambda self: self.root / "journal")
    objects = property(lambda self: self.root / "objects")
    manifest_dir = property(lambda self: self.root / "manifest")
    pending_dir = property(lambda self: self.root / "pending")
    locks_dir = property(lambda self: self.root / ".locks")
    catalogue_path = property(lambda self: self.root / "csreturns.duckdb")

    @contextmanager
    def writer_lock(self, recover: bool = True) -> Iterator[None]:
        """One writer at a time for commits and catalogue builds (across processes and Airflow workers).
        Taking it first finishes what a dead writer left (``recover``) unless ``recover`` is False."""
        with open(self.root / ".writer.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                if recover:
                    self.recover()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def partition_file(self, partition: Partition) -> Path:
        return self.parquet / partition.relative() / DATA_FILE

    def staging_dir(self, load_id: str) -> Path:
        path = self.staging / load_id
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            self._hold_pid_lock()
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "single_process": self.single_process}
            (path / ".owner").write_text(json.dumps(owner))
        return path

    def _hold_pid_lock(self) -> None:
        """This process's ``.locks/<pid>.lock``, held until it exits: how the next writer tells its staging
        from a dead process's (a pid alone may have been reused)."""
        key = f"{self.root}:{os.getpid()}"
        if key in _PID_LOCKS:
            return
        self.locks_dir.mkdir(exist_ok=True)
        path = self.locks_dir / f"{os.getpid()}.lock"
        fh = open(path, "w")
        fcntl.flock(fh, fcntl.LOCK_EX)
        _PID_LOCKS[key] = fh
        atexit.register(path.unlink, missing_ok=True)   # a clean exit leaves nothing; a kill leaves it to recover

    def _owner_alive(self, pid: int) -> bool:
        if f"{self.root}:{pid}" in _PID_LOCKS:
            return True
        lock = self.locks_dir / f"{pid}.lock"
        if not lock.exists():
            return False
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
        return False

    # -- reading the ledger -------------------------------------------------------------------------
    def _refresh_ledger(self) -> dict:
        """Ledger files are immutable, so only those not read before are read, and the folder is only listed
        again when it has changed (its mtime; a listing in the last ``LEDGER_SETTLE_NS`` of a change is not
        trusted, as a file system's clock may be coarser): called for every file a batch reads and loads, a
        listing each time made a national year's read and load quadratic in the ledger's size."""
        state = self.__dict__.setdefault("_ledger_state", {"rows": {}, "loaded_sha": {}, "seen": set(), "mtime": None})
        try:
            mtime = os.stat(self.ledger_dir).st_mtime_ns
        except FileNotFoundError:
            return state
        if mtime == state["mtime"]:
            return state
        settled = time.time_ns() - mtime > LEDGER_SETTLE_NS
        for f in self.ledger_dir.glob("*.parquet"):
            if f.stem in state["rows"]:
                continue
            row = pq.read_table(f, schema=LEDGER_SCHEMA).to_pylist()[0]
            state["rows"][f.stem] = row
            state["seen"].add((row["relpath"], row["sha256"]))
            if row["status"] in ("loaded", "partly_loaded"):
                state["loaded_sha"].setdefault(row["sha256"], row["load_id"])
        state["mtime"] = mtime if settled else None
        return state

    def ledger(self, snapshot: Snapshot | None = None) -> pd.DataFrame:
        """One row per file received (``LEDGER_SCHEMA``), oldest first, plus ``superseded_by``: a load whose
        rows were all replaced by resubmissions reads as status ``superseded`` with the load that replaced
        the last of them (``superseded``), so summing ``rows_loaded`` over the loads not superseded gives the
        rows the repository holds, per council, collection and year. ``snapshot``: the committed state to
        judge by (default: the last one)."""
        rows = self._refresh_ledger()["rows"]
        out = pa.Table.from_pylist([rows[k] for k in sorted(rows)], schema=LEDGER_SCHEMA).to_pandas()
        gone = self.superseded(snapshot)
        out["superseded_by"] = out["load_id"].map(gone).astype(object)
        out["superseded_by"] = out["superseded_by"].where(out["superseded_by"].notna(), None)
        out.loc[out["superseded_by"].notna(), "status"] = SUPERSEDED
        return out

    def superseded(self, snapshot: Snapshot | None = None) -> dict[str, str]:
        """Loads none of whose rows ``snapshot`` (default: the last committed one) holds any more, each
        mapped to the load that replaced the last of its partitions (the latest load whose ``replaces``
        names it). A load only partly replaced (one table of several) is not superseded."""
        rows = self._refresh_ledger()["rows"]
        replaced_by: dict[str, str] = {}
        for load_id in sorted(rows):
            for old in rows[load_id].get("replaces") or []:
                replaced_by[old] = load_id
        if not replaced_by:
            return {}
        held = (snapshot or self.snapshot()).load_ids()
        return {old: new for old, new in replaced_by.items() if old not in held}

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

    # -- the manifest: what readers see ---------------------------------------------------------------
    def has_manifest(self) -> bool:
        return (self.manifest_dir / "FORMAT").exists()

    def snapshot(self) -> Snapshot:
        """The last committed state, from the manifest's shards (``manifest/shards/<collection>~<la>.json``,
        one per council and collection, each only ever replaced whole). A commit changes one return, so one
        shard, with one ``os.replace``: a reader never sees half of a commit. ``seq`` counts the commits.
        A repository written before manifests existed is read from its live tree until its next writer
        makes one."""
        if not self.has_manifest():
            return Snapshot(-1, {p.parent.relative_to(self.parquet).as_posix(): p
                                 for p in sorted(self.parquet.rglob(DATA_FILE))})
        seq, partitions = 0, {}
        for f in sorted((self.manifest_dir / "shards").glob("*.json")):
            shard = self._read_json(f)
            if shard:
                seq += shard["seq"]
                partitions.update((rel, self.root / obj) for rel, obj in shard["partitions"].items())
        return Snapshot(seq, partitions)

    def _shard_path(self, rel: str) -> Path:
        parts = dict(p.split("=", 1) for p in rel.split("/") if "=" in p)
        return self.manifest_dir / "shards" / f"{parts['collection']}~{parts.get('la_code', '_')}.json"

    def _read_json(self, path: Path) -> dict | None:
        """A manifest file, parsed once per version (a new version is a new file: ``os.replace``). Read-only."""
        cache = self.__dict__.setdefault("_json_cache", {})
        try:
            st = path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if path in cache and cache[path][0] == key:
                return cache[path][1]
            content = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        cache[path] = (key, content)
        return content

    def _write_json(self, path: Path, content: dict, sync_dir: bool = True) -> None:
        """tmp + fsync + ``os.replace`` + fsync of the folder: the file is the old content or the new.
        ``sync_dir`` False: the caller syncs the folder once after several such writes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(content, default=str))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if sync_dir:
            _fsync_dir(path.parent)

    def _ensure_manifest(self) -> None:
        """Make the manifest from the live tree (linking each file into ``objects/``) if there is none:
        a repository written before manifests existed. ``FORMAT`` is written last."""
        if self.has_manifest():
            return
        shards: dict[Path, dict] = {}
        for path in sorted(self.parquet.rglob(DATA_FILE)):
            rel = path.parent.relative_to(self.parquet).as_posix()
            load_id = (pq.read_schema(path).metadata or {}).get(b"csreturns.load_id", b"legacy").decode()
            obj = self.objects / rel / f"{load_id}.parquet"
            if not obj.exists():
                obj.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, obj)
            shard = shards.setdefault(self._shard_path(rel), {"seq": 0, "partitions": {}})
            shard["partitions"][rel] = obj.relative_to(self.root).as_posix()
        for path, shard in shards.items():
            self._write_json(path, shard)
        self._write_json(self.manifest_dir / "FORMAT", {"manifest": 1})

    def pin(self, snapshot: Snapshot) -> None:
        """Record that a catalogue was built on ``snapshot`` (its files are kept by ``collect_garbage``)."""
        if snapshot.seq < 0:
            return
        self._write_json(self.manifest_dir / f"pinned-{snapshot.seq:010d}.json",
                         {"seq": snapshot.seq, "partitions": {
                             rel: Path(p).relative_to(self.root).as_posix() for rel, p in snapshot.partitions.items()}})

    def collect_garbage(self) -> list[Path]:
        """Delete superseded versions in ``objects/``: those neither current nor in the last ``PINNED_KEPT``
        pinned snapshots. Call under ``writer_lock``. Returns the files deleted."""
        pins = sorted(self.manifest_dir.glob("pinned-*.json"))
        for old in pins[:-PINNED_KEPT]:
            old.unlink()
        keep = set(self.snapshot().partitions.values())
        for pinned in pins[-PINNED_KEPT:]:
            keep.update(self.root / obj for obj in json.loads(pinned.read_text())["partitions"].values())
        deleted = []
        if self.objects.is_dir():
            for f in self.objects.rglob("*.parquet"):
                if f not in keep:
                    f.unlink()
                    deleted.append(f)
        return deleted

    # -- what the catalogue was built on ----------------------------------------------------------------
    def revision(self) -> str:
        """What a catalogue built now would show, as a token that changes with every commit (the manifest's
        commit count and the ledger's files: a rejected file or a duplicate commits no partition but adds a
        ledger row) and with every DfE check kept (``rule_runs/``). Files in those folders are only ever
        added, so their count and last name say whether anything arrived."""
        parts = [str(self.snapshot().seq)]
        for sub in ("ledger", "rule_runs"):
            names = sorted(f.name for f in (self.root / sub).glob("*.parquet")) if (self.root / sub).is_dir() else []
            parts.append(f"{len(names)}/{names[-1] if names else ''}")
        return ":".join(parts)

    def catalogue_revision(self) -> str | None:
        """The ``revision`` the current catalogue was built on (None: no catalogue, or built before this
        was recorded)."""
        if not self.catalogue_path.exists():
            return None
        record = self._read_json(self.manifest_dir / "catalogue.json")
        return record.get("revision") if record else None

    def catalogue_is_current(self) -> bool:
        """Whether the catalogue already shows everything committed (same ``revision``) and no DfE check is
        pending: a rebuild would change nothing."""
        recorded = self.catalogue_revision()
        return recorded is not None and recorded == self.revision() and not self.pending_checks()

    def record_catalogue(self, revision: str) -> None:
        """Note the ``revision`` a catalogue just swapped in was built on. Call under ``writer_lock``."""
        self._write_json(self.manifest_dir / "catalogue.json", {"revision": revision})

    # -- pending DfE checks ---------------------------------------------------------------------------
    def pending_checks(self) -> list[dict]:
        """Returns whose DfE rules have not run since their data last changed: dicts with ``collection``,
        ``la_code``, ``return_year`` and ``token`` (the load that made the check pending), oldest first."""
        out = []
        for f in sorted(self.pending_dir.glob("*.json")) if self.pending_dir.is_dir() else []:
            try:
                out.append(json.loads(f.read_text()))
            except (ValueError, FileNotFoundError):   # a torn file cannot be: written by replace; be safe
                continue
        return out

    def _pending_path(self, collection: str, la_code: str, return_year: int) -> Path:
        return self.pending_dir / f"{collection}~{la_code}~{int(return_year)}.json"

    def clear_pending(self, item: dict) -> bool:
        """Remove a pending check after its rules ran, unless a newer commit made it pending again
        (its token changed meanwhile): then it stays, to be checked on the newer data."""
        path = self._pending_path(item["collection"], item["la_code"], item["return_year"])
        with self.writer_lock(recover=False):
            try:
                current = json.loads(path.read_text())
            except FileNotFoundError:
                return True
            if current.get("token") != item.get("token"):
                return False
            path.unlink()
            return True

    # -- writing ------------------------------------------------------------------------------------
    def write_staged(self, table: pa.Table, path: Path, load_id: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"csreturns.load_id": load_id.encode()})
        faults.point("stage.write", path)
        pq.write_table(table, path, compression="zstd")
        return path

    def ensure_room(self, needed: int, what: str) -> None:
        """Refuse (``OutOfSpace``) to start work needing ``needed`` bytes when the disk has less free."""
        free = shutil.disk_usage(self.root).free
        if free < needed:
            raise OutOfSpace(f"not enough space in {self.root} for {what}: {_size(needed)} needed, "
                             f"{_size(free)} free; nothing of it was committed. Free some space (or move the "
                             "repository) and run the same command again.")

    def commit(self, load_id: str, replacements: dict[Partition, Path | None], ledger_row: dict,
               quarantine: pa.Table | None) -> None:
        """Swap staged files into their partitions (None deletes the partition), then record the load.

        The returns whose data changes (and the following year of each, whose rules read it as last year's)
        are recorded as pending DfE checks in the same commit. Must be called under ``writer_lock``.
        """
        self.commit_many([Load(load_id, replacements, ledger_row, quarantine)])

    def commit_many(self, loads: list["Load"]) -> None:
        """Commit several loads (e.g. every file of a batch) as ONE commit: one journal entry, each pending
        check, manifest shard and folder written and synced once, the ledger rows (one file per load, as
        ``commit`` writes) last. All or nothing, like ``commit``: a crash before the journal is on disk
        leaves none of them; after it, the next writer replays the journal and completes them all. Loads
        are applied in the order given (a later load of the same partition replaces an earlier one).
        Must be called under ``writer_lock``."""
        if not loads:
            return
        entries = []
        for load in loads:
            ops = [{"partition": str(p.relative()), "staged": str(src) if src else None}
                   for p, src in load.replacements.items()]
            row = load.ledger_row
            pending = []
            if ops and row.get("la_code") and row.get("return_year") is not None:
                year = int(row["return_year"])
                pending = [[row["collection"], row["la_code"], y] for y in (year, year + 1)]
            staged_quarantine = None
            if load.quarantine is not None and load.quarantine.num_rows:
                staged_quarantine = self.staging_dir(load.load_id) / "quarantine.parquet"
                pq.write_table(load.quarantine, staged_quarantine)
            row = {**row, "received_at": row["received_at"].isoformat()
                   if hasattr(row["received_at"], "isoformat") else row["received_at"]}
            entries.append({"load_id": load.load_id, "ops": ops, "ledger": row, "pending": pending,
                            "quarantine": str(staged_quarantine) if staged_quarantine else None})
        entry = entries[0] if len(entries) == 1 else {"load_id": entries[0]["load_id"], "loads": entries}
        journal_file = self.journal / f"{entry['load_id']}.json"
        self._write_json(journal_file, entry)
        faults.point("commit.journaled")
        self._apply(entry)
        journal_file.unlink()
        for _ in loads:      # once per load made visible, as when each load was a commit of its own
            faults.point("commit.done")

    def _apply(self, entry: dict) -> None:
        """Idempotent: safe to run again on a journal left by a crash. ``entry`` is one load's commit or
        (``loads``) several loads committed as one, whose files and folders are each synced once."""
        commit_id = entry["load_id"]
        loads = entry.get("loads") or [entry]
        pending = {tuple(p): None for e in loads for p in e.get("pending", [])}
        for collection, la_code, year in pending:
            self._write_json(self._pending_path(collection, la_code, year),
                             {"collection": collection, "la_code": la_code, "return_year": int(year),
                              "token": commit_id}, sync_dir=False)
        if pending:
            _fsync_dir(self.pending_dir)
        changes: dict[str, str | None] = {}
        swapped_dirs: dict[Path, None] = {}
        swaps = 0
        for e in loads:
            load_id = e["load_id"]
            for op in e["ops"]:
                if swaps:
                    faults.point("commit.swap")
                swaps += 1
                target = self.parquet / op["partition"] / DATA_FILE
                if op["staged"]:
                    staged = Path(op["staged"])
                    obj = self.objects / op["partition"] / f"{load_id}.parquet"
                    if staged.exists():
                        obj.parent.mkdir(parents=True, exist_ok=True)
                        if not obj.exists():
                            os.link(staged, obj)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(staged, target)
                        swapped_dirs[target.parent] = None
                    elif obj.exists() and not (target.exists() and os.path.samefile(obj, target)):
                        tmp = target.with_name(f".{DATA_FILE}.{load_id}.tmp")   # replayed after a crash
                        tmp.unlink(missing_ok=True)
                        os.link(obj, tmp)
                        os.replace(tmp, target)
                    if obj.exists():
                        changes[op["partition"]] = obj.relative_to(self.root).as_posix()
                else:
                    target.unlink(missing_ok=True)
                    changes[op["partition"]] = None
        for folder in swapped_dirs:
            _fsync_dir(folder)
        self._ensure_manifest()
        by_shard: dict[Path, dict[str, str | None]] = {}
        for rel, obj in changes.items():
            by_shard.setdefault(self._shard_path(rel), {})[rel] = obj
        for path, shard_changes in by_shard.items():     # one shard per council and collection
            shard = self._read_json(path) or {"seq": 0, "partitions": {}}
            partitions = dict(shard["partitions"])
            for rel, obj in shard_changes.items():
                if obj is None:
                    partitions.pop(rel, None)
                else:
                    partitions[rel] = obj
            seq = shard["seq"] + (shard.get("load_id") != commit_id)   # a replay is the same commit
            self._write_json(path, {"seq": seq, "partitions": partitions, "load_id": commit_id}, sync_dir=False)
        if by_shard:
            _fsync_dir(self.manifest_dir / "shards")
        faults.point("commit.manifest")
        for e in loads:
            if e.get("quarantine") and Path(e["quarantine"]).exists():
                os.replace(e["quarantine"], self.quarantine_dir / f"{e['load_id']}.parquet")
        for e in loads:
            row = dict(e["ledger"])
            row["received_at"] = pd.Timestamp(row["received_at"])
            ledger_file = self.ledger_dir / f"{e['load_id']}.parquet"
            tmp = ledger_file.with_name(f".{ledger_file.name}.{os.getpid()}.tmp")
            pq.write_table(pa.Table.from_pylist([row], schema=LEDGER_SCHEMA), tmp)
            _fsync_file(tmp)
            os.replace(tmp, ledger_file)
        _fsync_dir(self.ledger_dir)
        for e in loads:
            shutil.rmtree(self.staging / e["load_id"], ignore_errors=True)

    # -- recovery -----------------------------------------------------------------------------------
    def recover(self, full: bool = False) -> list[str]:
        """Finish commits a crash interrupted (their staged files are complete; only swaps remained), then
        remove what dead processes left (``orphans``). Call under ``writer_lock``. Returns the load ids
        whose commits were replayed."""
        replayed = []
        for journal_file in sorted(self.journal.glob("*.json")):
            try:
                entry = json.loads(journal_file.read_text())
            except ValueError:      # written by replace, so never torn; an unreadable one is not ours
                continue
            self._apply(entry)
            journal_file.unlink()
            replayed.append(journal_file.stem)
        self._ensure_manifest()
        for path in self.orphans(full=full):
            _remove(path)
        return replayed

    def orphans(self, now: float | None = None, full: bool = False) -> list[Path]:
        """What dead processes left, safe to delete under ``writer_lock`` (which every commit and catalogue
        build holds, so their temporary files seen under it are a dead process's): staging folders whose
        owner process is gone (``.locks/<pid>.lock`` not held; an Airflow task's after
        ``STAGING_GRACE_SECONDS``) or whose load is committed; validation folders of loads neither committed
        nor staged; half-built catalogues (``.building-*``, with their WAL); temporary files of journal,
        ledger and manifest writes; rule results' temporary files older than ``TMP_GRACE_SECONDS``; the
        lock files of dead processes.

        Every writer looks for these when it takes the lock, so the quick look (``full`` False) costs
        nothing that grows with the repository: validation folders are looked at only for orphaned staging
        (a load dies with both, or commits and keeps its validation), and the partition tree is not walked
        (a replay cleans its own temporary file). ``csreturns doctor`` looks at everything (``full``)."""
        now = time.time() if now is None else now
        out: list[Path] = []
        def committed(load_id: str) -> bool:
            return (self.ledger_dir / f"{load_id}.parquet").exists()
        journal = {f.stem for f in self.journal.glob("*.json")}
        live_staging = set()
        for d in sorted(p for p in self.staging.iterdir() if p.is_dir()):
            if committed(d.name) and d.name not in journal:
                out.append(d)
                continue
            try:
                owner = json.loads((d / ".owner").read_text())
            except (FileNotFoundError, ValueError):
                owner = None
            age = now - d.stat().st_mtime
            if owner and owner.get("host") == socket.gethostname() and self._owner_alive(int(owner["pid"])):
                live_staging.add(d.name)
            elif owner and owner.get("host") == socket.gethostname() and owner.get("single_process"):
                out.append(d)
            elif age > STAGING_GRACE_SECONDS:
                out.append(d)
            else:
                live_staging.add(d.name)
        candidates = (sorted(p for p in self.validations.iterdir() if p.is_dir()) if full
                      else [self.validations / d.name for d in out if (self.validations / d.name).is_dir()])
        for d in candidates:
            if not committed(d.name) and d.name not in journal and d.name not in live_staging:
                out.append(d)
        out += sorted(self.root.glob(".csreturns.duckdb.building-*"))
        out += sorted(self.journal.glob("*.tmp"))
        out += sorted(self.ledger_dir.glob(".*.tmp")) + sorted(self.ledger_dir.glob("*.tmp"))
        out += sorted(self.quarantine_dir.glob("*.tmp"))
        for sub in ("manifest", "manifest/shards", "pending"):
            if (self.root / sub).is_dir():
                out += sorted((self.root / sub).glob(".*.tmp"))
        if full and self.parquet.is_dir():
            out += sorted(self.parquet.rglob(f".{DATA_FILE}.*.tmp"))
        for sub in ("rule_errors", "rule_runs"):
            if (self.root / sub).is_dir():
                out += [f for f in sorted((self.root / sub).glob("*.tmp")) if now - f.stat().st_mtime > TMP_GRACE_SECONDS]
        if self.locks_dir.is_dir():
            for lock in sorted(self.locks_dir.glob("*.lock")):
                if lock.stem.isdigit() and not self._owner_alive(int(lock.stem)):
                    out.append(lock)
        return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def is_out_of_space(exc: BaseException) -> bool:
    """An ``OSError`` ENOSPC/EDQUOT, or DuckDB's I/O error for the same (it does not raise OSError)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(exc)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
