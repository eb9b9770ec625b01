"""``make demo``: a synthetic landing area run through the collection DAGs by Airflow itself.

Embedded default: SQLite metadata database and LocalExecutor under ``var/airflow``, a local landing folder,
DAGs run as ``airflow dags test`` runs them (each task really executed by Airflow, its log where the UI reads
it), several DAG runs at once, one per core, each in its own warm Airflow process
(``transforms.orchestration.local_runs.RunnerPool``). Airflow's own logs go to ``var/logs``; the terminal
shows progress, where each run's time went and, at the end, what was loaded and quarantined.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from transforms import settings
from transforms.ingest.readers.text import decode

ROOT = Path(__file__).resolve().parents[2]


_terminal = None


def _say(text: str) -> None:
    """Print to the terminal, even while a task's output (file descriptors 1 and 2) goes to its log."""
    global _terminal
    if _terminal is None:
        _terminal = os.fdopen(os.dup(1), "w", buffering=1)
    print(text, file=_terminal, flush=True)


def _airflow(args: list[str], log: Path, env: dict) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        result = subprocess.run([sys.executable, "-m", "airflow", *args], stdout=fh, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed; see {log}")


def _watch(ledger_dir: Path, expected: int, stop: threading.Event) -> None:
    """Every 10 s, when it has changed, how many of the ``expected`` new files the ledger has recorded."""
    start_count = len(list(ledger_dir.glob("*.parquet"))) if ledger_dir.exists() else 0
    last = 0
    while not stop.wait(10):
        done = (len(list(ledger_dir.glob("*.parquet"))) if ledger_dir.exists() else 0) - start_count
        if done != last:
            _say(f"    {done}/{expected} new files recorded")
            last = done


# Barking and Dagenham and its two closest statistical neighbours (DfE's 2025 model, ../shared/reference/
# statistical_neighbours/sn_model_2025_wide.csv), so the README's neighbours query compares 301 with councils
# the demo really holds; every other council, England included, comes in the published statistics. More
# councils show nothing new and cost minutes: each return goes through read, validate, load and the DfE rules.
# The README's example queries use 301; tests/test_readme.py runs them on a repository of these councils.
DEMO_COUNCILS = ("301", "308", "821")
DEMO_YEARS = (2023, 2024, 2025)
README_COUNCIL = "301"


def prepare_landing(landing: Path, *, la_codes: tuple[str, ...] = DEMO_COUNCILS, years=DEMO_YEARS,
                    shared: Path | None = None) -> dict:
    """Write the demo's landing area: synthetic returns of ``la_codes`` for ``years`` in their real formats, the
    published EES files and statistical neighbours from ``shared/reference`` when present, and one file that is
    rejected whole (``land_rejected_file``). Returns ``generate_landing``'s summary plus ``rejected`` (its path)."""
    from transforms.synthetic.generator import generate_landing

    shared = shared or settings.current().shared
    ees = shared / "reference" / "ees"
    summary = generate_landing(landing, la_codes=la_codes, years=years, ees_source=ees if ees.exists() else None)
    neighbours = shared / "reference" / "statistical_neighbours"
    for source in sorted(neighbours.glob("*.csv")):  # reference data: who each council compares with
        target = landing / "reference" / "statistical_neighbours" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    summary["rejected"] = land_rejected_file(landing)
    return summary


def land_rejected_file(landing: Path) -> Path:
    """A council resends its latest SSDA903 episodes table without the DECOM and RNE columns (a spreadsheet
    export that lost them): the file is recognised as SSDA903 episodes and rejected whole ("required column
    missing"), the rows already loaded stay. Returns the file's path. Raises ``FileNotFoundError`` when the
    landing area holds no SSDA903 episodes CSV."""
    episodes = sorted(landing.glob("*/ssda903/year=*/episodes.csv"))
    if not episodes:
        raise FileNotFoundError(f"no SSDA903 episodes CSV under {landing} to derive a rejected file from")
    source = episodes[-1]
    text, _ = decode(source.read_bytes())
    rows = list(csv.reader(io.StringIO(text)))
    drop = {i for i, name in enumerate(rows[0]) if name in ("DECOM", "RNE")}
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([v for i, v in enumerate(row) if i not in drop] for row in rows)
    target = source.with_name("episodes_resent.csv")
    target.write_text(out.getvalue(), encoding="utf-8")
    return target


def land_resubmission(landing: Path, la_code: str | None = None) -> Path:
    """A council resubmits its latest CIN census after the first load: the same return with a later
    ``Header/Source/DateTime``, serial number 002 and its last child removed (a case recorded in error). Loaded
    after the original, it replaces that return's rows. Returns the new file's path; raises
    ``FileNotFoundError`` when there is no CIN census XML to resubmit."""
    from lxml import etree

    pattern = f"{la_code or '*'}/cin_census/CIN_Census_*.xml"
    originals = sorted(p for p in landing.glob(pattern) if "resubmission" not in p.name)
    if not originals:
        raise FileNotFoundError(f"no CIN census XML under {landing} to resubmit")
    source = originals[-1]
    tree = etree.parse(str(source))
    children = tree.find("Children")
    children.remove(children.findall("Child")[-1])
    source_el = tree.find("Header/Source")
    source_el.find("SerialNo").text = "002"
    stamp = source_el.find("DateTime")
    stamp.text = stamp.text[:10] + "T16:45:00"
    target = source.with_name(source.stem + "_resubmission.xml")
    partial = target.with_name(f".{target.name}.partial")  # hidden until whole: DAGs running now never see half
    tree.write(str(partial), xml_declaration=True, encoding="utf-8")
    partial.replace(target)
    return target


def timings(result: dict) -> str:
    """Where a run's time went: each task's summed seconds (mapped instances together, with their count) in the
    order the tasks ran, and the rest of the run's wall time (Airflow between tasks: scheduling, XCom, sync)."""
    parts = []
    for task_id, seconds in result["task_seconds"].items():
        count = sum(result["tasks"].get(task_id, {}).values())
        parts.append(f"{task_id} {seconds:.1f}s" + (f" ({count}x)" if count > 1 else ""))
    rest = result["seconds"] - sum(result["task_seconds"].values())
    return ", ".join(parts + [f"Airflow between tasks {rest:.1f}s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landing", type=Path, default=ROOT / "var" / "landing")
    parser.add_argument("--repo", type=Path, default=ROOT / "var" / "repository")
    parser.add_argument("--las", type=int, default=len(DEMO_COUNCILS),
                        help=f"how many of the demo councils ({', '.join(DEMO_COUNCILS)}) to generate")
    parser.add_argument("--years", type=int, nargs="+", default=list(DEMO_YEARS))
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="DAG runs at once, each in its own Airflow process (default: the cores this process may use)")
    parser.add_argument("--shared", type=Path, default=settings.current().shared)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    landing, repo = args.landing.resolve(), args.repo.resolve()
    var = ROOT / "var"
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(var / "airflow"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "transforms" / "orchestration" / "plugins"))  # GX results in the UI
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    # several processes write the SQLite metadata database: each waits up to 60 s for the other's write
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{var / 'airflow' / 'airflow.db'}?timeout=60")
    env.setdefault("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "3600")
    env.update(CSRETURNS_LANDING=str(landing), CSRETURNS_REPO=str(repo), GX_ANALYTICS_ENABLED="False")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    logs = var / "logs"

    from transforms.orchestration.local_runs import RunnerPool
    from transforms.store.repository import Repository

    workers = max(1, args.workers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # as Ctrl-C: the pool's processes go too
    with RunnerPool(workers, logs / "airflow-demo.log") as pool:
        # Airflow prepares its metadata database, then starts its processes, while this one generates the
        # landing area and finds the new files in it
        database = threading.Thread(target=_prepare_airflow, args=(logs, env, pool), daemon=True)
        database.start()
        if not landing.exists() or not any(landing.iterdir()):
            _say(f"1/4 generating a synthetic landing area: {args.las} councils x {len(args.years)} years "
                 f"(SSDA903 CSV/XML, CIN census, CSWW and SEN2 XML, Annex A XLSX), published EES files and "
                 f"statistical neighbours from {args.shared / 'reference'}; meanwhile Airflow prepares its "
                 f"metadata database (SQLite) in {env['AIRFLOW_HOME']}")
            summary = prepare_landing(landing, la_codes=DEMO_COUNCILS[:args.las], years=args.years, shared=args.shared)
            files = sum(1 for f in landing.rglob("*") if f.is_file())
            _say(f"    {files} files for {', '.join(summary['la_names'].values())}: "
                 f"{summary['referrals']:,} CIN referrals, children looked after at 31 March "
                 f"{', '.join(f'{y}: {n:,}' for y, n in summary['cla_31_march'].items())} "
                 f"({summary['faulty_rows']:,} rows deliberately faulty) in {summary['seconds']:.0f}s; "
                 f"one file to be rejected: {summary['rejected'].relative_to(landing)}")
        else:
            _say(f"1/4 landing area {landing} already holds files; using them (make clean to start afresh)")
        plan = pending_runs(landing, repo)
        steps["landing area"] = time.perf_counter() - started
        _say(f"2/4 {sum(n for n, _ in plan.values())} new file(s) for {len(plan)} collection DAG(s)")
        database.join()
        if _database_failed:
            raise SystemExit(_database_failed[0])
        steps["Airflow's database (after the landing area)"] = time.perf_counter() - started - steps["landing area"]
        task_logs = Path(env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", Path(env["AIRFLOW_HOME"]) / "logs"))
        _say(f"3/4 running them through Airflow, {workers} at a time, each of {workers} processes running one DAG "
             f"after another (most files first); each task's log is in {task_logs} (the Airflow UI shows it), "
             f"Airflow's own output in {logs / 'airflow-demo.log'}")
        t0 = time.perf_counter()
        runs = run_collections(pool, plan, landing, Repository(repo).ledger_dir)
        steps[f"DAG runs ({workers} at a time)"] = time.perf_counter() - t0
    _report(Repository(repo))
    _next_steps(Repository(repo), env, runs)
    steps["summary"] = time.perf_counter() - started - sum(steps.values())
    _say(f"\nDone in {time.perf_counter() - started:.0f}s: "
         + ", ".join(f"{step} {seconds:.0f}s" for step, seconds in steps.items()) + ".")
    return 0


_database_failed: list[str] = []


def _prepare_airflow(logs: Path, env: dict, pool) -> None:
    """``airflow db migrate`` and the catalogue writers' pool (one slot), each by Airflow's own command, then
    ``pool.start()``: its processes start up (imports, DAG parsing) meanwhile."""
    from transforms.orchestration.dags import WRITER_POOL

    try:
        _airflow(["db", "migrate"], logs / "airflow-db-migrate.log", env)
        _airflow(["pools", "set", WRITER_POOL, "1", "csreturns: one catalogue writer at a time"],
                 logs / "airflow-db-migrate.log", env)
    except SystemExit as exc:
        _database_failed.append(str(exc))
        return
    pool.start()


def pending_runs(landing: Path, repo: Path) -> dict[str, tuple[int, int]]:
    """The collection DAGs that have new files under ``landing`` (not yet in ``repo``'s ledger), most files
    first (every file is read, validated and loaded on its own), then most bytes: ``{dag_id: (files, bytes)}``. The landing area is identified once, each file given to the DAG that takes
    it (``landing.taken_by``): the scheduler would run the other DAGs hourly to find nothing."""
    from transforms.ingest.landing import discover, taken_by
    from transforms.store.repository import Repository

    plan: dict[str, list[int]] = {}
    for arrival in discover(landing, seen=Repository(repo).seen()):
        counts = plan.setdefault(f"collect_{taken_by(arrival)}", [0, 0])
        counts[0] += 1
        counts[1] += arrival.bytes or 0
    return {dag_id: (n, size) for dag_id, (n, size) in sorted(plan.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))}


def run_collections(pool, plan: dict[str, tuple[int, int]], landing: Path, ledger_dir: Path) -> list[dict]:
    """Run each planned DAG in ``pool`` (a ``RunnerPool``), print each run as it ends with
    where its time went; after the first CIN census run, land a council's resubmission and run that DAG again;
    when every collection has run, ``repository_refresh``. Returns ``Runner.run``'s dict of every run."""
    from concurrent.futures import FIRST_COMPLETED, wait

    runs: list[dict] = []
    resubmit = "collect_cin_census" in plan and not any(landing.glob("*/cin_census/*_resubmission.xml"))
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(ledger_dir, sum(n for n, _ in plan.values()) + resubmit, stop),
                               daemon=True)
    pending = {pool.submit(dag_id): dag_id for dag_id in plan}
    watcher.start()
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                dag_id = pending.pop(future)
                runs.append(_said(future.result()))
                if dag_id == "collect_cin_census" and resubmit:
                    resubmit = False
                    path = land_resubmission(landing)
                    _say(f"  a council resubmits its CIN census after the first load: {path.relative_to(landing)}")
                    pending[pool.submit(dag_id)] = dag_id
    finally:
        stop.set()
        watcher.join()
    _say("4/4 refreshing the repository catalogue and writing the report (DAG repository_refresh)")
    runs.append(_said(pool.submit("repository_refresh").result()))
    return runs


def _said(result: dict) -> dict:
    failed = sorted(t for t, states in result["tasks"].items() if "failed" in states)
    _say(f"  {result['dag_id']}: run {result['state']} in {result['seconds']:.0f}s"
         + (f" (failed: {', '.join(failed)}; see its log)" if failed else ""))
    _say(f"      {timings(result)}")
    return result


def _report(repo) -> None:
    import duckdb

    with duckdb.connect(str(repo.catalogue_path), read_only=True) as con:
        _say("\nWhat the repository received, per collection:")
        _say(con.execute("""
            SELECT coalesce(collection, '(unrecognised)') AS collection, count(*) AS files,
                   count(*) FILTER (status = 'loaded') AS loaded, count(*) FILTER (status = 'partly_loaded') AS partly,
                   count(*) FILTER (status = 'superseded') AS superseded,
                   count(*) FILTER (status = 'rejected') AS rejected, count(*) FILTER (status = 'duplicate') AS duplicate,
                   sum(rows_in)::BIGINT AS rows_in, sum(rows_loaded)::BIGINT AS rows_loaded, sum(rows_quarantined)::BIGINT AS rows_quarantined
            FROM load_ledger GROUP BY ALL ORDER BY 1""").df().to_string(index=False))
        _say("\nMost common reasons rows were quarantined:")
        _say(con.execute("""SELECT table_name, rule, count(*) AS rows FROM quarantine
                            GROUP BY ALL ORDER BY rows DESC LIMIT 8""").df().to_string(index=False))
        latest = con.execute("SELECT max(as_of) FROM early_warning").fetchone()[0]
        if latest:
            _say(f"\nCouncils by early-warning risk at {latest} (details: csreturns warn --repo {repo.root}):")
            _say(con.execute("""SELECT rank, la_code, round(score, 2) AS score, top_reasons[1] AS main_reason FROM council_risk
                                WHERE as_of = ? ORDER BY rank, la_code LIMIT 5""", [latest]).df().to_string(index=False))


def _next_steps(repo, env: dict, runs: list[dict]) -> None:
    """Where to look next: the report, the catalogue from Python and from the DuckDB CLI, the Airflow UI."""
    here = Path.cwd()

    def short(path: Path) -> str:
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    bin_dir = Path(sys.executable).parent
    catalogue = short(repo.catalogue_path)
    report = settings.current().report_dir / "index.html"
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    red = sorted({r["dag_id"] for r in runs if "failed" in r["tasks"].get("rejected_files", {})})
    duckdb_cli = bin_dir / "duckdb"
    _say("\nWhere to look next:")
    _say(f"  the report (no server needed):  {short(report)}")
    _say(f"  live warnings:                  {short(bin_dir / 'csreturns')} warn --repo {short(repo.root)}")
    _say(f"  the catalogue from Python:      {short(bin_dir / 'python')} -c \"import duckdb; "
         f"print(duckdb.connect('{catalogue}', read_only=True).sql('SELECT * FROM council_risk "
         f"ORDER BY as_of DESC, rank LIMIT 10'))\"")
    _say(f"  the catalogue in the DuckDB CLI: {short(duckdb_cli) if duckdb_cli.exists() else 'duckdb'} -readonly "
         f"{catalogue}   (then e.g. SELECT relation, description FROM relations; README.md has more queries)")
    _say("  the Airflow UI:                 make ui, then open http://localhost:8080 and log in as admin with the "
         f"password it prints (also kept in {short(passwords)})")
    if red:
        _say(f"  runs that rejected files:       {', '.join(red)} (task rejected_files is red; its log lists "
             "each file and why)")


if __name__ == "__main__":
    sys.exit(main())
