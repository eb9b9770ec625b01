"""Does early warning work? Scenario councils with a known truth, run through the whole pipeline.

Generates scenario councils (transforms/scenarios.py: stable ones, and ones that deteriorate in stages from
a known onset month), writes their SSDA903 and CIN census returns into a landing area, ingests it with
``transforms.run.ingest`` (read, GX validation, load, catalogue with indicators and early_warning --
the same path the CLI and DAGs take), then reads ``early_warning`` back from the DuckDB catalogue and scores
it against the truth:

- a *warning* is an ``early_warning`` row with ``direction = 'concern'`` and ``severity >= --min-severity``
  (default 2: the NHS "special cause" evidence the relation itself calls a warning; severity 1 rows are
  patterns worth watching);
- **recall**: deteriorating councils with a warning on one of the indicators the truth says moves, in the
  worse direction, at an ``as_of`` from the first indicator's expected move until the annual publication
  could show the decline (or ``--within`` months after the move, when given): a warning after that tells
  nobody anything new;
- **false alarms per stable council-year**: distinct warning *episodes* on stable councils (a council and
  indicator warned at consecutive month ends is one episode; a gap of a month or more starts a new one),
  divided by the council-years monitored (month ends at which early_warning could be live, / 12);
  deteriorating councils' warnings before their onset are counted the same way and reported separately;
- **lead time**: months from the true onset to the first warning (median, quartiles), beside the months
  from onset to the day the annual DfE publication could first show it (the first year ending 31 March
  after the decline has run 6 months, published 8 months after that year ends).

Run: ``.venv/bin/python bench/early_warning_eval.py`` (see bench/README.md; ``--reuse`` rescoring an existing
work folder after rebuilding only its catalogue).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transforms.analytics.early_warning import FUNNEL_METHOD, SPC_METHODS  # noqa: E402
from transforms.catalogue.build import publish  # noqa: E402
from transforms.run import ingest  # noqa: E402
from transforms.store.repository import Repository  # noqa: E402
from transforms.synthetic import scenarios  # noqa: E402


def _months(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def publication_date(onset: date, show_after_months: int = 6) -> date:
    """When the annual publication could first show a decline starting at ``onset``: the first DfE year
    (to 31 March) holding ``show_after_months`` of it, published the following 30 November (the latest
    plausible release of the CIN census and children looked after statistics)."""
    m = onset.month - 1 + show_after_months
    shown = date(onset.year + m // 12, m % 12 + 1, 1)
    year_end = shown.year + (shown.month > 3)
    return date(year_end, 11, 30)


def episodes(warn: pd.DataFrame) -> pd.DataFrame:
    """Distinct warning episodes: consecutive month ends of the same council and indicator are one."""
    if warn.empty:
        return warn.assign(start=pd.Series(dtype="datetime64[ns]"))
    w = warn[["la_code", "indicator", "as_of"]].drop_duplicates().sort_values(["la_code", "indicator", "as_of"])
    m = w["as_of"].dt.year * 12 + w["as_of"].dt.month
    new = (w["la_code"] != w["la_code"].shift()) | (w["indicator"] != w["indicator"].shift()) | (m.diff() != 1)
    w["episode"] = new.cumsum()
    return w.groupby("episode").agg(la_code=("la_code", "first"), indicator=("indicator", "first"),
                                    start=("as_of", "min"), end=("as_of", "max")).reset_index(drop=True)


def monitored_months(indicators: pd.DataFrame, baseline: int = 12) -> pd.DataFrame:
    """The council-months at which an SPC warning could be live: from the end of the council's first
    monthly baseline (its first ``baseline`` months) to its last month."""
    m = indicators[(indicators["window"] == "month") & (indicators["source"] == "child_level")]
    span = m.assign(period_end=pd.to_datetime(m["period_end"])).groupby("la_code")["period_end"].agg(["min", "max"])
    rows = [(la, d) for la, r in span.iterrows()
            for d in pd.date_range(r["min"] + pd.offsets.MonthEnd(baseline - 1), r["max"], freq="ME")]
    return pd.DataFrame(rows, columns=["la_code", "as_of"])


def read_catalogue(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``early_warning``, and the council-months it covers."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        ew = con.execute("SELECT * FROM early_warning").df()
        ind = con.execute("SELECT la_code, period_end, \"window\", source FROM indicators").df()
    finally:
        con.close()
    return ew, monitored_months(ind)


def score(ew: pd.DataFrame, monitored: pd.DataFrame, truth: dict, *, min_severity: int = 2, within: int | None = None,
          methods: tuple[str, ...] = SPC_METHODS) -> dict:
    """Recall, false alarms and lead times of the ``early_warning`` rows against the scenario's truth.
    Only ``methods`` count as warnings of a downturn (default: the SPC rules -- own history; a council
    outside England's funnel is a standing difference, not a change, and is reported apart)."""
    ew = ew.assign(as_of=pd.to_datetime(ew["as_of"]))
    monitored = monitored.assign(as_of=pd.to_datetime(monitored["as_of"]))
    concern = ew[ew["direction"] == "concern"]
    warn = concern[(concern["severity"] >= min_severity) & concern["method"].isin(methods)]
    t = pd.DataFrame(truth["councils"])
    status = t.drop_duplicates("la_code").set_index("la_code")
    stable = status.index[status["status"] == "stable"]
    det = status.index[status["status"] == "deteriorating"]

    eps = episodes(warn)
    months_live = monitored.groupby("la_code")["as_of"].nunique()
    stable_years = months_live.reindex(stable).fillna(0).sum() / 12
    fa = eps[eps["la_code"].isin(stable)]
    # deteriorating councils before onset are stable too
    onset = pd.to_datetime(status.loc[det, "onset"])
    pre = eps[eps["la_code"].isin(det)]
    pre = pre[pre["start"] < pre["la_code"].map(onset)]
    pre_years = sum(((monitored["la_code"] == la) & (monitored["as_of"] < onset[la])).sum() for la in det) / 12

    rows = []
    for la in det:
        tr = t[t["la_code"] == la]
        on = pd.Timestamp(status.loc[la, "onset"])
        first_move = pd.to_datetime(tr["moves_from"]).min()
        pub = publication_date(on.date())
        deadline = pd.Timestamp(pub) if within is None else first_move + pd.DateOffset(months=within)
        relevant = warn[(warn["la_code"] == la) & warn["indicator"].isin(tr["indicator"])
                        & (warn["as_of"] >= first_move) & (warn["as_of"] <= deadline)]
        hit = relevant.sort_values("as_of").head(1)
        live_after = monitored[(monitored["la_code"] == la) & (monitored["as_of"] >= on)]["as_of"].nunique()
        rows.append({
            "la_code": la, "cla": int(status.loc[la, "cla"]), "onset": on.date().isoformat(),
            "decline": float(status.loc[la, "decline"]), "months_after_onset_in_data": int(live_after),
            "warned": not hit.empty,
            "first_warning": hit["as_of"].iloc[0].date().isoformat() if not hit.empty else None,
            "indicator": hit["indicator"].iloc[0] if not hit.empty else None,
            "method": hit["method"].iloc[0] if not hit.empty else None,
            "lead_months": _months(on.date(), hit["as_of"].iloc[0].date()) if not hit.empty else None,
            "publication": pub.isoformat(), "publication_months": _months(on.date(), pub)})
    per_council = pd.DataFrame(rows)
    leads = per_council["lead_months"].dropna()
    evaluable = per_council[per_council["months_after_onset_in_data"] >= 12] if len(per_council) else per_council
    fa_by_ind = fa.groupby("indicator").size().to_dict() if not fa.empty else {}
    funnel = concern[concern["method"] == FUNNEL_METHOD]
    outside = funnel.groupby("la_code")["as_of"].nunique().reindex(status.index).fillna(0)
    return {
        "min_severity": min_severity, "within_months": within, "methods": list(methods),
        "funnel_concern_council_months_stable": int(outside.reindex(stable).sum()),
        "funnel_concern_stable_councils": int((outside.reindex(stable) > 0).sum()),
        "councils": int(len(status)), "deteriorating": int(len(det)), "stable": int(len(stable)),
        "recall": float(per_council["warned"].mean()) if len(per_council) else float("nan"),
        # a decline that starts months before the data ends has not had time to show: recall among the
        # councils with at least a year of data after onset
        "recall_12m_after_onset": float(evaluable["warned"].mean()) if len(evaluable) else float("nan"),
        "councils_12m_after_onset": int(len(evaluable)),
        "false_alarm_episodes_stable": int(len(fa)),
        "stable_council_years": round(float(stable_years), 1),
        "false_alarms_per_stable_council_year": round(len(fa) / stable_years, 3) if stable_years else None,
        "false_alarms_by_indicator": {k: int(v) for k, v in fa_by_ind.items()},
        "pre_onset_episodes": int(len(pre)), "pre_onset_council_years": round(float(pre_years), 1),
        "median_lead_months": float(leads.median()) if len(leads) else None,
        "lead_months_quartiles": [float(leads.quantile(.25)), float(leads.quantile(.75))] if len(leads) else None,
        "median_publication_months": float(per_council["publication_months"].median()) if len(per_council) else None,
        "warned_before_publication": int((per_council["lead_months"] < per_council["publication_months"]).sum()),
        "first_warning_by_indicator": per_council["indicator"].value_counts().to_dict(),
        "per_council": per_council.to_dict(orient="records"),
    }


def report(res: dict) -> str:
    window = ("until the annual publication" if res["within_months"] is None
              else f"within {res['within_months']} months of the first expected move")
    lines = [
        f"councils {res['councils']} ({res['deteriorating']} deteriorating, {res['stable']} stable); "
        f"warning = concern with severity >= {res['min_severity']} from {', '.join(res['methods'])}; counted "
        f"{window}",
        f"recall                              {res['recall']:.2f} (councils with 12+ months of data after onset: "
        f"{res['recall_12m_after_onset']:.2f} of {res['councils_12m_after_onset']})",
        f"false alarms / stable council-year  {res['false_alarms_per_stable_council_year']} "
        f"({res['false_alarm_episodes_stable']} episodes in {res['stable_council_years']} council-years; "
        f"by indicator {res['false_alarms_by_indicator']})",
        f"funnel concerns on stable councils  {res['funnel_concern_council_months_stable']} council-months, "
        f"{res['funnel_concern_stable_councils']} councils (a standing difference from England, not a downturn)",
        f"pre-onset episodes (deteriorating)  {res['pre_onset_episodes']} in {res['pre_onset_council_years']} council-years",
        f"median lead, onset -> first warning {res['median_lead_months']} months (IQR {res['lead_months_quartiles']})",
        f"median onset -> annual publication  {res['median_publication_months']} months; "
        f"warned earlier for {res['warned_before_publication']} of {res['deteriorating']}",
        "", f"{'la':>4} {'cla':>5} {'onset':>10} {'decline':>7} {'first warning':>13} {'lead':>4} {'pub':>4}  indicator / method"]
    for r in res["per_council"]:
        lines.append(f"{r['la_code']:>4} {r['cla']:>5} {r['onset']:>10} {r['decline']:>7.2f} "
                     f"{r['first_warning'] or '-':>13} {'-' if pd.isna(r['lead_months']) else int(r['lead_months']):>4} "
                     f"{r['publication_months']:>4}  {r['indicator'] or '-'} {r['method'] or ''}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "var" / "early_warning_eval")
    ap.add_argument("--councils", type=int, default=40)
    ap.add_argument("--deteriorating", type=float, default=0.4, help="share of councils that deteriorate")
    ap.add_argument("--years", type=int, nargs="+", default=[2021, 2022, 2023, 2024, 2025])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reuse", action="store_true", help="keep the landing area and repository; rebuild the catalogue")
    ap.add_argument("--min-severity", type=int, default=2)
    ap.add_argument("--within", type=int, default=None,
                    help="months after the first expected move a warning counts (default: until the annual publication)")
    a = ap.parse_args(argv)
    landing, repo_root = a.work / "landing", a.work / "repository"
    timings = {}
    if not (a.reuse and (repo_root / "csreturns.duckdb").exists() or a.reuse and repo_root.exists()):
        shutil.rmtree(a.work, ignore_errors=True)
        a.work.mkdir(parents=True)
        t0 = time.perf_counter()
        councils = scenarios.make_councils(a.councils, deteriorating=a.deteriorating, years=a.years, seed=a.seed,
                                           scale=a.scale)
        scenarios.generate_scenario(landing, councils, years=a.years, seed=a.seed)
        timings["generate_s"] = round(time.perf_counter() - t0, 1)
        print(f"generated {sum(1 for f in landing.rglob('*') if f.is_file())} files for {len(councils)} councils in "
              f"{timings['generate_s']} s", flush=True)
        t0 = time.perf_counter()
        rows = ingest(landing, repo_root)
        timings["ingest_s"] = round(time.perf_counter() - t0, 1)
        print(f"ingested {len(rows)} files in {timings['ingest_s']} s", flush=True)
    else:
        t0 = time.perf_counter()
        publish(Repository(repo_root))
        timings["catalogue_s"] = round(time.perf_counter() - t0, 1)
        print(f"catalogue rebuilt in {timings['catalogue_s']} s", flush=True)
    truth = scenarios.read_truth(landing)
    ew, monitored = read_catalogue(Repository(repo_root).catalogue_path)
    res = score(ew, monitored, truth, min_severity=a.min_severity, within=a.within)
    res["timings"] = timings
    res["command"] = "bench/early_warning_eval.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(report(res))
    (a.work / "results.json").write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    print(f"results: {a.work / 'results.json'}")
    return res


if __name__ == "__main__":
    main()
