"""How the pipeline stages become Airflow tasks: one DAG per collection, generated from ``schemas/``.

Tasks map over file names and pass only small dicts of paths through XCom; the data itself moves through
the repository's staging area. The DAG files in ``dags/`` only call these builders.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from airflow.sdk import (
    Asset,
    AssetAny,
    Param,
    dag,
    get_current_context,
    task,
)

from transforms import schema, settings
from transforms.orchestration import alerts, policy, remote
from transforms.orchestration import settle as settle_module

# Catalogue rebuilds take this pool (one slot) so they queue in Airflow, visibly, instead of holding a
# worker slot while blocked on the repository's writer lock. Created by `airflow pools set` (see README).
WRITER_POOL = "csreturns_writer"


def collection_asset(collection_id: str) -> Asset:
    """Updated whenever a collection's partitions change; the repository refresh is scheduled on these."""
    return Asset(name=f"csreturns_{collection_id}", uri=f"file://csreturns/parquet/{collection_id}")


CATALOGUE_ASSET = Asset(name="csreturns_catalogue", uri="file://csreturns/catalogue")
REPORT_ASSET = Asset(name="csreturns_report", uri="file://csreturns/report")
# Emitted when files have been fetched from a remote landing area (fetch_<source> DAGs): the collection
# DAGs run on it as well as hourly, so a return fetched over SFTP or S3 is ingested without waiting.
LANDING_ASSET = Asset(name="csreturns_landing", uri="file://csreturns/landing")


def collection_ids() -> list[str]:
    """Every declared collection, plus the sweep that records files no collection recognises."""
    from transforms.ingest.landing import UNRECOGNISED

    return [*schema.collections(), UNRECOGNISED]


def _paths() -> tuple[Path, Path]:
    params = get_current_context()["params"]
    configured = settings.current()
    landing = params.get("landing") or configured.landing
    repo = params.get("repo") or configured.repo
    return Path(landing), Path(repo)


_PATH_PARAMS = {
    "landing": Param(None, type=["null", "string"], description="landing folder (default $CSRETURNS_LANDING)"),
    "repo": Param(None, type=["null", "string"], description="repository folder (default $CSRETURNS_REPO)"),
}


def _kind(coll: schema.Collection) -> str:
    """The policy tag for a collection: child-level returns, published statistics or reference lists."""
    if coll.is_published:
        return "published"
    if coll.kind == "reference":
        return "reference"
    return "child-level"


