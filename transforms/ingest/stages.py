"""The ingest stages for landed files: read -> validate -> load, each persisting its output under staging.

One ``LandedFile`` record per file goes through them (``transforms.ingest.record``). The Airflow tasks call
the stages one by one, passing the records through XCom as small dicts; ``transforms.run`` calls them in
a row for the command line. Either way it is the same code.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms import schema
from transforms.ingest.landing import Arrival, printable, records_in
from transforms.ingest.normalise import normalise_table
from transforms.ingest.privacy import Pseudonymiser, protect_arrow, protect_raw
from transforms.ingest.readers import RawTables, UnreadableFile
from transforms.ingest.readers.csv_tables import read_table
from transforms.ingest.readers.ees import read_ees, to_long
from transforms.ingest.readers.xml_records import read_records
from transforms.ingest.record import LandedFile, TableOutcome
from transforms.ingest.validate import (
    build_ees_suite,
    build_published_suite,
    build_suite,
    file_outcome,
    split,
    typed_arrow,
)
from transforms.store.repository import (
    PUBLISHED_SCHEMA,
    QUARANTINE_SCHEMA,
    Load,
    Partition,
    Repository,
    new_load_id,
)

log = logging.getLogger(__name__)



# -- read ------------------------------------------------------------------------------------------
PARALLEL_MIN_BYTES = 4 << 20   # a batch smaller than this is read in-process: starting workers costs more
NORMALISED_KEY = b"csreturns.normalised"   # Parquet metadata of a staged table made canonical when read


def read_stage(repo: Repository, arrival: Arrival, load_id: str | None = None) -> LandedFile:
    """Read a landed file into raw text tables under staging; note duplicates and unreadable files.

    Never raises for a bad file: an unreadable or unrecognised one comes back with ``problem`` set.
    ``load_id``: the id to read under (``read_batch`` gives them out in the parent process).
    """
    landed = _screen(repo, arrival, load_id)
    return landed if landed.problem or landed.duplicate_of else _parse(repo, landed)


def read_batch(repo: Repository, arrivals: list[Arrival], workers: int | None = None) -> list[LandedFile]:
    """``read_stage`` for every file of a batch, in the order given, the files parsed in up to ``workers``
    processes at once (default ``CSRETURNS_READ_WORKERS``, resolved by ``Settings.read_processes``).

    The results are those of ``read_stage`` one file after another: the load ids are given out here in
    the same order, and this process screens each file (refused, undated, duplicate) and owns every staging
    folder (its pid marks them live, ``Repository.staging_dir``); a worker only parses a file and writes its
    raw tables into the folder. With one worker, one file to parse or fewer than ``PARALLEL_MIN_BYTES``
    landed, everything happens in this process. Workers come from a fork server (this process may hold
    DuckDB's and Arrow's threads, which a plain fork would copy mid-state) and stay for the next batch of
    this process (``_read_pool``: a pool's start costs 0.5-1.5 s, about a tenth of a national batch's read;
    a kept pool found with a dead worker, killed while idle, is replaced and the batch read once more);
    as with any such pool, a script calling this must keep its top level under
    ``if __name__ == "__main__":`` (workers import the main module).
    """
    from transforms import settings

    workers = settings.current().read_processes if workers is None else workers
    screened = [_screen(repo, a) for a in arrivals]
    todo = [i for i, landed in enumerate(screened) if not (landed.problem or landed.duplicate_of)]
    size = sum(screened[i].arrival.bytes or 0 for i in todo)
    if workers <= 1 or len(todo) < 2 or size < PARALLEL_MIN_BYTES:
        for i in todo:
            screened[i] = _parse(repo, screened[i])
        return screened
    for i in todo:
        repo.staging_dir(screened[i].load_id)
    order = sorted(todo, key=lambda i: -(screened[i].arrival.bytes or 0))   # largest first: shortest makespan
    given = [screened[i] for i in order]
    while True:
        kept = _kept_pool()
        pool = _read_pool(workers)
        try:
            done = list(pool.map(_parse_in_worker, [str(repo.root)] * len(order), given))
            break
        except BaseException as exc:
            _drop_read_pool()   # waits for the files in hand; a worker that died leaves a pool no batch can use
            if pool is not kept or not isinstance(exc, BrokenProcessPool):
                raise
            # a worker kept from an earlier batch had died (killed while idle): once more, with new workers
            log.warning("a kept read worker process had died; reading the batch with new ones")
    for i, landed in zip(order, done):
        screened[i] = landed
    return screened


_POOL: tuple[int, int, object] | None = None    # (pid of the owner, workers, ProcessPoolExecutor)
_POOL_LOCK = threading.Lock()


def _own_pool():
    """``_POOL``'s executor if this process started it (not one inherited through a fork), else None.
    Call under ``_POOL_LOCK``."""
    return _POOL[2] if _POOL is not None and _POOL[0] == os.getpid() else None


def _read_pool(workers: int):
    """This process's pool of ``workers`` read workers, started on first use (its processes as tasks
    need them) and kept for later batches; a pool of another size, or one inherited through a fork, is
    not reused."""
    global _POOL
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with _POOL_LOCK:
        own = _own_pool()
        if own is not None and _POOL[1] == workers and not own._broken:
            return own
        if own is not None:
            own.shutdown(wait=True)
        context = multiprocessing.get_context("forkserver")   # no fork of a process holding DuckDB's or Arrow's threads
        context.set_forkserver_preload([__name__, "transforms.ingest.rules"])
        _POOL = (os.getpid(), workers, ProcessPoolExecutor(workers, mp_context=context))
        return _POOL[2]


def _drop_read_pool() -> None:
    """Shut this process's read pool down: files not started are cancelled, those being parsed finished
    (as leaving a ``with ProcessPoolExecutor`` block did); the next batch starts a new pool."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _own_pool(), None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _kept_pool():
    """This process's read pool if a batch has started one (``_read_pool``) and none of its workers is known
    to have died, else None."""
    with _POOL_LOCK:
        own = _own_pool()
        return own if own is not None and not own._broken else None


