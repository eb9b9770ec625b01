"""Does the risk score rank real councils? ``council_risk`` against Ofsted's real SIF judgements.

Lands the public inputs as an analyst would -- every EES file in ``../shared/reference/ees`` under
``published/``, the statistical neighbour groupings and Ofsted's SIF judgements under ``reference/`` --
runs ``csreturns ingest`` and ``csreturns refresh`` (timed), then reads ``council_risk`` for each judgement
at the last month end on or before its publication date minus eight weeks (the inspection happened
before publication; nothing later is used) and reports:

- ROC AUC for Inadequate vs Good/Outstanding, and for Requires improvement + Inadequate vs
  Good/Outstanding, with a bootstrap 95 % interval (judgements resampled, 2,000 times);
- how many judgements were scored (a council with no row at that month end is not scored);
- the same for a naive reference: at the same month end, the mean over the published indicators
  (``indicators`` where ``source = 'published'``) of each council's polarity-signed z-score against
  all councils in the latest year published by then (context indicators: higher = worse).

The 173 SIF judgements (2014-2018) are a development set: the held-out test scores the same relation
against later inspections the project does not hold.

Run: ``.venv/bin/python bench/early_warning_real.py [--work DIR] [--reuse]``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))

from transforms import schema  # noqa: E402
LEAD_DAYS = 56


def land(landing: Path, shared: Path = SHARED) -> None:
    """The public inputs in the landing layout ``csreturns ingest`` reads."""
    for sub, pattern, src in (("published", "*.csv", shared / "ees"),
                              ("reference/statistical_neighbours", "*.csv", shared / "statistical_neighbours"),
                              ("reference/ofsted_judgements", "*.csv", shared / "ofsted"),
                              ("reference/spend_ro3", "*.ods", shared / "spend")):
        (landing / sub).mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob(pattern)):
            shutil.copy(f, landing / sub / f.name)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count a half)."""
    r = pd.Series(s).rank().to_numpy()
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")


def bootstrap(y: np.ndarray, s: np.ndarray, n: int = 2000, seed: int = 10) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            out.append(auc(y[i], s[i]))
    return float(np.percentile(out, 2.5)), float(np.percentile(out, 97.5))


def judgements(shared: Path = SHARED) -> pd.DataFrame:
    j = pd.read_csv(shared / "ofsted" / "ofsted_sif_judgements_2013_to_2018.csv", dtype=str)
    j["publication_date"] = pd.to_datetime(j["publication_date"])
    cut = j["publication_date"] - pd.Timedelta(days=LEAD_DAYS)
    # the last month end on or before the cut
    j["as_of"] = (cut + pd.Timedelta(days=1) - pd.offsets.MonthEnd(1)).dt.normalize()
    j = j.rename(columns={"old_la_code": "la_code"})
    # the council inspected (Dorset's 2016 judgement is listed under the Dorset created in 2019)
    j["la_code"] = [schema.councils().as_on(c, d.date()) for c, d in zip(j["la_code"], j["publication_date"])]
    return j


def naive_scores(con: duckdb.DuckDBPyConnection, points: pd.DataFrame) -> pd.Series:
    """Mean polarity-signed z of the published indicators known at each judgement's month end."""
    ind = con.execute("""SELECT i.la_code, i.indicator, i.period_end, i.published_on, i.value, c.polarity
                         FROM indicators i JOIN indicator_catalogue c USING (indicator)
                         WHERE i.source = 'published' AND i.value IS NOT NULL""").df()
    ind["published_on"] = pd.to_datetime(ind["published_on"])
    ind["period_end"] = pd.to_datetime(ind["period_end"])
    ind["z"] = ind.groupby(["indicator", "period_end"])["value"].transform(lambda v: (v - v.mean()) / v.std())
    ind["z"] *= np.where(ind["polarity"] == "lower_is_worse", -1.0, 1.0)
    out = {}
    for as_of in points["as_of"].unique():
        known = ind[ind["published_on"] <= as_of]
        latest = known.groupby("indicator")["period_end"].transform("max")
        now = known[known["period_end"] == latest]
        out[as_of] = now.groupby("la_code")["z"].mean()
    return pd.Series([out[a].get(la, np.nan) for a, la in zip(points["as_of"], points["la_code"])], index=points.index)


def evaluate(catalogue: Path, shared: Path = SHARED) -> dict:
    j = judgements(shared)
    with duckdb.connect(str(catalogue), read_only=True) as con:
        risk = con.execute("SELECT la_code, CAST(as_of AS TIMESTAMP) AS as_of, score FROM council_risk").df()
        j = j.merge(risk, on=["la_code", "as_of"], how="left")
        j["naive"] = naive_scores(con, j)
    result = {"judgements": len(j)}
    targets = {"inadequate_vs_good": {"Inadequate": 1, "Good": 0, "Outstanding": 0},
               "ri_or_inadequate_vs_good": {"Inadequate": 1, "Requires improvement to be good": 1,
                                            "Good": 0, "Outstanding": 0}}
    for name, classes in targets.items():
        y_all = j["overall_effectiveness"].map(classes)
        for col in ("score", "naive"):
            ok = y_all.notna() & j[col].notna()
            y, s = y_all[ok].to_numpy(dtype=int), j.loc[ok, col].to_numpy(dtype=float)
            lo, hi = bootstrap(y, s)
            result[f"{name}/{col}"] = {"auc": round(auc(y, s), 3), "ci95": [round(lo, 3), round(hi, 3)],
                                       "scored": int(ok.sum()), "of": int(y_all.notna().sum()),
                                       "positives": int(y.sum())}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/csreturns-ew-real", help="folder for the landing area and repository")
    ap.add_argument("--reuse", action="store_true", help="score an existing repository (refresh only)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    landing, repo = work / "landing", work / "repo"
    cli = [sys.executable, "-m", "transforms.cli"]
    timings = {}
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
        land(landing)
        t = time.perf_counter()
        subprocess.run([*cli, "ingest", str(landing), "--repo", str(repo)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        timings["ingest_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    subprocess.run([*cli, "refresh", "--repo", str(repo)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    timings["refresh_s"] = round(time.perf_counter() - t, 1)
    result = {**timings, **evaluate(repo / "csreturns.duckdb")}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