def collection_dag(collection_id: str):
    asset = collection_asset(collection_id)
    if collection_id in schema.collections():
        coll = schema.collection(collection_id)
        title, owner, doc, kind = coll.title, coll.owner, _doc(coll), _kind(coll)
    else:
        title, owner, kind = "files that no collection recognises", "csreturns", "unrecognised"
        doc = ("### Unrecognised files\n\nEvery file in the landing area that no schema claims is recorded "
               "in the ledger as rejected, with the reason, so nothing that arrives goes unseen.")

    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    schedule = AssetOrTimeSchedule(timetable=CronTriggerTimetable("@hourly", timezone="UTC"), assets=LANDING_ASSET)

    @dag(dag_id=f"collect_{collection_id}", schedule=schedule, max_active_runs=1,
         description=f"Ingest {title} from the landing area into the repository",
         params=_PATH_PARAMS, **policy.dag_args(kind, doc, tags=("collection", owner)))
    def collect():
        @task(show_return_value_in_logs=False)
        def discover() -> list[dict]:
            """New files of this collection (not in the ledger with the same path and bytes), grouped
            into submissions: one council's return for one year."""
            from transforms.ingest.landing import batches
            from transforms.ingest.landing import discover as find
            from transforms.store.repository import Repository

            landing, repo = _paths()
            arrivals = find(landing, collection_id, seen=Repository(repo).seen())
            groups = batches(arrivals, settings.current().batch_submissions)
            print(f"{len(arrivals)} new file(s) for {collection_id} under {landing} in {len(groups)} batch(es)")
            return [{"submission": _label(g), "arrivals": [a.to_dict() for a in g]} for g in groups]

        @task(map_index_template="{{ submission['submission'] }}", show_return_value_in_logs=False)
        def read(submission: dict) -> dict:
            """The submission's files read into raw tables under staging by ``read_batch``, as the CLI reads
            them, in this task's own process unless ``CSRETURNS_READ_WORKERS`` asks for more: the executor
            already runs a task per core, and the fork server ``read_batch`` starts its workers from is a new
            interpreter for every task process, which cost more than it saved here (bench/README.md,
            2026-11-30: a 2-council CIN batch read in 1.3-1.8 s in the task, 3.1-3.3 s with two workers)."""
            from transforms.ingest.landing import Arrival
            from transforms.ingest.stages import read_batch
            from transforms.store.repository import Repository

            repo = Repository(_paths()[1])
            files = []
            arrivals = [Arrival.from_dict(a) for a in submission["arrivals"]]
            for landed in read_batch(repo, arrivals, workers=settings.current().read_workers or 1):
                print(f"{landed.arrival.relpath}: {landed.rows_in} rows read"
                      + (f"; problem: {landed.problem}" if landed.problem else "")
                      + (f"; duplicate of {landed.duplicate_of}" if landed.duplicate_of else ""))
                files.append(landed.to_dict())
            return {"submission": submission["submission"], "files": files}

        @task(map_index_template="{{ submission['submission'] }}", show_return_value_in_logs=False)
        def validate(submission: dict) -> dict:
            from transforms.ingest.record import LandedFile
            from transforms.ingest.stages import validate_batch
            from transforms.store.repository import Repository

            # validate_batch logs each file's GX summary once (transforms.ingest.stages)
            files = validate_batch(Repository(_paths()[1]), [LandedFile.from_dict(f) for f in submission["files"]])
            _link_validations(files)
            return {"submission": submission["submission"], "files": [f.to_dict() for f in files]}

        @task(map_index_template="{{ submission['submission'] }}", show_return_value_in_logs=False)
        def load(submission: dict) -> list[dict]:
            from transforms.ingest.record import LandedFile
            from transforms.ingest.stages import load_batch
            from transforms.store.repository import Repository

            repo = Repository(_paths()[1])
            rows = []
            for row in load_batch(repo, [LandedFile.from_dict(landed) for landed in submission["files"]]):
                print(f"{row['relpath']}: {row['status']} ({row['rows_loaded']} loaded, "
                      f"{row['rows_quarantined']} quarantined of {row['rows_in']})"
                      + (f" - {row['reason']}" if row.get("reason") else ""))
                rows.append({k: row[k] for k in ("load_id", "relpath", "status", "rows_in", "rows_loaded",
                                                 "rows_quarantined", "collection", "la_code", "return_year")}
                            | {"reason": row.get("reason") or ""})
            return rows

        # Fails, without retrying, when a file was rejected whole: the run is not plain green, the task's log
        # and the failure e-mail name each file and why. Quarantined rows are listed but never fail it.
        @task(retries=0)
        def rejected_files(rows: list[list[dict]] | None = None) -> dict:
            """Files this run rejected whole, with their reasons, and files with quarantined rows: in the log,
            on the DAG run's note (``alerts.set_run_note``) and, when a file was rejected, the failure e-mail."""
            rows = [row for batch in _all(rows) if batch for row in batch]
            ti = get_current_context()["ti"]
            return alerts.report_rejections(collection_id, rows, ti.dag_id, ti.run_id)

        @task(show_return_value_in_logs=False)
        def check_rules(rows: list[dict]) -> list[dict]:
            """The DfE validation rules of every return still pending a check (this submission's, and any a
            killed task left: see transforms.ingest.resume), and each loaded file's error report under
            REPO/errors/<collection>/<la_code>/<year>/."""
            from transforms.ingest.error_report import write_file_reports
            from transforms.ingest.resume import run_pending
            from transforms.ingest.rules import check_returns
            from transforms.store.repository import Repository

            repo = Repository(_paths()[1])
            for run in check_returns(repo, rows) + run_pending(repo):
                print(f"rules {run['collection']} {run['la_code']} {run['return_year']}: {run['errors']} "
                      f"failure(s) of {run['rules_run']} rules in {run['seconds']}s")
            for path in write_file_reports(repo, rows):
                print(f"error report: {path}")
            return rows

        # all_done: a failed rule check (a bug in a rule) or one failed submission must not keep the rest of
        # the loaded data out of the catalogue; the failed task still shows red in the UI and e-mails.
        @task(outlets=[asset], trigger_rule="all_done")
        def publish(rows: list[dict] | None = None) -> dict:
            """Announce what changed: the repository refresh DAG is scheduled on this asset."""
            rows = [row for batch in _all(rows) if batch for row in batch]
            summary = {s: sum(1 for r in rows if r["status"] == s) for s in ("loaded", "partly_loaded", "rejected", "duplicate")}
            summary.update(files=len(rows), rows_loaded=sum(r["rows_loaded"] for r in rows),
                           rows_quarantined=sum(r["rows_quarantined"] for r in rows))
            print(f"{collection_id}: {summary}")
            get_current_context()["outlet_events"][asset].extra = summary
            return summary

        loaded = load.expand(submission=validate.expand(submission=read.expand(submission=discover())))
        check_rules.expand(rows=loaded) >> publish(loaded)
        rejected_files(loaded)

    return collect()


