"""Where ``standing.FACTOR_WEIGHTS`` come from: each factor's univariate ROC AUC on the development set.

Reads a repository built by ``bench/early_warning_real.py`` (every published input and Ofsted's SIF
judgements) and prints, per factor, Inadequate vs Good/Outstanding:

- **predictive**: the factor at the last month end on or before each SIF judgement's publication date
  minus eight weeks (as the bench scores ``council_risk``) -- only for factors public by then (the CIN
  census tables: demand, repeat work, timeliness);
- **concurrent**: for factors first published after the SIF era (workforce from February 2018, placement
  and outcomes tables from 2020-2021, spend from December 2025), the factor at its first month end with
  every council's figure against the council's latest SIF judgement. It measures how well the factor
  tells councils Ofsted judged apart, not whether it came first: read it as an upper bound.

The weight is Somers' D = 2 x AUC - 1, floored at 0 and rounded to 0.05 (a factor no better than
chance weighs nothing). Ofsted history has no AUC here: every earlier judgement held is an Inadequate
before a re-inspection (see bench/README.md). Nothing is fitted jointly: with 40 Inadequate judgements a
joint fit would be noise.

Run: ``.venv/bin/python bench/early_warning_weights.py [--repo /tmp/csreturns-ew-real/repo]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from early_warning_real import auc, judgements  # noqa: E402

from transforms.analytics import standing  # noqa: E402

INADEQUATE_VS_GOOD = {"Inadequate": 1, "Good": 0, "Outstanding": 0}
# the first month end at which each late factor's first year is public for every council
FIRST_KNOWN = {"workforce instability": "2018-03-31", "outcomes": "2020-05-31", "placement stability": "2022-04-30",
               "spend": "2026-01-31"}


def factor_aucs(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    levels = standing.standing(standing.read_metrics(con), standing.read_neighbours(con))
    j = judgements()
    y = j["overall_effectiveness"].map(INADEQUATE_VS_GOOD)
    out = {}
    at = standing.factors_at(levels, pd.DataFrame(), sorted(j["as_of"].unique()))
    for factor, g in at.groupby("factor"):
        if factor in FIRST_KNOWN:
            continue
        x = j.merge(g[["la_code", "as_of", "value"]], on=["la_code", "as_of"], how="left")["value"]
        ok = y.notna() & x.notna()
        out[factor] = {"kind": "predictive", "auc": auc(y[ok].to_numpy(int), x[ok].to_numpy(float)),
                       "scored": int(ok.sum())}
    latest = j.sort_values("publication_date").groupby("la_code").tail(1).set_index("la_code")
    y_last = latest["overall_effectiveness"].map(INADEQUATE_VS_GOOD).dropna()
    for factor, when in FIRST_KNOWN.items():
        g = standing.factors_at(levels, pd.DataFrame(), [pd.Timestamp(when)])
        v = g[g["factor"] == factor].set_index("la_code")["value"]
        common = y_last.index.intersection(v.index)
        if len(common):
            out[factor] = {"kind": f"concurrent ({when})", "scored": len(common),
                           "auc": auc(y_last[common].to_numpy(int), v[common].to_numpy(float))}
    for r in out.values():
        r["auc"] = round(r["auc"], 3)
        r["weight"] = float(np.round(max(0.0, 2 * r["auc"] - 1) / 0.05) * 0.05) if np.isfinite(r["auc"]) else 0.0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default="/tmp/csreturns-ew-real/repo", help="repository built by early_warning_real.py")
    args = ap.parse_args(argv)
    with duckdb.connect(str(Path(args.repo) / "csreturns.duckdb"), read_only=True) as con:
        print(json.dumps(factor_aucs(con), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
