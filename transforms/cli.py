"""``csreturns``: the same pipeline the Airflow DAGs run, from a shell, without a scheduler."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date, timedelta
from pathlib import Path


def _progress(i: int, n: int, row: dict) -> None:
    detail = f"{row['rows_loaded']}/{row['rows_in']} rows"
    if row["rows_quarantined"]:
        detail += f", {row['rows_quarantined']} quarantined"
    if row.get("reason") and row["status"] in ("rejected", "duplicate"):
        detail += f" - {row['reason']}"
    from transforms.ingest.landing import printable
    print(f"[{i}/{n}] {row['status']:<13} {printable(row['relpath'])}: {detail}", flush=True)


def cmd_ingest(args) -> int:
    from transforms.run import ingest, summarise

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
    from transforms.catalogue.build import publish
    from transforms.store.repository import Repository

    print(publish(Repository(args.repo)))
    return 0


SEVERITY_MARKERS = {1: "[!  ]", 2: "[!! ]", 3: "[!!!]"}
SEVERITY_LEGEND = ("[!  ] watch: one special cause on the council's own chart; [!! ] warning: corroborated (two "
                   "rules, or its limits crossed twice in 3 months), outside the funnel of the councils held or "
                   "England's published range; [!!!] warning: its own history and the other councils agree")


def month_end_of(text: str) -> date:
    """``--as-of`` as a month end. Raises ``ValueError`` with the message to show: not a date, or a date
    that is not the last day of its month (naming the month ends either side)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {text!r} is not a date (YYYY-MM-DD)") from None
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    end = following - timedelta(days=1)
    if day != end:
        before = day.replace(day=1) - timedelta(days=1)
        raise ValueError(f"--as-of {day} is not a month end: signals and risk scores are worked out at month ends; "
                         f"use {before} or {end}")
    return day


def cmd_warn(args) -> int:
    """The live concerns, worst first, one line per council and indicator (its strongest signal, the other
    methods that agree named after it), with the severity markers explained once; then every council's risk
    rank and its reasons (published figures, Ofsted history and live warnings: a council with published
    figures only is ranked too). A council with nothing to report says so. Exit 2 for an ``--as-of`` that is
    not a month end."""
    import duckdb

    try:
        as_of = month_end_of(args.as_of) if args.as_of else None
    except ValueError as exc:
        print(f"csreturns warn: {exc}", file=sys.stderr)
        return 2
    with duckdb.connect(str(Path(args.repo) / "csreturns.duckdb"), read_only=True) as con:
        # the latest month end scored on or before --as-of (a month end: checked above), else the latest
        as_of = con.execute("""SELECT max(as_of) FROM (SELECT as_of FROM early_warning UNION ALL
                               SELECT as_of FROM council_risk) WHERE ?::DATE IS NULL OR as_of <= ?::DATE""",
                            [as_of, as_of]).fetchone()[0]
        if as_of is None:
            print("no early-warning signals and no risk scores: the repository holds no indicators or published "
                  f"figures yet{f' public by {args.as_of}' if args.as_of else ''}")
            return 0
        where, params = "WHERE e.as_of = ? AND e.direction = 'concern'", [as_of]
        if args.la:
            where += " AND e.la_code = ?"
            params.append(args.la)
        rows = con.execute(f"""
            SELECT e.la_code, e.indicator, max(e.severity) AS severity,
                   arg_max(e.explanation, e.severity * 1000 - length(e.method)) AS explanation,
                   list(e.method ORDER BY e.severity DESC, e.method) AS methods, any_value(r.rank), any_value(r.score)
            FROM early_warning e
            LEFT JOIN council_risk r ON r.la_code = e.la_code AND r.as_of = e.as_of
            {where}
            GROUP BY e.la_code, e.indicator
            ORDER BY severity DESC, any_value(r.score) DESC NULLS LAST, e.la_code, e.indicator""", params).fetchall()
        ranked = con.execute(f"""
            SELECT rank, la_code, score, coverage, top_reasons FROM council_risk
            WHERE as_of = ? {"AND la_code = ?" if args.la else ""} ORDER BY rank NULLS LAST, la_code""",
                             [as_of, *([args.la] if args.la else [])]).fetchall()
    scope = f"council {args.la}" if args.la else "all councils"
    print(f"Live concerns at {as_of} for {scope}: {len(rows)} indicator(s)")
    if rows:
        print(f"  {SEVERITY_LEGEND}")
    for la_code, _indicator, severity, explanation, methods, rank, score in rows:
        standing = f"risk rank {rank}, score {score:+.2f}" if score is not None else "no risk score yet"
        print(f"  {SEVERITY_MARKERS.get(severity, '[?]')} {la_code} ({standing}) {explanation} [{', '.join(methods)}]")
    if args.la and not ranked:
        print(f"No risk score for council {args.la} at {as_of}: {_why_unscored(args.repo, args.la, as_of)}")
    if ranked:
        print(f"Risk of council {args.la} at {as_of}:" if args.la else
              f"Risk ranking at {as_of} ({len(ranked)} councils; score in z units, positive = worse):")
        for rank, la_code, score, coverage, reasons in ranked:
            if score is None:
                print(f"  {'-':>4}. {la_code} no risk score yet (no published figures, Ofsted history or indicators)")
                continue
            why = "; ".join(reasons) if reasons is not None and len(reasons) else "no factor above England's average"
            print(f"  {rank:>4}. {la_code} score {score:+.2f} ({coverage} factor{'' if coverage == 1 else 's'}) {why}")
    return 0


