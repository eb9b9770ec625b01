"""Ingest benchmark at national scale: one return year for 153 councils.

Generates a synthetic landing area (about 85,000 children looked after with their episodes and about
650,000 CIN referrals, and the same councils' Annex A, CSWW and SEN2 returns), ingests it through the same stage functions the DAG tasks call, and reports
rows/s per stage (the DfE validation rules included), peak memory, and the ratio to a floor: DuckDB reading the same SSDA903 CSVs into
Parquet with no checks at all. Run: ``make bench`` (or ``python bench/ingest.py --las 20`` for a quick look).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transforms.catalogue.build import publish  # noqa: E402
from transforms.ingest.landing import batches, discover  # noqa: E402
from transforms.ingest.rules import check_returns  # noqa: E402
from transforms.ingest.stages import load_batch, read_batch, validate_batch  # noqa: E402
from transforms.store.repository import Repository  # noqa: E402
from transforms.synthetic.generator import generate_landing  # noqa: E402


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory in MiB of this process, or (``RUSAGE_CHILDREN``) of the largest of its worker
    processes that has ended (the readers, the DfE rules' worker)."""
    return resource.getrusage(who).ru_maxrss / 1024


def duckdb_floor(arrivals, out: Path) -> tuple[float, int]:
    """DuckDB reading the same CSV files into Parquet, no checks, no typing beyond its own sniffing."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    rows = 0
    started = time.perf_counter()
    for i, a in enumerate(arrivals):
        path = a.path.as_posix().replace("'", "''")
        for encoding in ("utf-8", "latin-1"):  # DuckDB's built-in encodings; some councils send Windows-1252
            try:
                rows += con.execute(f"COPY (SELECT * FROM read_csv('{path}', all_varchar=true, header=true, "
                                    f"encoding='{encoding}')) TO '{out.as_posix()}/{i}.parquet' (FORMAT parquet)"
                                    ).fetchone()[0]
                break
            except duckdb.InvalidInputException:
                continue
    return time.perf_counter() - started, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--las", type=int, default=153)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="csreturns-bench-"))
    landing, repo_root = work / "landing", work / "repository"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(repo_root, ignore_errors=True)

    t0 = time.perf_counter()
    summary = generate_landing(landing, n_las=args.las, years=[args.year], scale=args.scale, xml_903_every=0)
    generate_s = time.perf_counter() - t0
    summary = {k: v for k, v in summary.items() if k not in ("las", "la_names")}
    print(f"generated in {generate_s:.1f}s: {summary}", flush=True)

    arrivals = discover(landing)
    csv_903 = [a for a in arrivals if a.collection == "ssda903" and a.format == "csv"]
    floor_s, floor_rows = duckdb_floor(csv_903, work / "floor")
    print(f"floor: DuckDB read {floor_rows} SSDA903 CSV rows into Parquet in {floor_s:.1f}s", flush=True)
    repo = Repository(repo_root)
    stage_s: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    rows: dict[str, int] = defaultdict(int)
    files: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    done = 0
    for batch in batches(arrivals):
        coll = batch[0].collection or "unrecognised"
        t = time.perf_counter()
        states = read_batch(repo, batch)
        stage_s[coll]["read"] += time.perf_counter() - t
        t = time.perf_counter()
        states = validate_batch(repo, states)
        stage_s[coll]["validate (GX on DuckDB, type, pseudonymise)"] += time.perf_counter() - t
        t = time.perf_counter()
        loaded = load_batch(repo, states)
        for row in loaded:
            rows[coll] += row["rows_in"]
            files[coll] += 1
        stage_s[coll]["load"] += time.perf_counter() - t
        t = time.perf_counter()
        check_returns(repo, loaded)
        stage_s[coll]["DfE rules"] += time.perf_counter() - t
        done += len(batch)
        print(f"  {done}/{len(arrivals)} files, {time.perf_counter() - started:.0f}s", flush=True)
    t = time.perf_counter()
    publish(repo)
    catalogue_s = time.perf_counter() - t
    ingest_s = time.perf_counter() - started

    ours_903 = sum(stage_s["ssda903"].values())
    ours_903_checks = ours_903 - stage_s["ssda903"].get("DfE rules", 0.0)

    figures = {
        "las": args.las, "year": args.year, "generate_s": round(generate_s, 1), "synthetic": summary,
        "files": dict(files), "rows": dict(rows), "total_rows": sum(rows.values()),
        "ingest_s": round(ingest_s, 1), "catalogue_s": round(catalogue_s, 2),
        "rows_per_s": round(sum(rows.values()) / ingest_s),
        "stages_s": {c: {k: round(v, 1) for k, v in s.items()} for c, s in stage_s.items()},
        "rows_per_s_by_collection": {c: round(rows[c] / sum(s.values())) for c, s in stage_s.items() if sum(s.values())},
        "floor_ssda903_csv_s": round(floor_s, 2), "floor_rows": floor_rows,
        "ssda903_s": round(ours_903, 1),
        "ratio_to_floor_ssda903": round(ours_903 / floor_s, 2) if floor_s else None,
        # read, GX, typing, pseudonymising and load, without the DfE rules (issue 12 makes those one pass)
        "ratio_to_floor_ssda903_without_rules": round(ours_903_checks / floor_s, 2) if floor_s else None,
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        "peak_rss_mib": round(peak_rss_mib()),
        "peak_rss_workers_mib": round(peak_rss_mib(resource.RUSAGE_CHILDREN)),
    }
    print(json.dumps(figures, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
