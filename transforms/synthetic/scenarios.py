"""Scenario councils with a known truth, to measure whether early warning finds what it should.

A back-test on real data cannot say which council "really" deteriorated and when; a scenario can. Each
scenario council is a synthetic council (transforms/synthetic.py, same children, episodes, referrals and
return formats) whose practice either stays level (*stable*: only the generator's noise -- who is
referred, how long each assessment takes, who moves placement) or declines from a known *onset* month.

The decline is staged, aspect by aspect, in the order the sector describes it: workforce first (children
change social worker more often), then timeliness (assessments, then ICPCs), then repeat work (re-referrals)
and placement stability. Each aspect's latent practice falls by ``decline`` units over ``ramp_months``,
starting ``STAGES[aspect]`` months after onset. One unit moves assessments within 45 working days by about
5 points, the share of a chain of referrals that returns by 3 points and placement moves by 16 %; declines
of 1.5 to 3 units are the size of a council sliding from "good" to "requires improvement" or worse (a fall
from ~82 % to 65-73 % of assessments in time). The agency and vacancy rates that usually move first come
only from the CSWW census, one snapshot a year at 30 September (the generator's linked returns drive it
from the same ``social_workers`` aspect, but no indicator reads CSWW returns yet, and a yearly point
cannot warn within months), so the workforce stage shows only through ``social_worker_changes`` (SSDA903
social worker episodes, collected from 2023/24, a rolling 12-month state indicator).

The truth -- council, size, status, onset, and for each indicator the month it is expected to start moving
and the direction that is worse -- is written beside the landing area (``<landing>.truth.json`` and
``.csv``), never inside it, so ingestion does not see it.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np

from transforms.synthetic import generator as synthetic
from transforms.synthetic.generator import YEAR, Council

# Months after onset at which each aspect starts to decline, and the indicators that read it.
STAGES = {"social_workers": 0, "assessment": 2, "protection": 3, "rereferral": 4, "placements": 6}
INDICATORS = {
    "social_workers": ("social_worker_changes",),
    "assessment": ("assessment_45wd",),
    "protection": ("icpc_15wd",),
    "rereferral": ("rereferral_12m",),
    "placements": ("placement_stability_short",),
}
MONTH = YEAR / 12


@dataclass
class ScenarioCouncil(Council):
    """A council whose practice is level, or declines in stages from ``onset`` (days since 1970; NaN:
    stable)."""
    onset: float = float("nan")
    decline: float = 0.0          # practice units lost by each aspect once its ramp is complete
    ramp_months: float = 9.0
    stages: dict = field(default_factory=lambda: dict(STAGES))

    @property
    def deteriorating(self) -> bool:
        return bool(np.isfinite(self.onset))

    def practice_at(self, t) -> np.ndarray:
        return np.full(np.shape(t), self.practice, dtype=float)

    def practice_for(self, aspect: str, t) -> np.ndarray:
        level = self.practice_at(t)
        if not self.deteriorating or aspect not in self.stages:
            return level
        start = self.onset + self.stages[aspect] * MONTH
        done = np.clip((np.asarray(t, float) - start) / (self.ramp_months * MONTH), 0, 1)
        return level - self.decline * done


def _month_start(days: float) -> date:
    d = np.datetime64(int(days), "D").astype(object)
    return date(d.year, d.month, 1)


def _add_months(d: date, k: int) -> date:
    m = d.month - 1 + k
    return date(d.year + m // 12, m % 12 + 1, 1)


def sizes(n: int) -> np.ndarray:
    """Children looked after for ``n`` councils at evenly spaced quantiles of England's skewed spread
    (median ~400, mean ~550), always including the smallest (30) and the largest (1,500): how early a
    decline can be seen depends above all on size, so every scenario covers the whole range."""
    from statistics import NormalDist
    q = (np.arange(n) + 0.5) / n
    out = np.clip(400 * np.exp(0.8 * np.array([NormalDist().inv_cdf(x) for x in q])), 30, 1500)
    if n >= 2:
        out[0], out[-1] = 30.0, 1500.0
    return out


def make_councils(n: int = 48, *, deteriorating: float = 0.4, years: Sequence[int] = (2021, 2022, 2023, 2024, 2025),
                  seed: int = 0, onset_after_months: int = 21, onset_margin_months: int = 9,
                  decline: tuple[float, float] = (1.5, 3.0), scale: float = 1.0,
                  la_codes: Sequence[str] | None = None, onsets: dict | None = None) -> list[ScenarioCouncil]:
    """``n`` councils sized as England's (about 30 to 1,500 children looked after, skewed), a share of them
    deteriorating. Onsets fall on a month start between ``onset_after_months`` after the first return year
    begins (a year of baseline, plus the 12 months the first re-referral windows need) and
    ``onset_margin_months`` before the last ends, so every decline has time to show. Deteriorating councils
    are spread across sizes (every k-th by size). ``onsets`` ({la_code: 'YYYY-MM'}) fixes them instead."""
    years = sorted(years)
    base = synthetic._councils(n, la_codes, seed, scale, xml_903_every=4)
    rng = np.random.default_rng([seed, 11])
    for c, size in zip(base, rng.permutation(sizes(n))):
        c.cla = float(size * scale)
    first = date(years[0] - 1, 4, 1)
    lo, hi = onset_after_months, 12 * len(years) - onset_margin_months
    if onsets is None:
        k = int(round(deteriorating * n))
        by_size = sorted(range(n), key=lambda i: base[i].cla)
        step = n / max(k, 1)
        chosen = {by_size[int(j * step + rng.integers(0, max(int(step), 1)))] for j in range(k)}
        onsets = {base[i].code: _add_months(first, int(rng.integers(lo, hi + 1))) for i in sorted(chosen)}
    else:
        onsets = {code: date.fromisoformat(f"{m}-01") if isinstance(m, str) else m for code, m in onsets.items()}
    out = []
    for c in base:
        fields = {**asdict(c), "drift": 0.0, "drift_from": 0.0}
        onset = onsets.get(c.code)
        if onset is None:
            out.append(ScenarioCouncil(**fields))
        else:
            out.append(ScenarioCouncil(**fields, onset=synthetic._d(onset.isoformat()),
                                       decline=float(rng.uniform(*decline)),
                                       ramp_months=float(rng.uniform(6, 12))))
    return out


def truth(councils: Sequence[ScenarioCouncil]) -> list[dict]:
    """One row per council and indicator expected to move (stable councils: one row, indicator None)."""
    rows = []
    for c in councils:
        common = {"la_code": c.code, "la_name": c.name, "cla": round(c.cla), "practice": round(c.practice, 3),
                  "status": "deteriorating" if c.deteriorating else "stable"}
        if not c.deteriorating:
            rows.append({**common, "onset": None, "decline": 0.0, "aspect": None, "indicator": None,
                         "moves_from": None})
            continue
        onset = _month_start(c.onset)
        for aspect, lag in sorted(c.stages.items(), key=lambda kv: kv[1]):
            for ind in INDICATORS.get(aspect, ()):
                rows.append({**common, "onset": onset.isoformat(), "decline": round(c.decline, 3),
                             "aspect": aspect, "indicator": ind,
                             "moves_from": _add_months(onset, int(lag)).isoformat()})
    return rows


def truth_paths(landing: Path) -> tuple[Path, Path]:
    landing = Path(landing)
    return landing.with_name(landing.name + ".truth.json"), landing.with_name(landing.name + ".truth.csv")


def write_truth(landing: Path, councils: Sequence[ScenarioCouncil], years: Sequence[int]) -> tuple[Path, Path]:
    rows = truth(councils)
    js, cs = truth_paths(landing)
    js.write_text(json.dumps({"years": sorted(years), "stages_months_after_onset": STAGES,
                              "indicators": {k: list(v) for k, v in INDICATORS.items()}, "councils": rows},
                             indent=1), encoding="utf-8")
    with cs.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return js, cs


def read_truth(landing: Path) -> dict:
    return json.loads(truth_paths(landing)[0].read_text(encoding="utf-8"))


def generate_scenario(landing: Path, councils: Sequence[ScenarioCouncil], *,
                      years: Sequence[int] = (2021, 2022, 2023, 2024, 2025), seed: int = 0,
                      error_rate: float = 0.002, burn_in_years: int = 2,
                      collections: Sequence[str] | None = ("ssda903", "cin_census")) -> dict:
    """Write the councils' returns into ``landing`` (the real formats, as synthetic.generate_landing) and
    the truth beside it.

    The generator starts community referral histories 3 years before the first return year, so in the
    first years long child protection plans are under-represented and their share climbs for years in
    every council (2.5 % to 3.7 % of open plans on 40 councils) -- a drift stable councils do not have.
    ``burn_in_years`` earlier years are simulated and their returns dropped, so the landed years start
    from a settled history. ``collections``: the returns kept in the landing area (default: the two the
    indicators read; None keeps all the generator writes, such as Annex A, CSWW and SEN2)."""
    years = sorted(years)
    simulated = [years[0] - k for k in range(burn_in_years, 0, -1)] + years
    linked = collections is None or not {"annex_a", "csww", "sen2"}.isdisjoint(collections)
    summary = synthetic.generate_landing(landing, years=simulated, seed=seed, error_rate=error_rate,
                                         councils=councils, linked_returns=linked)
    for c in councils:
        folder = Path(landing) / c.code
        for sub in folder.iterdir():
            if collections is not None and sub.name not in collections:
                shutil.rmtree(sub)
        for y in simulated[:burn_in_years]:
            shutil.rmtree(folder / "ssda903" / f"year={y}", ignore_errors=True)
            (folder / "cin_census" / f"CIN_Census_{y}.xml").unlink(missing_ok=True)
            for f in folder.rglob(f"*{y}*"):         # other returns kept: files named for the year
                f.unlink() if f.is_file() else None
    summary["years"] = years
    summary["truth"] = [str(p) for p in write_truth(landing, councils, years)]
    return summary