def _why_unscored(repo, la: str, as_of) -> str:
    """Why a council has no ``council_risk`` row at ``as_of``, in words: not a council code, not yet or no
    longer a council (reorganisation; ``schemas/councils.yaml``), or nothing about it public by then."""
    import duckdb

    from transforms import schema

    council = schema.councils().councils.get(la)
    if council is None:
        return "no council has this DfE code (schemas/councils.yaml: 3-digit codes such as 301)"
    if council.until and as_of > council.until:
        return (f"{council.name} was abolished on {council.until}; its area is scored under "
                f"{', '.join(f'{s} ({schema.councils().councils[s].name})' for s in council.successors)}")
    if council.from_ and as_of < council.from_:
        return f"{council.name} exists from {council.from_}; until then its predecessors are scored"
    with duckdb.connect(str(Path(repo) / "csreturns.duckdb"), read_only=True) as con:
        first, last = con.execute("SELECT min(as_of), max(as_of) FROM council_risk WHERE la_code = ?", [la]).fetchone()
    if first is None:
        return f"nothing about {council.name} is held (no published figure, Ofsted judgement or return)"
    if as_of < first:
        return f"nothing about {council.name} was public yet (its first score is at {first})"
    return f"nothing about {council.name} is current (its latest score is at {last})"


def cmd_replicate(args) -> int:
    """Mirror the repository's partitions to S3-compatible storage (changed files only)."""
    from transforms.store.replica import replicate
    from transforms.store.repository import Repository

    result = replicate(Repository(args.repo), args.to, args.conn_id)
    print(f"{args.to}: {len(result['uploaded'])} uploaded, {len(result['deleted'])} deleted, "
          f"{result['unchanged']} unchanged of {result['partitions']} partitions")
    return 0