def _screen(repo: Repository, arrival: Arrival, load_id: str | None = None) -> LandedFile:
    """The checks before parsing: a file refused at discovery, without a return year, or already loaded
    comes back settled (``problem`` or ``duplicate_of`` set)."""
    landed = LandedFile(load_id=load_id or new_load_id(), arrival=arrival)
    if arrival.problem:
        return landed.reject(arrival.problem, _count_csv_rows(arrival))
    if arrival.return_year is None and arrival.collection != "published":
        return landed.reject("cannot tell the return year: put the file under a year=YYYY folder",
                             _count_csv_rows(arrival))
    duplicate = repo.loaded_copy_of(arrival.sha256)
    if duplicate:
        landed.duplicate_of = duplicate
    return landed


def _parse(repo: Repository, landed: LandedFile) -> LandedFile:
    """Parse the file and stage its tables; an unreadable file is rejected with the reader's reason.

    A council's table is staged canonical (``normalise_table``, its counts on ``landed.normalised``, the
    Parquet file marked ``NORMALISED_KEY``), so this work runs in the read workers, in parallel;
    published statistics are staged as published."""
    arrival = landed.arrival
    try:
        raw = _read(arrival)
    except (UnreadableFile, ValueError) as exc:
        return landed.reject(str(exc), _count_csv_rows(arrival))
    staging = repo.staging_dir(landed.load_id) / "raw"
    staging.mkdir(parents=True, exist_ok=True)
    coll = schema.collection(arrival.collection)
    for name, table in raw.tables.items():
        path = staging / f"{name}.parquet"
        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        if not coll.is_published:
            table, counts = normalise_table(table, coll.table(name, arrival.return_year))
            for key, n in counts.items():
                landed.normalised[key] = landed.normalised.get(key, 0) + n
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), NORMALISED_KEY: b"1"})
        pq.write_table(table, path)
        landed.raw[name] = str(path)
    landed.rows_in, landed.meta = raw.rows, raw.meta
    return landed