def _all(mapped) -> list:
    """Every item of a mapped task's output in one request: a slice, not iteration, which asks for one
    item after the last and logs a spurious "XCom not found ... offset=N" error."""
    return list(mapped[:]) if mapped else []


def _link_validations(files) -> None:
    """HTML pages of the GX results, reachable from the UI (plugin transforms/orchestration/plugins/csreturns_ui.py):
    the task log gets one link per file, the DAG run a "GX results" tab."""
    from airflow.sdk.configuration import conf

    from transforms.orchestration.plugins.validation_pages import (
        URL_PREFIX,
        publish_validations,
    )

    ti = get_current_context()["ti"]
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/") + URL_PREFIX
    # every file of the run, rejected ones too: the run's tab lists each with its fate (from the ledger)
    for path in publish_validations(_paths()[1], [f.load_id for f in files], ti.dag_id, ti.run_id):
        print(f"GX results: {base}/{path}")


def _label(group) -> str:
    first = group[0]
    councils = len({a.la_code for a in group if a.la_code})
    head = " ".join(p for p in (first.collection or "unrecognised", str(first.return_year or "")) if p)
    return f"{head}: {councils} council(s), {len(group)} file(s)"


def _doc(coll: schema.Collection) -> str:
    tables = ", ".join(f"`{coll.relation(t)}`" for t in coll.table_names) or "`published_statistics`"
    if coll.kind == "ees":  # one published dataset: its rows in published_statistics, plus a wide view
        tables = f"`published_statistics` (dataset `{coll.dataset}`) and the view `{coll.spec.get('view', coll.id)}`"
    declared = coll.path.relative_to(schema.SCHEMA_DIR) if coll.path.is_relative_to(schema.SCHEMA_DIR) else coll.path.name
    return (f"### {coll.title}\n\nOwner: {coll.owner}. Cadence: {coll.cadence}. Grain: {coll.grain}. "
            f"Formats: {', '.join(coll.formats)}.\n\nDeclared in `schemas/{declared}`; loads {tables}. "
            "Tasks: discover new files, read, validate (Great Expectations), load (atomic swap), check_rules "
            "(DfE validation rules per return, error report per file), publish (emits this collection's asset) "
            "and rejected_files, which fails, naming each file and its reason, when a file was rejected whole "
            "(a red run and a failure e-mail; the loaded data still reaches the catalogue).")