def cmd_errors(args) -> int:
    """The DfE validation-rule error report of one return, as CSV and XLSX, for the council's data team."""
    from transforms.ingest.error_report import (
        PSEUDONYM_NOTE,
        NoReturn,
        error_report,
        report_folder,
        write_report,
    )
    from transforms.ingest.rules import check_return, latest_load
    from transforms.store.repository import Repository

    repo = Repository(args.repo)
    if args.recheck:
        load_id = latest_load(repo, args.collection, args.la, args.year)
        if load_id is None:
            print(f"no {args.collection} return for {args.la} {args.year} in {repo.root}", file=sys.stderr)
            return 2
        check_return(repo, args.collection, args.la, args.year, load_id)
    try:
        report = error_report(repo, args.collection, args.la, args.year)
    except NoReturn as exc:
        print(f"refused: {exc} (repository {repo.root})", file=sys.stderr)
        return 2
    stem = f"errors_{args.collection}_{args.la}_{args.year}"
    out = Path(args.out) if args.out else report_folder(repo, args.collection, args.la, args.year)
    csv_path, xlsx_path = write_report(report, out, stem)
    n_errors = int((report["severity"] == "error").sum())
    print(f"{n_errors} error(s) and {len(report) - n_errors} quer(y/ies) for {args.collection} {args.la} "
          f"{args.year} ({report['code'].nunique()} rule(s)): {csv_path} {xlsx_path}")
    print(PSEUDONYM_NOTE)
    return 0


def cmd_report(args) -> int:
    """The static HTML early-warning report (shareable: small numbers suppressed)."""
    from transforms.report.html import report_for_repository

    summary = report_for_repository(args.repo, args.out, args.as_of)
    print(f"report at {summary['as_of'] or '(no month end yet)'}: {summary['councils']} council page(s), "
          f"{summary['charts']} chart(s) in {summary['seconds']:.1f}s; open {Path(summary['out']).resolve() / 'index.html'}")
    return 0


def cmd_doctor(args) -> int:
    """The repository's state (journal, pending checks, orphans, key, free space); --fix repairs what is safe."""
    from transforms import schema
    from transforms.ingest.privacy import KeyFileError, key_status, repair_key
    from transforms.ingest.resume import run_pending
    from transforms.store.doctor import LOW_SPACE, diagnose, repair, size
    from transforms.store.repository import Repository

    if not Path(args.repo).is_dir():
        print(f"no repository at {args.repo}", file=sys.stderr)
        return 2
    repo = Repository(args.repo)
    lines = []
    if args.fix:
        replayed = repair(repo)
        if replayed:
            lines.append(f"fixed: finished {len(replayed)} commit(s) left in the journal")
        checked = run_pending(repo)
        if checked:
            lines.append(f"fixed: ran the DfE checks of {len(checked)} pending return(s)")
        state, _ = key_status(repo.root)
        if state == "broken":
            ledger = repo.ledger()
            kinds = {c: schema.collection(c).kind for c in ledger["collection"].dropna().unique()
                     if c in schema.collections()}
            used = bool(((ledger["status"] != "duplicate") & (ledger["rows_in"] > 0)
                         & ledger["collection"].map(lambda c: kinds.get(c) == "return")).any())
            try:
                lines.append("fixed: " + repair_key(repo.root, used))
            except KeyFileError as exc:
                lines.append(f"not fixed: {exc}")
    d = diagnose(repo)
    state, key_line = key_status(repo.root)
    print(f"repository {d.root}")
    print(f"  commits in the journal: {len(d.journal)}" + (f" ({', '.join(d.journal[:5])})" if d.journal else ""))
    print(f"  DfE checks pending: {len(d.pending)}" + "".join(
        f"\n    {p['collection']} {p['la_code']} {p['return_year']}" for p in d.pending[:20]))
    print(f"  left by dead processes: {len(d.orphans)}" + "".join(
        f"\n    {p.relative_to(d.root)}" for p in d.orphans[:20]))
    if d.manifest_seq is not None:
        print(f"  snapshot: commit {d.manifest_seq}, {d.partitions} partition(s)"
              + (f"; {len(d.inconsistent)} differ from the live tree: {', '.join(d.inconsistent[:5])}"
                 if d.inconsistent else ", live tree agrees"))
    print(f"  {key_line}")
    print(f"  free space: {size(d.free_bytes)}" + (" (low)" if d.free_bytes < LOW_SPACE else ""))
    for line in lines:
        print(line)
    healthy = d.healthy and state != "broken"
    if not healthy and not args.fix:
        print(f"run `csreturns doctor --repo {args.repo} --fix` to finish commits, run pending checks and "
              "remove what dead processes left")
    return 0 if healthy else 1