def staged_table(landed: LandedFile, name: str, spec: schema.Table | None) -> pa.Table:
    """A file's staged table ``name`` with cosmetic variants made canonical: as the read stage staged it
    (``NORMALISED_KEY`` in its Parquet metadata), or normalised here when it was staged raw (a staging
    area written before this change), counted on ``landed.normalised``. ``spec`` None (published
    statistics): the cells as published."""
    table = pq.read_table(landed.raw[name])
    if spec is not None and NORMALISED_KEY not in (table.schema.metadata or {}):
        table, counts = normalise_table(table, spec)
        for key, n in counts.items():
            landed.normalised[key] = landed.normalised.get(key, 0) + n
    return table


def _parse_in_worker(repo_root: str, landed: LandedFile) -> LandedFile:
    return _parse(Repository(repo_root), landed)


def _read(arrival: Arrival) -> RawTables:
    coll = schema.collection(arrival.collection)
    if arrival.format == "ees_csv":
        return read_ees(arrival.path, coll)
    if arrival.format == "csv" and coll.kind == "reference":
        from transforms.ingest.readers.reference import read_reference_csv
        return read_reference_csv(arrival.path, coll, coll.table(arrival.table, arrival.return_year))
    if arrival.format == "csv":
        return read_table(arrival.path, coll.table(arrival.table, arrival.return_year))
    year = arrival.return_year
    tables = [t for t in coll.tables(year) if year is None or t.collected_in(year)]
    if arrival.format == "ods":
        from transforms.ingest.readers.ods import read_ods_tables
        return read_ods_tables(arrival.path, coll)
    if arrival.format == "xlsx":
        from transforms.ingest.readers.xlsx import read_xlsx
        return read_xlsx(arrival.path, coll, tables)
    return read_records(arrival.path, coll, tables, arrow=True)


def _count_csv_rows(arrival: Arrival) -> int:
    """Rows in a rejected file, so the ledger still accounts for every record that arrived
    (``transforms.ingest.landing.records_in``: data lines of a CSV, record elements of an XML)."""
    return records_in(arrival)


# -- validate --------------------------------------------------------------------------------------
BATCH_COLUMN = "_file"


def validate_stage(repo: Repository, landed: LandedFile) -> LandedFile:
    return validate_batch(repo, [landed])[0]