def repository_refresh_dag():
    # AssetAny: a list of assets would wait until *every* collection had changed.
    @dag(dag_id="repository_refresh", schedule=AssetAny(*[collection_asset(c) for c in collection_ids()]),
         max_active_runs=1,
         description="Rebuild the DuckDB catalogue (indicators, early warning, risk) and the HTML report when any collection's Parquet changes",
         params={"repo": Param(None, type=["null", "string"], description="repository folder (default $CSRETURNS_REPO)"),
                 "replica": Param(None, type=["null", "string"], description="s3://bucket/prefix (default $CSRETURNS_REPLICA_URL)")},
         **policy.dag_args("repository", retries=0, doc_md=(
             "### Repository refresh\n\nRuns when any collection DAG publishes changed partitions (its asset). "
             "Collections that land together are refreshed by one run: `settle` waits while any collection DAG "
             "run is queued or running (at most `CSRETURNS_REFRESH_SETTLE_SECONDS`), then clears the asset events "
             "Airflow held meanwhile to start another run (through the API connection `csreturns_airflow_api`; "
             "without it, that one more run skips `build_catalogue`, the catalogue already showing everything). "
             "Tasks: settle, build_catalogue (rebuilds the DuckDB catalogue beside the old one and swaps it in: views, "
             "indicators, early warning, council risk; pool `csreturns_writer`, one at a time), replicate_to_s3 "
             "(skipped unless `CSRETURNS_REPLICA_URL` is set) and write_report (the static HTML report).")))
    def refresh():
        # reschedule mode: between looks the sensor holds no worker slot (and no task token expires)
        @task.sensor(poke_interval=settle_module.POKE_SECONDS, mode="reschedule", timeout=7 * 24 * 3600)
        def settle():
            """Wait while any collection DAG run is queued or running, at most CSRETURNS_REFRESH_SETTLE_SECONDS
            from the start of this run, then clear the asset events held meanwhile for another run
            (``settle.release_held_events``), so collections landing together are refreshed by this one run."""
            from airflow.sdk import PokeReturnValue

            context = get_current_context()
            ti, run = context["ti"], context["dag_run"]
            active = sum(ti.get_dr_count(dag_id=f"collect_{c}", states=["queued", "running"]) for c in collection_ids())
            waited = (datetime.now(timezone.utc) - (run.start_date or datetime.now(timezone.utc))).total_seconds()
            outcome = settle_module.settled(active, waited, settings.current().refresh_settle_seconds)
            if outcome is None:
                print(f"{active} collection run(s) queued or running after {waited:.0f}s: waiting for them")
                return PokeReturnValue(is_done=False)
            print(outcome.describe())
            settle_module.release_held_events(run.dag_id, before=datetime.now(timezone.utc))
            return PokeReturnValue(is_done=True, xcom_value={"waited_seconds": round(outcome.waited),
                                                             "still_active": outcome.active})

        @task(outlets=[CATALOGUE_ASSET], pool=WRITER_POOL)
        def build_catalogue() -> str:
            from airflow.sdk.exceptions import AirflowSkipException

            from transforms.catalogue.build import publish
            from transforms.store.repository import Repository

            repo = Repository(_paths()[1])
            if repo.catalogue_is_current():
                raise AirflowSkipException("the catalogue already shows everything the repository holds (an "
                                           "earlier refresh of the same landing built it): nothing to rebuild")
            path = publish(repo)
            print(f"catalogue rebuilt: {path}")
            return str(path)

        @task(outlets=[REPORT_ASSET])
        def write_report(catalogue: str) -> dict:
            """The HTML early-warning report from the new catalogue, into $CSRETURNS_REPORT (default REPO/report)."""
            from transforms.report.html import write_report as write

            out = settings.current().report or _paths()[1] / "report"
            summary = write(Path(catalogue), out)
            summary = {**summary, "as_of": str(summary["as_of"])}
            print(f"report at {summary['as_of']}: {summary['councils']} council pages, {summary['charts']} charts "
                  f"in {summary['seconds']}s: {out / 'index.html'}")
            get_current_context()["outlet_events"][REPORT_ASSET].extra = summary
            return summary

        catalogue = build_catalogue()
        settle() >> catalogue
        replicate_to_s3(catalogue)
        write_report(catalogue)

    return refresh()


