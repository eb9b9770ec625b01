"""``make demo``: a synthetic landing area run through the collection DAGs by Airflow itself.

Embedded default: SQLite metadata database and LocalExecutor under ``var/airflow``, a local landing folder,
DAGs run with ``airflow dags test`` (each task really executed by Airflow, one after another). Airflow's
own logs go to ``var/logs``; the terminal shows progress and, at the end, what was loaded and quarantined.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
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


def _watch(ledger_dir: Path, expected: int, label: str, stop: threading.Event) -> None:
    start_count = len(list(ledger_dir.glob("*.parquet"))) if ledger_dir.exists() else 0
    last = -1
    while not stop.wait(3):
        done = (len(list(ledger_dir.glob("*.parquet"))) if ledger_dir.exists() else 0) - start_count
        if done != last:
            _say(f"    {label}: {done}/{expected} files recorded")
            last = done


# Barking and Dagenham and nine of its ten statistical neighbours (DfE's 2025 model, ../shared/reference/
# statistical_neighbours/sn_model_2025_wide.csv), so the README's neighbours query compares 301 with councils
# the demo really holds. The README's example queries use 301; tests/test_readme.py runs them on the first four.
DEMO_COUNCILS = ("301", "308", "821", "313", "333", "336", "307", "304", "312", "874")
README_COUNCIL = "301"


def prepare_landing(landing: Path, *, la_codes: tuple[str, ...] = DEMO_COUNCILS, years=(2023, 2024, 2025),
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
    tree.write(str(target), xml_declaration=True, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landing", type=Path, default=ROOT / "var" / "landing")
    parser.add_argument("--repo", type=Path, default=ROOT / "var" / "repository")
    parser.add_argument("--las", type=int, default=len(DEMO_COUNCILS),
                        help=f"how many of the demo councils ({', '.join(DEMO_COUNCILS)}) to generate")
    parser.add_argument("--years", type=int, nargs="+", default=[2023, 2024, 2025])
    parser.add_argument("--shared", type=Path, default=settings.current().shared)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    landing, repo = args.landing.resolve(), args.repo.resolve()
    var = ROOT / "var"
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(var / "airflow"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "transforms" / "orchestration" / "plugins"))  # GX results in the UI
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{var / 'airflow' / 'airflow.db'}")
    env.setdefault("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "3600")
    env.update(CSRETURNS_LANDING=str(landing), CSRETURNS_REPO=str(repo), GX_ANALYTICS_ENABLED="False")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)

    from transforms import schema
    from transforms.ingest.landing import UNRECOGNISED, discover
    from transforms.store.repository import Repository

    if not landing.exists() or not any(landing.iterdir()):
        _say(f"1/4 generating a synthetic landing area: {args.las} councils x {len(args.years)} years "
             f"(SSDA903 CSV/XML, CIN census, CSWW and SEN2 XML, Annex A XLSX), published EES files and "
             f"statistical neighbours from {args.shared / 'reference'}")
        summary = prepare_landing(landing, la_codes=DEMO_COUNCILS[:args.las], years=args.years, shared=args.shared)
        files = sum(1 for f in landing.rglob("*") if f.is_file())
        _say(f"    {files} files for {', '.join(summary['la_names'].values())}: "
             f"{summary['referrals']:,} CIN referrals, children looked after at 31 March "
             f"{', '.join(f'{y}: {n:,}' for y, n in summary['cla_31_march'].items())} "
             f"({summary['faulty_rows']:,} rows deliberately faulty) in {summary['seconds']:.0f}s; "
             f"one file to be rejected: {summary['rejected'].relative_to(landing)}")
    else:
        _say(f"1/4 landing area {landing} already holds files; using them (make clean to start afresh)")

    _say(f"2/4 preparing Airflow's metadata database (SQLite) in {env['AIRFLOW_HOME']}")
    logs = var / "logs"
    _airflow(["db", "migrate"], logs / "airflow-db-migrate.log", env)

    task_logs = Path(env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", Path(env["AIRFLOW_HOME"]) / "logs"))
    _say(f"3/4 running the collection DAGs through Airflow, one process for all runs; each task's log is in "
         f"{task_logs} (the Airflow UI shows it), Airflow's own output in {logs / 'airflow-demo.log'}")
    from transforms.orchestration.local_runs import output_to

    ledger_dir = Repository(repo).ledger_dir
    runs: list[dict] = []
    with output_to(logs / "airflow-demo.log"):
        from airflow.models.pool import Pool

        from transforms.orchestration.dags import WRITER_POOL
        from transforms.orchestration.local_runs import Runner

        Pool.create_or_update_pool(WRITER_POOL, 1, "csreturns: one catalogue writer at a time", include_deferred=False)
        t0 = time.perf_counter()
        runner = Runner()
        _say(f"    Airflow parsed the DAG folder in {time.perf_counter() - t0:.0f}s")

        def run(dag_id: str, pending: int) -> None:
            stop = threading.Event()
            watcher = threading.Thread(target=_watch, args=(ledger_dir, pending, dag_id, stop), daemon=True)
            watcher.start()
            try:
                result = runner.run(dag_id)
            finally:
                stop.set()
                watcher.join()
            runs.append(result)
            failed = sorted(t for t, states in result["tasks"].items() if "failed" in states)
            _say(f"    {dag_id}: run {result['state']} in {result['seconds']:.0f}s"
                 + (f" (failed: {', '.join(failed)}; see its log)" if failed else ""))

        seen = Repository(repo).seen()
        for collection_id in [*schema.collections(), UNRECOGNISED]:
            pending = len(discover(landing, collection_id, seen=seen))
            if pending:  # the scheduler would run the others hourly to find nothing; here that is only time lost
                _say(f"  collect_{collection_id}: {pending} new file(s)")
                run(f"collect_{collection_id}", pending)
        resubmitted = [p for p in landing.glob("*/cin_census/*_resubmission.xml")]
        if not resubmitted and any(landing.glob("*/cin_census/CIN_Census_*.xml")):
            path = land_resubmission(landing)
            _say(f"  a council resubmits its CIN census after the first load: {path.relative_to(landing)}")
            run("collect_cin_census", 1)
        _say("4/4 refreshing the repository catalogue and writing the report (DAG repository_refresh)")
        run("repository_refresh", 0)

    _report(Repository(repo))
    _next_steps(Repository(repo), env, runs)
    _say(f"\nDone in {time.perf_counter() - started:.0f}s.")
    return 0


def _report(repo) -> None:
    import duckdb

    with duckdb.connect(str(repo.catalogue_path), read_only=True) as con:
        _say("\nWhat the repository received, per collection:")
        _say(con.execute("""
            SELECT coalesce(collection, '(unrecognised)') AS collection, count(*) AS files,
                   count(*) FILTER (status = 'loaded') AS loaded, count(*) FILTER (status = 'partly_loaded') AS partly,
                   count(*) FILTER (status = 'rejected') AS rejected, count(*) FILTER (status = 'duplicate') AS duplicate,
                   sum(rows_in)::BIGINT AS rows_in, sum(rows_loaded)::BIGINT AS rows_loaded, sum(rows_quarantined)::BIGINT AS rows_quarantined
            FROM load_ledger GROUP BY ALL ORDER BY 1""").df().to_string(index=False))
        _say("\nMost common reasons rows were quarantined:")
        _say(con.execute("""SELECT table_name, rule, count(*) AS rows FROM quarantine
                            GROUP BY ALL ORDER BY rows DESC LIMIT 8""").df().to_string(index=False))
        latest = con.execute("SELECT max(as_of) FROM early_warning").fetchone()[0]
        if latest:
            _say(f"\nCouncils by early-warning risk at {latest} (details: csreturns warn --repo {repo.root}):")
            _say(con.execute("""SELECT rank, la_code, score, top_reasons[1] AS main_reason FROM council_risk
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