def validate_batch(repo: Repository, files: list[LandedFile]) -> list[LandedFile]:
    """Run the schema's GX suites; stage each file's clean rows (typed, pseudonymised) and quarantined rows;
    and the DfE rules on the returns as received (every row, typed by the same DuckDB query).

    Files of the same table and year are validated together, one GX run over all their rows, because
    GX's fixed cost per run (building its metric graph, ~0.5 s) dwarfs its cost per row. Uniqueness is
    checked within each file, and each file's rows are split back out afterwards.

    Every table is typed first (``validate.typed_arrow``, DuckDB); the DfE rules then run on those typed
    tables (``_RulesAsReceived``: in a kept read worker beside GX when there is one) while GX checks the same
    rows and the files are staged here. The rules never stop the batch (``_rules_as_received``); the call
    returns when both are done.
    """
    pseudonymiser = Pseudonymiser.for_repository(repo.root)
    received: dict[tuple[str, str], pa.Table] = {}   # (load_id, table) -> every row typed, for the DfE rules
    groups: dict[tuple, list[LandedFile]] = {}
    quarantine: dict[str, list[dict]] = {}      # load_id -> quarantined rows, staged once per file
    for landed in files:
        if not landed.readable:
            continue
        arrival = landed.arrival
        quarantine[landed.load_id] = []
        for name in landed.raw:
            key = (arrival.collection, name, arrival.return_year,
                   arrival.relpath if arrival.collection == "published" else None)
            groups.setdefault(key, []).append(landed)
    prepared = []
    for (collection_id, name, year, _), members in groups.items():
        coll = schema.collection(collection_id)
        spec = None if coll.is_published else coll.table(name, year)
        parts = [staged_table(m, name, spec) for m in members]
        raw = pa.concat_tables([t.append_column(BATCH_COLUMN, pa.array(np.full(t.num_rows, i, np.int64)))
                                for i, t in enumerate(parts)], promote_options="permissive")
        typed_all = None
        if spec is not None and raw.num_rows:
            typed_all = typed_arrow(raw, spec, coll.date_format)
            batch_of = typed_all[BATCH_COLUMN]
            for i, landed in enumerate(members):
                received[(landed.load_id, name)] = typed_all.filter(pc.equal(batch_of, i)).drop_columns([BATCH_COLUMN])
        prepared.append((coll, spec, name, members, raw, typed_all))
    rules = _RulesAsReceived(repo, files, received)
    try:
        for coll, spec, name, members, raw, typed_all in prepared:
            if spec is None:
                suite = _published_suite(coll, members[0])
            else:
                suite = build_suite(spec, coll.date_format, batch_column=BATCH_COLUMN)
            verdict = split(raw, name, suite, typed_all=typed_all)
            files_clean = verdict.clean.to_pandas().groupby(BATCH_COLUMN) if spec is None else None  # published, by file
            clean_rows = {c["values"]: c["counts"] for c in pc.value_counts(verdict.clean[BATCH_COLUMN]).to_pylist()}
            quarantined = dict(tuple(verdict.quarantined.groupby(BATCH_COLUMN))) if len(verdict.quarantined) else {}
            for i, landed in enumerate(members):
                clean = files_clean.get_group(i) if files_clean is not None and i in clean_rows else None
                _stage_file(repo, landed, coll, spec, name, verdict, i, len(members), pseudonymiser,
                            quarantine[landed.load_id], clean, clean_rows.get(i, 0),
                            quarantined.get(i, verdict.quarantined.iloc[:0]))
        for landed in files:
            rows = quarantine.get(landed.load_id)
            if rows:
                path = repo.staging_dir(landed.load_id) / "quarantine_rows.parquet"
                pq.write_table(pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA), path)
                landed.quarantine_rows = str(path)
    except BaseException:
        rules.abandon()
        raise
    rules.finish()
    return files


class _RulesAsReceived:
    """The DfE rules on the returns as received (``_rules_as_received``) beside the rest of validation.

    When this process keeps a pool of read workers (``_read_pool``: the command line's ingest, which read
    the batch through it), the rules run in one of them while GX checks the batch here: DuckDB's rule
    queries and GX's Python then use two cores instead of taking turns on one interpreter lock. Otherwise
    (an Airflow task, whose read ran in another task) they run here when ``finish`` is called: starting
    workers would cost more than it saves. The worker's summaries are logged here, so the log reads the
    same either way. If validation fails, ``abandon`` leaves them: their verdicts are only staged, and the
    next check of the same return replaces them."""

    def __init__(self, repo: Repository, files: list[LandedFile], typed: dict[tuple[str, str], pa.Table]) -> None:
        from transforms.ingest.rules import rules

        self.repo, self.files, self.typed, self.future = repo, files, typed, None
        pool = _kept_pool()
        if pool is not None and typed and any(f.readable and rules(f.arrival.collection) for f in files):
            try:
                self.future = pool.submit(_rules_in_worker, str(repo.root), files, typed, _settings_environ())
            except RuntimeError:   # the pool was shut down (a failed read) or a worker died: check here
                self.future = None
                _drop_read_pool()  # the next batch starts new workers

    def abandon(self) -> None:
        if self.future is not None:
            self.future.cancel()   # a job a worker has started runs on; it only stages verdicts

    def finish(self) -> None:
        if self.future is None:
            _log_rules(*_rules_as_received(self.repo, self.files, self.typed))
            return
        try:
            outcome = self.future.result()
        except Exception as exc:  # noqa: BLE001 - the worker died: check here, as without one
            log.warning("DfE rules' worker process failed (%s); checking in this process", type(exc).__name__)
            _drop_read_pool()
            outcome = _rules_as_received(self.repo, self.files, self.typed)
        _log_rules(*outcome)