@task(retries=3)
def replicate_to_s3(_catalogue: str | None = None) -> dict:
    """Mirror the repository's partitions to S3-compatible storage for Spark, Trino or Athena (skipped when
    no replica is configured). Uploads changed files only; see transforms/replica.py."""
    from airflow.sdk.exceptions import AirflowSkipException

    from transforms.store.replica import replicate
    from transforms.store.repository import Repository

    configured = settings.current()
    url = get_current_context()["params"].get("replica") or configured.replica_url
    if not url:
        raise AirflowSkipException("no replica configured (CSRETURNS_REPLICA_URL or the param replica)")
    result = replicate(Repository(_paths()[1]), url, configured.replica_conn_id)
    print(f"replica {url}: {len(result['uploaded'])} uploaded, {len(result['deleted'])} deleted, "
          f"{result['unchanged']} unchanged of {result['partitions']} partitions")
    return {k: len(v) if isinstance(v, list) else v for k, v in result.items()}


def remote_fetch_dag(source):
    """``fetch_<source>``: wait for new or changed files on a remote landing area (``transforms.orchestration.remote``),
    fetch each once into the local landing area, reconcile with the ledger, and announce the landing."""
    @dag(dag_id=f"fetch_{source.name}", schedule=source.schedule, max_active_runs=1,
         description=f"Fetch returns from {source.kind.upper()} {source.path} (connection {source.conn_id})",
         params=_PATH_PARAMS, **policy.dag_args("remote", tags=(source.kind,), doc_md=(f"### Remote landing area `{source.name}`\n\n{source.kind.upper()} `{source.path}` through the "
                 f"Airflow connection `{source.conn_id}`. Tasks: wait for new or changed files (reschedule "
                 "mode, or deferred to the triggerer; skipped, not failed, when nothing arrives), fetch them "
                 "once by checksum into the landing area (retries with exponential backoff), reconcile what is "
                 "on the remote with the ledger, and emit `csreturns_landing`, on which the collection DAGs run.")))
    def fetch_source():
        wait_for_files = remote.RemoteFilesSensor(
            task_id="wait_for_files", source=source, poke_interval=source.poke_interval, timeout=source.wait_timeout,
            mode="reschedule", soft_fail=True, retries=2)

        @task(retries=4)
        def fetch(pending: int) -> dict:
            from transforms.orchestration.remote import fetch as fetch_files

            landing, repo = _paths()
            rows = fetch_files(source, landing, repo)
            for row in rows:
                print(f"{row['action']:<12} {row['remote_path']} -> {row['relpath']} ({row['size']} bytes, sha256 {row['sha256'][:12]})")
            return {a: sum(1 for r in rows if r["action"] == a) for a in ("fetched", "already_here")}

        @task(outlets=[LANDING_ASSET], retries=2)
        def reconcile(fetched: dict) -> dict:
            from transforms.orchestration.remote import reconcile as reconcile_files
            from transforms.orchestration.remote import summary

            landing, repo = _paths()
            rows = reconcile_files(source, landing, repo)
            for row in rows:
                print(f"{row['status']:<14} {row['relpath']}" + ("" if row["on_remote"] else " (no longer on the remote)"))
            counts = summary(rows)
            print(f"{source.name}: {counts}")
            get_current_context()["outlet_events"][LANDING_ASSET].extra = {"source": source.name, **fetched, **counts}
            return counts

        reconcile(fetch(wait_for_files.output))

    return fetch_source()


