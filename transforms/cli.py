"""``csreturns``: the same pipeline the Airflow DAGs run, from a shell, without a scheduler."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from transforms import schema


def _progress(i: int, n: int, row: dict) -> None:
    detail = f"{row['rows_loaded']}/{row['rows_in']} rows"
    if row["rows_quarantined"]:
        detail += f", {row['rows_quarantined']} quarantined"
    if row.get("reason") and row["status"] in ("rejected", "duplicate"):
        detail += f" - {row['reason']}"
    print(f"[{i}/{n}] {row['status']:<13} {row['relpath']}: {detail}", flush=True)


def cmd_ingest(args) -> int:
    from transforms.pipeline import ingest, summarise

    started = time.perf_counter()
    rows = ingest(Path(args.landing), Path(args.repo), collection=args.collection, only_new=args.only_new,
                  progress=None if args.quiet else _progress)
    print()
    summary = summarise(rows)
    print(summary.to_string() if not summary.empty else "nothing found in the landing area")
    print(f"\n{len(rows)} files in {time.perf_counter() - started:.1f}s; catalogue: "
          f"{Path(args.repo).resolve() / 'csreturns.duckdb'}")
    return 0


def cmd_refresh(args) -> int:
    from transforms.catalogue import publish
    from transforms.repository import Repository

    print(publish(Repository(args.repo)))
    return 0


def cmd_warn(args) -> int:
    """The live concerns, worst first, in plain words."""
    import duckdb

    with duckdb.connect(str(Path(args.repo) / "csreturns.duckdb"), read_only=True) as con:
        as_of = args.as_of or con.execute("SELECT max(as_of) FROM early_warning").fetchone()[0]
        if as_of is None:
            print("no early-warning signals: the repository holds no rolling 12-month indicators yet")
            return 0
        where, params = "WHERE e.as_of = ? AND e.direction = 'concern'", [as_of]
        if args.la:
            where += " AND e.la_code = ?"
            params.append(args.la)
        rows = con.execute(f"""
            SELECT e.la_code, e.method, e.severity, e.explanation, r.rank, r.score
            FROM early_warning e
            LEFT JOIN council_risk r ON r.la_code = e.la_code AND r.as_of = e.as_of
            {where}
            ORDER BY e.severity DESC, r.score DESC NULLS LAST, e.la_code, e.indicator, e.method""", params).fetchall()
    scope = f"council {args.la}" if args.la else "all councils"
    print(f"Live concerns at {as_of} for {scope}: {len(rows)}")
    for la_code, method, severity, explanation, rank, score in rows:
        print(f"  [{'!' * severity:<3}] {la_code} (risk rank {rank}, score {score:g}) {explanation} [{method}]")
    return 0


def cmd_docs(args) -> int:
    from transforms.docs import write_column_docs

    out = write_column_docs(Path(args.out))
    print(f"wrote {out}")
    return 0


def cmd_collections(args) -> int:
    for coll in schema.collections().values():
        changes = ", ".join(map(str, coll.change_years)) or "-"
        print(f"{coll.id:<12} {coll.owner:<10} {coll.cadence:<22} {coll.grain:<24} "
              f"{'/'.join(coll.formats):<8} changes: {changes}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csreturns", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="ingest every file under a landing folder and rebuild the catalogue")
    p.add_argument("landing", help="LANDING/<la_code>/... and LANDING/published/...")
    p.add_argument("--repo", required=True, help="repository folder (created if missing)")
    p.add_argument("--collection", help="only this collection id")
    p.add_argument("--only-new", action="store_true", help="skip files already in the ledger (same path and bytes)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("refresh", help="rebuild the DuckDB catalogue over the repository")
    p.add_argument("--repo", required=True)
    p.set_defaults(func=cmd_refresh)
    p = sub.add_parser("warn", help="print the live early-warning concerns, worst first")
    p.add_argument("--repo", required=True)
    p.add_argument("--as-of", help="month end (YYYY-MM-DD); default: the latest")
    p.add_argument("--la", help="only this council (3-digit LA code)")
    p.set_defaults(func=cmd_warn)
    p = sub.add_parser("docs", help="write the column dictionary generated from schemas/")
    p.add_argument("--out", default="docs/columns.md")
    p.set_defaults(func=cmd_docs)
    p = sub.add_parser("collections", help="list the declared collections")
    p.set_defaults(func=cmd_collections)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