def _settings_environ() -> dict[str, str]:
    """This process's ``CSRETURNS_*`` variables (``transforms.settings``; the pseudonymisation key among them)."""
    return {k: v for k, v in os.environ.items() if k.startswith("CSRETURNS_")}


def _rules_in_worker(repo_root: str, files: list[LandedFile], typed: dict, environ: dict[str, str]
                     ) -> tuple[list[dict], str | None]:
    """``_rules_as_received`` in a read worker, under the validating process's settings ``environ``: a worker
    has the environment its fork server started with, and a key set since would give other tokens."""
    for k in [k for k in os.environ if k.startswith("CSRETURNS_") and k not in environ]:
        del os.environ[k]
    os.environ.update(environ)
    return _rules_as_received(Repository(repo_root), files, typed)


def _rules_as_received(repo: Repository, files: list[LandedFile], typed: dict | None
                       ) -> tuple[list[dict], str | None]:
    """The DfE rules on each return the batch brings, as received: every row (also those the row checks
    quarantine), before minimisation (``rules.check_received``; ``typed``: each file's tables as the
    validation typed them, by load id and table; only verdicts are kept, published by the ``check_rules``
    step after the load). Returns ``check_received``'s summaries, and the kind of failure if the rules could
    not run (None if they ran): then the batch still validates and loads, and ``check_rules`` checks the
    return from the repository (where the bug then raises). Only the kind of failure is logged, never its
    text (it could quote a value of the return)."""
    from transforms.ingest.rules import RuleError, check_received

    try:
        return check_received(repo, files, typed), None
    except Exception as exc:  # noqa: BLE001 - the rules must not stop the batch's rows from loading
        return [], str(exc).split(":", 1)[0] if isinstance(exc, RuleError) else type(exc).__name__


def _log_rules(runs: list[dict], failure: str | None) -> None:
    for run in runs:
        log.info("DfE rules on %s %s %s as received: %s failure(s)", run["collection"], run["la_code"],
                 run["return_year"], run["errors"])
    if failure:
        log.error("DfE rules could not run on the returns as received (%s); they run after the load", failure)


def _published_suite(coll: schema.Collection, landed: LandedFile):
    """An EES file is checked against its dataset's schema (schemas/ees/) where one declares it."""
    measures = landed.meta["measures"].split(",")
    owner = schema.ees_collection_of(landed.arrival.dataset)
    if owner:
        return build_ees_suite(schema.collection(owner), measures)
    return build_published_suite(coll, measures)


