"""DfE validation rules at national scale: one return year of SSDA903 and CIN census returns for 153 councils.

Generates a synthetic landing area (two years, so last year's return is there for the rules that read it),
reads every return with csreturns' readers, normalises and types every column as far as each value allows
(what the rules see: the return as received, before quarantine), then runs every rule of the year in ONE
DuckDB connection:

- ``--mode batch`` (default): all councils' returns in one set of tables (each row carries its ``la_code``,
  child ids qualified by the council), every rule run once per collection;
- ``--mode per-return``: each return's tables created, checked and dropped in turn in the same connection.

Reports the seconds for the rules (the figure the 120 s budget is about), per collection and for the slowest
rules, and the floor measured in the same run: one ``SELECT count(*)`` per table in that connection.

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

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.parity.harness import typed_tables  # noqa: E402
from transforms import schema  # noqa: E402
from transforms.ingest import rules  # noqa: E402
from transforms.ingest.landing import identify  # noqa: E402
from transforms.synthetic.generator import generate_landing  # noqa: E402


def _qualified(frame: pd.DataFrame, la_code: str) -> pd.DataFrame:
    """A return's rows for a table holding every council's: ``la_code`` set, child ids made unique across councils."""
    out = frame.copy()
    out["la_code"] = la_code
    if "child_id" in out.columns:
        out["child_id"] = la_code + "/" + out["child_id"].astype("string")
    return out


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
        generated = generate_landing(landing, n_las=args.las, years=(args.year - 1, args.year), seed=args.seed,
                                     scale=args.scale, linked_returns=False, xml_903_every=0)
        generate_s = time.perf_counter() - started
        started = time.perf_counter()
        work = []
        rows = defaultdict(int)
        for r in returns_of(landing, args.year):
            current = typed_tables(r["collection"], r["files"], r["year"], landing)
            previous = (typed_tables(r["collection"], r["previous_files"], r["year"] - 1, landing)
                        if r["previous_files"] else {})
            rows[r["collection"]] += sum(len(f) for f in current.values())
            work.append((r, current, previous))
        read_s = time.perf_counter() - started

        con = rules._base().cursor()
        per_rule: dict[tuple[str, str], float] = defaultdict(float)
        per_collection: dict[str, float] = defaultdict(float)
        failures: dict[str, int] = defaultdict(int)
        per_rule_failures: dict[tuple[str, str], int] = defaultdict(int)
        floor_s = 0.0
        started = time.perf_counter()
        if args.mode == "batch":
            groups = defaultdict(list)
            for item in work:
                groups[item[0]["collection"]].append(item)
            batches = [(c, items) for c, items in groups.items()]
        else:
            batches = [(item[0]["collection"], [item]) for item in work]
        for collection_id, items in batches:
            coll = schema.collection(collection_id)
            t0 = time.perf_counter()
            views: dict[str, dict[str, str]] = {"": {}, "previous_": {}}
            for side, index in (("", 1), ("previous_", 2)):
                for name in coll.table_names:
                    frames = [_qualified(item[index][name], item[0]["la"]) for item in items if name in item[index]]
                    if frames:
                        view = f"_{side}{name}_df"
                        con.register(view, rules._case_frame(coll, name, pd.concat(frames, ignore_index=True)))
                        views[side][name] = f'"{view}"'
            rules.connect(coll, args.year, views[""], views["previous_"], items[0][0]["la"], con=con)
            f0 = time.perf_counter()
            for name in coll.table_names:
                con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            floor_s += time.perf_counter() - f0
            for rule in rules.rules(collection_id):
                if rule.applies_to(args.year):
                    t1 = time.perf_counter()
                    found = len(rules._run_rule(con, rule, args.year))
                    failures[collection_id] += found
                    per_rule_failures[(collection_id, rule.code)] += found
                    per_rule[(collection_id, rule.code)] += time.perf_counter() - t1
            for name in coll.table_names:
                con.execute(f'DROP TABLE IF EXISTS "{name}"; DROP TABLE IF EXISTS "previous_{name}"')
            con.execute("DROP TABLE IF EXISTS codes; DROP TABLE IF EXISTS temp.return_postcodes")
            for side in views.values():
                for view in side.values():
                    con.unregister(view.strip('"'))
            per_collection[collection_id] += time.perf_counter() - t0
        rules_s = time.perf_counter() - started
        con.close()
    slowest = sorted(per_rule.items(), key=lambda kv: -kv[1])[:10]
    result = {
        "councils": args.las, "year": args.year, "scale": args.scale, "mode": args.mode,
        "returns": len(work), "rows": dict(rows), "generate_s": round(generate_s, 1), "read_and_type_s": round(read_s, 1),
        "rules_s": round(rules_s, 1), "floor_s": round(floor_s, 2),
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