def cmd_docs(args) -> int:
    from transforms.catalogue.dictionary import write_column_docs

    out = write_column_docs(Path(args.out))
    print(f"wrote {out}")
    return 0


def cmd_collections(args) -> int:
    """Every declared collection; with --repo, what the repository holds of each (councils, years, last load)."""
    from transforms.catalogue.holdings import declared, holdings

    if args.repo and not Path(args.repo).is_dir():
        print(f"no repository at {args.repo}", file=sys.stderr)
        return 2
    table = holdings(args.repo) if args.repo else declared()
    table = table.drop(columns=["title", "relations"]) if args.format == "text" else table
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
        return 0
    table["change_years"] = table["change_years"].replace("", "-")
    if "last_load" in table:
        table["last_load"] = table["last_load"].dt.strftime("%Y-%m-%d %H:%M").fillna("-")
        table["years"] = table["years"].replace("", "-")
    text = table.astype(str)
    widths = {c: max(len(c), text[c].str.len().max()) for c in text.columns}
    print("  ".join(c.ljust(widths[c]) for c in text.columns).rstrip())
    for row in text.itertuples(index=False):
        print("  ".join(str(v).ljust(widths[c]) for c, v in zip(text.columns, row)).rstrip())
    kinds = table["kind"].value_counts().to_dict()
    print(f"\n{len(table)} collections: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
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
    p.add_argument("--as-of", help="date (YYYY-MM-DD): the latest month end scored on or before it; default: the latest")
    p.add_argument("--la", help="only this council (3-digit LA code)")
    p.set_defaults(func=cmd_warn)
    p = sub.add_parser("replicate", help="mirror the repository's Parquet partitions to s3://bucket/prefix")
    p.add_argument("--repo", required=True)
    p.add_argument("--to", required=True, metavar="S3_URL", help="s3://bucket/prefix")
    p.add_argument("--conn-id", help="Airflow AWS connection (endpoint_url in its extra for S3-compatible "
                   "stores); default: boto3's own AWS_* configuration")
    p.set_defaults(func=cmd_replicate)
    p = sub.add_parser("errors", help="write a return's DfE validation-rule error report (CSV and XLSX)")
    p.add_argument("--repo", required=True)
    p.add_argument("--la", required=True, help="3-digit LA code")
    p.add_argument("--collection", required=True, help="collection id, e.g. cin_census or ssda903")
    p.add_argument("--year", required=True, type=int, help="return year (ending 31 March)")
    p.add_argument("--out", help="folder for the report files (default: REPO/errors/<collection>/<la>/<year>/)")
    p.add_argument("--recheck", action="store_true", help="run the rules again on the current data first")
    p.set_defaults(func=cmd_errors)
    p = sub.add_parser("report", help="write the static HTML early-warning report (one page per council)")
    p.add_argument("--repo", required=True)
    p.add_argument("--out", help="folder for the report (default: REPO/report)")
    p.add_argument("--as-of", help="date (YYYY-MM-DD): the latest month end scored on or before it; default: the latest")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("doctor", help="report the repository's state and (--fix) repair what is safe to repair")
    p.add_argument("--repo", required=True)
    p.add_argument("--fix", action="store_true", help="finish journal commits, run pending DfE checks, remove "
                   "orphans, replace an empty key file if nothing was pseudonymised with it")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("docs", help="write the column dictionary generated from schemas/")
    p.add_argument("--out", default="docs/columns.md")
    p.set_defaults(func=cmd_docs)
    p = sub.add_parser("collections", help="list the declared collections (and, with --repo, what is held)")
    p.add_argument("--repo", help="also show what this repository holds: councils, years, last load")
    p.add_argument("--format", choices=["text", "csv"], default="text")
    p.set_defaults(func=cmd_collections)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from transforms.ingest.privacy import KeyFileError
    from transforms.store.repository import OutOfSpace

    try:
        return args.func(args)
    except (OutOfSpace, KeyFileError) as exc:   # one clear line, no traceback: the message says what to do
        print(f"csreturns {args.command}: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