def _stage_file(repo: Repository, landed: LandedFile, coll: schema.Collection, spec: schema.Table | None,
                name: str, verdict, index: int, batch_size: int, pseudonymiser: Pseudonymiser,
                quarantine: list[dict], clean: pd.DataFrame | None, clean_rows: int,
                quarantined: pd.DataFrame) -> None:
    """Stage file ``index`` of a validated batch: ``clean`` its clean rows (published statistics only;
    None otherwise or when it has none), ``clean_rows`` how many, ``quarantined`` its quarantined rows."""
    arrival, load_id = landed.arrival, landed.load_id
    if spec is None:
        clean = (verdict.clean.slice(0, 0).to_pandas() if clean is None else clean).drop(columns=BATCH_COLUMN)
        arrow = _published_arrow(clean, coll, arrival, landed.meta, load_id)
    else:
        target = spec.arrow_schema()
        if verdict.typed is None:         # no rows in the batch: nothing was staged in DuckDB
            arrow = target.empty_table()
        else:
            typed = verdict.typed.filter(pc.equal(verdict.typed[BATCH_COLUMN], index))   # typed in DuckDB
            typed = protect_arrow(typed, spec, arrival.la_code, pseudonymiser)
            typed = typed.append_column("load_id", pa.array([load_id] * typed.num_rows, pa.string()))
            arrow = typed.select(target.names).cast(target)
    clean_path = repo.write_staged(arrow, repo.staging_dir(load_id) / "clean" / f"{name}.parquet", load_id)
    rows_in = clean_rows + len(quarantined)
    outcome = file_outcome(verdict.gx_result, list(quarantined["failures"]) if len(quarantined) else [], rows_in)
    stats = outcome["statistics"]
    batch = f", validated in one GX run with {batch_size - 1} other file(s)" if batch_size > 1 else ""
    summary = (f"{name}: {rows_in} rows, {clean_rows} clean, {len(quarantined)} quarantined "
               f"(GX suite {verdict.gx_result.get('suite_name', '')}: {stats['successful_expectations']}/"
               f"{stats['evaluated_expectations']} expectations met by this file{batch})")
    results_dir = repo.validations / load_id
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(
        {"file": arrival.relpath, "rows_in": rows_in, "rows_quarantined": len(quarantined),
         "validated_with_files": batch_size, "file_outcome": outcome, "gx": verdict.gx_result},
        default=str))   # no indent: Python's json encodes in C only without one (a batch's result, once per file)
    log.info("GX %s %s", printable(arrival.relpath), summary)
    for row in quarantined.to_dict("records"):
        failing = {f["field"] for f in row["failures"]}
        quarantine.append({
            "load_id": load_id, "collection": coll.id, "table_name": spec.relation if spec else coll.spec["relation"],
            "la_code": arrival.la_code, "return_year": arrival.return_year,
            "source_row": int(row["source_row"]), "field": row["field"], "rule": row["rule"],
            "message": row["message"], "failures": row["failures"],
            "raw": _as_map(protect_raw(row["raw"], spec, arrival.la_code, pseudonymiser, failing))})
    landed.tables[name] = TableOutcome(rows_in=rows_in, rows_loaded=clean_rows, rows_quarantined=len(quarantined),
                                       gx_success=bool(not len(quarantined) and verdict.structure_ok),
                                       clean=str(clean_path), summary=summary)


RAW_KEEP = 1000   # characters of a quarantined cell kept in ``raw``; a longer one is described, not kept


def _as_map(raw: dict) -> list[tuple[str, str | None]]:
    """A quarantined row's protected cells as the quarantine's ``raw`` map; a cell longer than ``RAW_KEEP``
    (a botched export's 50 MB field) is kept as its length only."""
    out = []
    for k, v in raw.items():
        text = None if v is None else str(v)
        if text is not None and len(text) > RAW_KEEP:
            text = f"<{len(text)} characters, not kept>"
        out.append((str(k), text))
    return out


def _published_arrow(clean: pd.DataFrame, coll: schema.Collection, arrival: Arrival, meta: dict,
                     load_id: str) -> pa.Table:
    _, dataset = coll.dataset_for(arrival.path.name)
    long = to_long(clean, meta["measures"].split(","), [b for b in meta["breakdowns"].split(",") if b],
                   coll.spec["key_columns"], {str(s).lower() for s in coll.spec["suppression_symbols"]})
    end_month, end_day = (int(x) for x in dataset.get("period", {}).get("end", "03-31").split("-"))
    lag = dataset.get("published", {}).get("months_after_period_end", coll.spec["default_publication_lag_months"])
    periods = {p: period_end(p, end_month, end_day) for p in long["time_period"].dropna().unique()}
    long["period_end"] = long["time_period"].map(periods)
    published = {p: (pd.Timestamp(d) + pd.DateOffset(months=lag)).date() for p, d in periods.items()}
    long["published_on"] = long["time_period"].map(published)
    long["load_id"] = load_id
    long["source_row"] = long["source_row"].astype("int64")
    for col in ("old_la_code", "new_la_code", "region_code", "la_name"):
        long[col] = long[col].astype(object).where(long[col].notna(), None)
    return pa.Table.from_pandas(long[[f.name for f in PUBLISHED_SCHEMA]], schema=PUBLISHED_SCHEMA,
                                preserve_index=False)


