"""DfE validation rules at national scale: one return year of SSDA903 and CIN census returns for 153 councils.

Generates a synthetic landing area (two years, so last year's return is there for the rules that read it),
reads every return as the ingest does (``rules.received_tables``: normalised, typed as far as each value
allows, nothing quarantined or minimised), then runs every rule of the year with ``rules.run_batch``:

- ``--mode batch`` (default): all councils' returns of a collection in one batch (one DuckDB connection,
  each rule one query over every council's rows);
- ``--mode per-return``: one batch per return (a connection and ~400 queries per return).

Reports the seconds for the rules (the figure the 120 s budget is about), per collection and for the slowest
rules.

Run: ``python bench/rules.py`` (``--las 20`` for a quick look). Results go to ``bench/README.md`` by hand.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transforms.ingest import rules  # noqa: E402
from transforms.ingest.landing import identify  # noqa: E402
from transforms.synthetic.generator import generate_landing  # noqa: E402


def returns_of(landing: Path, year: int) -> list[dict]:
    """Each council's SSDA903 and CIN returns of ``year``, with last year's files beside them."""
    found: dict[tuple[str, str, int], list[Path]] = defaultdict(list)
    for path in sorted(landing.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".csv", ".xml"):
            arrival = identify(path, landing)
            if arrival.collection in ("ssda903", "cin_census") and arrival.return_year in (year, year - 1):
                found[(arrival.collection, arrival.la_code, arrival.return_year)].append(path)
    return [dict(collection=c, la=la, year=y, files=files, previous_files=found.get((c, la, y - 1), []))
            for (c, la, y), files in sorted(found.items()) if y == year]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--las", type=int, default=153)
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--mode", choices=("batch", "per-return"), default="batch")
    parser.add_argument("--detail", action="store_true", help="failures per rule (to compare the two modes)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="csreturns-rules-bench-") as tmp:
        landing = Path(tmp) / "landing"
        started = time.perf_counter()
        generate_landing(landing, n_las=args.las, years=(args.year - 1, args.year), seed=args.seed,
                                     scale=args.scale, linked_returns=False, xml_903_every=0)
        generate_s = time.perf_counter() - started
        started = time.perf_counter()
        work = []
        rows = defaultdict(int)
        for r in returns_of(landing, args.year):
            current = rules.received_tables(r["collection"], r["files"], r["year"], landing)
            previous = (rules.received_tables(r["collection"], r["previous_files"], r["year"] - 1, landing)
                        if r["previous_files"] else {})
            rows[r["collection"]] += sum(len(f) for f in current.values())
            work.append(rules.ReturnTables(r["collection"], r["la"], r["year"], current, previous))
        read_s = time.perf_counter() - started

        per_rule: dict[tuple[str, str], float] = defaultdict(float)
        per_collection: dict[str, float] = defaultdict(float)
        failures: dict[str, int] = defaultdict(int)
        per_rule_failures: dict[tuple[str, str], int] = defaultdict(int)
        rules._base()  # the shared reference database: built once per process, not part of the checks
        started = time.perf_counter()
        if args.mode == "batch":
            groups = defaultdict(list)
            for item in work:
                groups[item.collection].append(item)
            batches = list(groups.items())
        else:
            batches = [(item.collection, [item]) for item in work]
        for collection_id, items in batches:
            t0 = time.perf_counter()
            timings: dict[str, float] = {}
            for found in rules.run_batch(items, timings):
                failures[collection_id] += len(found)
                for code, n in found["code"].value_counts().items():
                    per_rule_failures[(collection_id, code)] += int(n)
            for code, seconds in timings.items():
                per_rule[(collection_id, code)] += seconds
            per_collection[collection_id] += time.perf_counter() - t0
        rules_s = time.perf_counter() - started
    slowest = sorted(per_rule.items(), key=lambda kv: -kv[1])[:10]
    result = {
        "councils": args.las, "year": args.year, "scale": args.scale, "mode": args.mode,
        "returns": len(work), "rows": dict(rows), "generate_s": round(generate_s, 1), "read_and_type_s": round(read_s, 1),
        "rules_s": round(rules_s, 1),
        "per_collection_s": {k: round(v, 1) for k, v in per_collection.items()},
        "rules_run": {c: sum(r.applies_to(args.year) for r in rules.rules(c)) for c in ("ssda903", "cin_census")},
        "failures": dict(failures),
        "slowest_rules_s": [(f"{c} {code}", round(s, 2)) for (c, code), s in slowest],
        "failures_per_rule": {f"{c} {code}": n for (c, code), n in sorted(per_rule_failures.items()) if n}
        if args.detail else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
