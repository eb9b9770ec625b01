"""GX's fixed cost per run: the validate stage with and without the GX run speedups (``transforms/ingest/
expectations.py``, "Great Expectations internals"), alternating in one process on the same batches.

    .venv/bin/python bench/gx_runs.py --las 20                 # generates a landing area like bench/ingest.py
    .venv/bin/python bench/gx_runs.py --work DIR --reps 5      # reuses DIR/landing (e.g. bench/ingest.py --work DIR)

For each collection (default SSDA903 and the CIN census) it reads the batch once, then runs ``validate_batch``
``--reps`` times each way, alternating, and reports the fastest and the median of: the whole validate stage
(GX, typing, pseudonymising, staging, the DfE rules as received) and the part inside
``DuckdbValidator.validate`` (staging the batch into DuckDB and GX's runs). Both ways give the same results
(tests/test_gx_internals.py); on a shared machine compare the two columns of one run, not runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transforms.ingest import validate as V  # noqa: E402
from transforms.ingest.landing import batches, discover  # noqa: E402
from transforms.ingest.stages import read_batch, validate_batch  # noqa: E402
from transforms.store.repository import Repository  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--las", type=int, default=20)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--work", type=Path, default=None, help="folder holding landing/ (made if missing)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--collections", nargs="+", default=["ssda903", "cin_census"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="csreturns-gx-"))
    landing = work / "landing"
    if not landing.exists():
        from transforms.synthetic.generator import generate_landing

        generate_landing(landing, n_las=args.las, years=[args.year], scale=1.0, xml_903_every=0)
    repo_root = work / "gx-runs-repository"
    shutil.rmtree(repo_root, ignore_errors=True)
    repo = Repository(repo_root)

    inside = [0.0]
    validate = V.DuckdbValidator.validate

    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return validate(self, *a, **k)
        finally:
            inside[0] += time.perf_counter() - t

    V.DuckdbValidator.validate = timed
    validator = V.duckdb_validator()
    figures = {"load_average_at_start": [round(x, 1) for x in os.getloadavg()], "speedups_installed": validator.speedups,
               "collections": {}}
    arrivals = discover(landing)
    for batch in batches(arrivals):
        coll = batch[0].collection
        if coll not in args.collections:
            continue
        states = read_batch(repo, batch)
        validate_batch(repo, states)          # warm: suites, GX's registries, DuckDB
        runs = {True: [], False: []}
        for _ in range(args.reps):
            for fast in (True, False):
                validator.speedups, inside[0] = fast, 0.0
                t = time.perf_counter()
                validate_batch(repo, states)
                runs[fast].append((time.perf_counter() - t, inside[0]))
        validator.speedups = True
        out = {"files": len(batch)}
        for fast, label in ((True, "with_speedups"), (False, "plain_gx")):
            stage, gx = [r[0] for r in runs[fast]], [r[1] for r in runs[fast]]
            out[label] = {"validate_stage_s": {"min": round(min(stage), 2), "median": round(statistics.median(stage), 2)},
                          "staging_and_gx_s": {"min": round(min(gx), 2), "median": round(statistics.median(gx), 2)}}
        out["gx_ratio_plain_to_fast_min"] = round(out["plain_gx"]["staging_and_gx_s"]["min"]
                                                  / out["with_speedups"]["staging_and_gx_s"]["min"], 2)
        figures["collections"][coll] = out
        print(coll, json.dumps(out), flush=True)
    figures["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    shutil.rmtree(repo_root, ignore_errors=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