def period_end(time_period: str, month: int, day: int) -> date:
    """EES periods are a year (2025) or a span (201718, ending in 2018); the dataset says which day ends it."""
    text = str(time_period)
    year = int(text[:4])
    if len(text) == 6:
        year = (year // 100) * 100 + int(text[4:])
        year += 100 if year < int(text[:4]) else 0
    return date(year, month, day)


# -- load ------------------------------------------------------------------------------------------
def load_stage(repo: Repository, landed: LandedFile) -> dict:
    """Commit one file under the writer lock (``load_batch`` of one file)."""
    return load_batch(repo, [landed])[0]


def load_batch(repo: Repository, files: list[LandedFile]) -> list[dict]:
    """Commit a batch's files under the writer lock, as ONE repository commit (``Repository.commit_many``:
    one journal entry, each folder and manifest shard synced once): swap partitions, keep the quarantine,
    write one ledger row per file. Each file is judged as if the files before it were committed (a
    duplicate of an earlier file's bytes, a later file of the same partition replacing an earlier one).
    Returns the ledger rows, in the order given."""
    rows, loads = [], []
    with repo.writer_lock():
        batch = _BatchView(repo)
        for landed in files:
            row, load = _load_row(repo, landed, batch)
            rows.append(row)
            loads.append(load)
            batch.add(row, load)
        repo.commit_many(loads)
    return rows


class _BatchView:
    """The repository as it will be once the loads judged so far are committed (duplicates, current loads)."""

    def __init__(self, repo: Repository) -> None:
        self.repo, self.loaded_sha, self.current, self.staged = repo, {}, {}, {}

    def loaded_copy_of(self, sha256: str) -> str | None:
        return self.loaded_sha.get(sha256) or self.repo.loaded_copy_of(sha256)

    def current_load(self, partition: Partition) -> str | None:
        if partition in self.current:
            return self.current[partition]
        return self.repo.current_load(partition)

    def add(self, row: dict, load: Load) -> None:
        if row.get("status") in ("loaded", "partly_loaded"):
            self.loaded_sha.setdefault(row["sha256"], row["load_id"])
        for partition, staged in load.replacements.items():
            self.current[partition] = row["load_id"] if staged else None
            self.staged[partition] = staged

    def held_file(self, partition: Partition) -> Path | None:
        """The Parquet file that will hold ``partition``'s rows: staged earlier in this batch, or committed."""
        if partition in self.staged:
            return self.staged[partition]
        path = self.repo.partition_file(partition)
        return path if path.exists() else None


def _load_row(repo: Repository, landed: LandedFile, batch: _BatchView) -> tuple[dict, Load]:
    arrival, load_id = landed.arrival, landed.load_id
    row = {"load_id": load_id, "path": str(arrival.path), "relpath": arrival.relpath,
           "sha256": arrival.sha256, "bytes": arrival.bytes, "format": arrival.format,
           "collection": arrival.collection, "table": arrival.table, "tables": list(arrival.tables),
           "dataset": arrival.dataset, "la_code": arrival.la_code, "return_year": arrival.return_year,
           "year_source": arrival.year_source, "received_at": landed.received_at, "gx_success": None,
           "reason": None, "duplicate_of": None, "replaces": [], "normalised": dict(landed.normalised)}
    duplicate = landed.duplicate_of or (batch.loaded_copy_of(arrival.sha256) if landed.problem is None else None)
    if duplicate:
        row.update(status="duplicate", rows_in=0, rows_loaded=0, rows_quarantined=0, duplicate_of=duplicate,
                   reason=f"same bytes as load {duplicate}; nothing changed")
        return row, Load(load_id, {}, row, None)
    if landed.problem is not None:
        rows_in = landed.rows_in
        row.update(status="rejected", rows_in=rows_in, rows_loaded=0, rows_quarantined=rows_in,
                   reason=landed.problem, gx_success=False)
        return row, Load(load_id, {}, row, _file_rejection(landed))
    tables = landed.tables
    rows_in = sum(t.rows_in for t in tables.values())
    rows_loaded = sum(t.rows_loaded for t in tables.values())
    rows_quarantined = sum(t.rows_quarantined for t in tables.values())
    quarantine = pq.read_table(landed.quarantine_rows) if landed.quarantine_rows else None
    row.update(rows_in=rows_in, rows_loaded=rows_loaded, rows_quarantined=rows_quarantined,
               gx_success=all(t.gx_success for t in tables.values()))
    if not rows_loaded:   # never replace a return that has rows with one that has none (issue 11)
        kept = "; earlier data kept" if any(batch.current_load(_partition(arrival, n)) for n in tables) else ""
        reason = ("every row failed validation" if rows_in else "the file holds no data rows") + kept
        row.update(status="rejected", reason=reason)
        return row, Load(load_id, {}, row, quarantine)
    older = _older_release(batch, arrival, tables)
    if older:   # the whole file is refused: its rows count as quarantined (rows_in = loaded + quarantined)
        row.update(status="rejected", rows_loaded=0, rows_quarantined=rows_in, reason=older)
        return row, Load(load_id, {}, row, quarantine)
    replacements = {}
    for name, info in tables.items():
        partition = _partition(arrival, name)
        previous = batch.current_load(partition)
        if previous:
            row["replaces"].append(previous)
        replacements[partition] = Path(info.clean) if info.rows_loaded else None
    row["replaces"] = sorted(set(row["replaces"]))
    row["status"] = "partly_loaded" if rows_quarantined else "loaded"
    return row, Load(load_id, replacements, row, quarantine)


def _older_release(batch: _BatchView, arrival: Arrival, tables: dict) -> str | None:
    """Why a published file must not replace the release held, or None: a dataset is held as its latest
    release (each gives every year as revised by then), so a file whose latest period ends before the held
    one's is an earlier release, landed late or in the wrong order, and the held release is kept."""
    if arrival.collection != "published" or "published_statistics" not in tables:
        return None
    partition = _partition(arrival, "published_statistics")
    held, held_file = batch.current_load(partition), batch.held_file(partition)
    info = tables["published_statistics"]
    if not held or not info.clean or held_file is None:
        return None

    def latest(path) -> date | None:
        return pc.max(pq.read_table(path, columns=["period_end"])["period_end"]).as_py()

    new, old = latest(info.clean), latest(held_file)
    if new is not None and old is not None and new < old:
        return (f"an earlier release of {arrival.dataset} (latest period ending {new}) than the one held "
                f"(ending {old}, load {held}): the held release is kept")
    return None


def _partition(arrival: Arrival, table: str) -> Partition:
    if arrival.collection == "published":
        return Partition("published", "published_statistics", dataset=arrival.dataset)
    if schema.collection(arrival.collection).kind == "reference":  # national: one partition per year, no LA
        return Partition(arrival.collection, table, dataset=str(arrival.return_year))
    return Partition(arrival.collection, table, arrival.la_code, arrival.return_year)


def _file_rejection(landed: LandedFile) -> pa.Table:
    arrival = landed.arrival
    return pa.Table.from_pylist([{
        "load_id": landed.load_id, "collection": arrival.collection, "table_name": None,
        "la_code": arrival.la_code, "return_year": arrival.return_year, "source_row": None, "field": None,
        "rule": "file_rejected", "message": f"{arrival.relpath}: {landed.problem}", "failures": [],
        "raw": [("path", arrival.relpath), ("rows", str(landed.rows_in))]}], schema=QUARANTINE_SCHEMA)