def fetch_ees_dag():
    """``fetch_ees``: poll DfE's EES public API for new versions of the datasets schemas/ declare with a
    ``data_set_id``, land each new version's CSV once under LANDING/published/ (``transforms.orchestration.ees_api``)."""
    from transforms.orchestration import ees_api

    @dag(dag_id="fetch_ees", schedule="0 6 * * *", max_active_runs=1,
         description="Fetch new versions of published statistics from DfE's EES API (connection ees_api)",
         params=_PATH_PARAMS, **policy.dag_args("published", tags=("ees-api",), retries=4, doc_md=(
             "### Published statistics from the EES API\n\nOwner of the data: DfE (Explore Education Statistics). "
             "For each EES dataset declared in `schemas/ees/` with its `data_set_id`, `check_versions` asks the "
             "API (`GET /v1/data-sets/{id}`) for its latest version, and `fetch_new_versions` downloads each "
             "version not yet in the fetch manifest once (`/csv?dataSetVersion=`), lands it as "
             "`LANDING/published/<name>_v<version>.csv` and emits `csreturns_landing`, on which the collection "
             "DAGs run. HTTP connection `ees_api` (host `https://api.education.gov.uk/statistics`); transient "
             "failures are retried with exponential backoff. Skipped when no dataset declares an id.")))
    def fetch_ees():
        @task
        def check_versions() -> list[dict]:
            from airflow.sdk.exceptions import AirflowSkipException

            datasets = ees_api.declared()
            if not datasets:
                raise AirflowSkipException("no EES dataset in schemas/ees/ declares a data_set_id")
            checked = ees_api.check_versions(ees_api.EesApi.from_connection(), datasets, _paths()[0])
            for item in checked:
                print(f"{item['dataset']} ({item['data_set_id']}): latest version {item['version']} "
                      f"published {item['published'] or '?'}" + (" - new" if item["new"] else " - already here"))
            return checked

        @task(outlets=[LANDING_ASSET])
        def fetch_new_versions(checked: list[dict]) -> dict:
            rows = ees_api.fetch_new_versions(ees_api.EesApi.from_connection(), checked, _paths()[0])
            for row in rows:
                print(f"landed {row['relpath']} ({row['bytes']} bytes, sha256 {row['sha256'][:12]}): "
                      f"{row['dataset']} version {row['version']}")
            summary = {"checked": len(checked), "fetched": len(rows)}
            get_current_context()["outlet_events"][LANDING_ASSET].extra = {"source": "ees_api", **summary}
            return summary

        fetch_new_versions(check_versions())

    return fetch_ees()


# -- the daily DAG -------------------------------------------------------------------------------------
def returns_due_dag():
    @dag(dag_id="returns_due", schedule="0 7 * * *", max_active_runs=1,
         description="E-mail the statutory returns that are past their due date",
         **policy.dag_args("alerts", retries=0, doc_md=("### Returns due\n\nExpected returns: every council in the ledger x every collection whose "
                 "schema declares `due`, for each year since the council first appears. A return is overdue once "
                 "its due date has passed and no file of it has loaded. The list goes to `CSRETURNS_ALERT_EMAIL` "
                 "and the run fails (no retries) so it shows red until the returns arrive."),
         params={"repo": Param(None, type=["null", "string"], description="repository folder (default $CSRETURNS_REPO)"),
                 "today": Param(None, type=["null", "string"], description="check as at this date (YYYY-MM-DD)")}))
    def returns_due():
        @task
        def check_overdue_returns() -> int:
            params = get_current_context()["params"]
            repo = params.get("repo") or settings.current().repo
            today = date.fromisoformat(params["today"]) if params.get("today") else datetime.now(timezone.utc).date()
            return len(alerts.check_returns_due(repo, today))

        check_overdue_returns()

    return returns_due()
