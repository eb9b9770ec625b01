"""Early warning: each council's indicators against its own history (SPC) and against England (funnels).

``early_warning(la_code, indicator, as_of, method, value, expected, lower, upper, direction, since,
severity, explanation)`` holds, for every month end ``as_of`` the child-level indicators cover, the signals
that were *live* at that date, computed only from what was known then.

Own history -- SPC charts with the NHS "Making Data Count" rules (as the NHS-R package NHSRplotthedots
applies them), on a series of *independent* points:

- Which series. The rolling 12-month windows are for display and funnels, not for SPC: consecutive
  windows share 11 months of data, so a run of 7 or a trend of 7 is what a stable council produces
  anyway (on synthetic councils nearly every council was flagged). Event indicators (re-referrals,
  assessments and ICPCs in time, repeat CP plans, long plans ending) are therefore charted on their
  ``month`` window: the events of each calendar month, which share nothing with the month before.
  State indicators (placement stability, social worker changes, missing from care) have no monthly
  form -- "3 or more placements in the 12 months" is a look-back by definition -- so their rolling
  12-month series is charted for points beyond the limits only (see ``_pchart_long``). Rates and
  ratios without a monthly series (CLA per 10,000, caseloads) are not charted.
- Which chart. Proportions are charted as Laney p'-charts (XmR of the standardised proportion): a
  council's monthly denominators vary (a small council completes 10 assessments one month and 25 the
  next), and an XmR chart on the raw percentages would give both months the same limits. The p'-chart
  keeps XmR's empirical spread (sigma_z from the moving ranges, so over-dispersion widens the limits)
  and scales it by each month's binomial standard error. Other measures with a monthly series use a
  plain XmR chart (``xmr``).
- Baseline: the first ``baseline`` points (default 12). Moving ranges of 3.267 x the mean moving range
  or more are screened out and the mean recomputed, so one wild month does not widen the limits.
- Special causes: a point beyond the 3-sigma limits (``spc_point_beyond_limits``); 7 or more consecutive
  points on one side of the centre, a point exactly on it breaking the run (``spc_run``); 7 consecutive
  points each strictly higher (or lower) than the one before, a tie breaking it (``spc_trend``); 2 of 3
  consecutive points in the band between 2 and 3 sigma, all three on the same side of the centre
  (``spc_two_of_three``; a point beyond 3 sigma counts under the first rule instead).
- Rules are evaluated *as at each point*, from that point and the ones before it: a run is signalled at
  its 7th point, not painted back over its first six as a chart drawn later would. That is what makes a
  signal at ``as_of`` free of look-ahead, and lets one pass over the history serve every ``as_of``.
- Under 12 points there are only trial limits: no signal is raised (``xmr`` returns ``trial = True``).

England -- funnel plots for proportions (Spiegelhalter 2005, as NHS-R FunnelPlotR does it): on the
arcsine-square-root scale, z = (asin(sqrt(p)) - asin(sqrt(p0))) / (1 / (2 sqrt(n))); z-scores winsorised at
10 % each end give the over-dispersion ratio phi = mean(z_w^2); when phi > 1 the limits widen either by an
additive between-council variance tau^2 (DerSimonian-Laird, FunnelPlotR's default) or multiplicatively
(sd x sqrt(phi)). Limits at z = 3.09 (99.8 %).

Direction: which side of expected the signal is on, read through the indicator's polarity (higher_is_worse,
lower_is_worse); for ``context`` indicators (rates per 10,000) there is no better direction, so any special
cause -- a sharp change either way -- is a ``concern``. Only ``concern`` rows are warnings; ``improvement``
rows are kept so a council's recovery is visible too.

Severity (1-3), a statement of how strong the evidence is, not of how bad the service is:

- 1 -- a single special cause on the council's own chart (one point beyond the limits, a run, a trend,
  2 of 3 near a limit): worth watching. One point beyond 3 sigma comes by chance in 1 month in 740 on
  each side, a run of 7 in about 1 in 130; over five monthly indicators a stable council shows one of
  them every year or two;
- 2 -- corroborated: two rules firing together in the same direction, or the limits crossed twice in
  three months (what a sustained shift produces and chance rarely does); or outside England's 99.8 %
  funnel;
- +1 (at most 3) when own history and England agree: an SPC signal and a funnel signal on the same
  council, indicator and ``as_of`` in the same direction.

``direction = 'concern'`` with severity 2 or more is a *warning*. On scenario councils with a known truth
(bench/early_warning_eval.py, bench/README.md) that definition finds every deteriorating council before the
annual publication would, with under one false alarm per ten stable council-years.
"""
from __future__ import annotations

import logging
import time
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from transforms import schema
from transforms.analytics.indicators import UNITS
from transforms.sql import create_table_from_frame

log = logging.getLogger(__name__)

LIMIT = 2.66                      # 3 sigma for an XmR chart: 3 / d2, d2 = 1.128
NEAR = 2 * LIMIT / 3              # 2 sigma
MR_SCREEN = 3.267                 # D4: moving ranges at or above D4 x mean MR are screened out
MIN_BASELINE_EVENTS = 10          # p'-charts: the baseline needs this many events and as many non-events
SPC_METHODS = ("spc_point_beyond_limits", "spc_run", "spc_trend", "spc_two_of_three")
FUNNEL_METHOD = "funnel_england"
# Where the indicators frame carries no publication date, a published (DfE) figure is taken to be known
# 8 months after its period ends (31 March -> 30 November: DfE's CIN and CLA releases come out in the
# autumn after the year), so it is never used before it could have been read.
# Funnel series, by preference when two end on the same date.
STREAMS = (("rolling_12m", "child_level"), ("dfe_year", "child_level"), ("dfe_year", "published"))

COLUMNS = {
    "la_code": ("VARCHAR", "3-digit old LA code of the council"),
    "indicator": ("VARCHAR", "Indicator id (indicator_catalogue.indicator; published warnings: a standing metric, "
                             "standing.METRICS)"),
    "as_of": ("DATE", "Month end at which the signal was live, using only data known by then"),
    "method": ("VARCHAR", "spc_point_beyond_limits, spc_run, spc_trend, spc_two_of_three (own history: the "
                          "monthly series, p'-chart; state indicators: rolling 12 months, beyond limits only) or "
                          "funnel_england (against all councils, 99.8 % funnel); published figures (annual, "
                          "transforms/analytics/standing.py): published_level (outside England's 99.8 % range) or "
                          "published_change (an unusual two-year change)"),
    "value": ("DOUBLE", "The council's value at the latest point (indicator unit)"),
    "expected": ("DOUBLE", "SPC: centre line of the council's own baseline; funnel: pooled proportion of the "
                           "councils in the repository"),
    "lower": ("DOUBLE", "Lower limit (SPC 3 sigma; funnel 99.8 %, over-dispersion adjusted)"),
    "upper": ("DOUBLE", "Upper limit (SPC 3 sigma; funnel 99.8 %, over-dispersion adjusted)"),
    "direction": ("VARCHAR", "concern or improvement by the indicator's polarity (context indicators: concern)"),
    "since": ("DATE", "First period of the current special-cause run"),
    "severity": ("INTEGER", "1 a single special cause on the own chart; 2 corroborated (two rules together, or the "
                            "limits crossed twice in 3 months) or outside the funnel; +1 (max 3) when own history "
                            "and England agree. Concern with severity 2+ is a warning"),
    "explanation": ("VARCHAR", "The signal in a sentence"),
}
RELATIONS = {  # documented in the catalogue's relations and column_dictionary (transforms/catalogue.py)
    "early_warning": ("LA / indicator / month end / method",
                      "Early-warning signals live at each month end: own history (SPC on the monthly series) "
                      "and England funnel, using only data known at that date", COLUMNS),
}


# ---------------------------------------------------------------- helpers --------------------------------

def _streak(v: np.ndarray, brk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Length of the run of equal non-zero values of ``v`` ending at each position, and where it starts.
    ``brk[i]`` starts a new run at i whatever the values (a new series). Zero never runs (length 0).
    Vectorised: a run is a block between changes, so its start is the last change seen so far."""
    n = len(v)
    idx = np.arange(n)
    change = np.ones(n, dtype=bool)
    if n:
        change[1:] = (v[1:] != v[:-1]) | brk[1:]
    start = np.maximum.accumulate(np.where(change, idx, 0)) if n else idx
    length = np.where(v != 0, idx - start + 1, 0)
    return length, start


def _positions(gid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = len(gid)
    idx = np.arange(n)
    new = np.ones(n, dtype=bool)
    new[1:] = gid[1:] != gid[:-1]
    first = np.maximum.accumulate(np.where(new, idx, 0)) if n else idx
    return idx, new, idx - first, (int(gid.max()) + 1 if n else 0)


def _mean_moving_range(gid: np.ndarray, y: np.ndarray, use: np.ndarray, k: int, screen_outliers: bool) -> np.ndarray:
    """Mean moving range per series over the points ``use`` marks (each with its predecessor), screened
    as NHSRplotthedots does: ranges of MR_SCREEN x the mean or more are dropped and the mean recomputed."""
    mr = np.full(len(y), np.nan)
    mr[1:] = np.abs(np.diff(y))
    with np.errstate(invalid="ignore", divide="ignore"):
        amr = np.bincount(gid, weights=np.where(use, mr, 0.0), minlength=k) / np.bincount(gid, weights=use, minlength=k)
        if screen_outliers:
            use = use & (mr < MR_SCREEN * amr[gid])
            amr = (np.bincount(gid, weights=np.where(use, mr, 0.0), minlength=k)
                   / np.bincount(gid, weights=use, minlength=k))
    return amr


def _rules(gid, y, c, lower, upper, lower2, upper2, *, baseline: int, min_points: int, run_length: int,
           trend_length: int, patterns: np.ndarray | bool = True, trend_y: np.ndarray | None = None) -> dict:
    """The four special-cause rules, causal, for many series at once (limits may vary point by point).
    ``patterns`` False for a series keeps only points beyond the limits (runs, trends and 2-of-3 assume
    independent points). ``trend_y``: the values a trend is read on, when ``y`` is a standardised score."""
    idx, new, pos, _ = _positions(gid)
    n = len(y)
    trial = pos < max(baseline, min_points) - 1          # fewer than min_points (and a partial baseline) so far
    side = np.sign(y - c).astype(int)
    outside = np.where(y > upper, 1, np.where(y < lower, -1, 0))
    close = np.where((outside == 0) & ((y > upper2) | (y < lower2)), side, 0)

    out_len, out_start = _streak(outside, new)
    run_len, run_start = _streak(side, new)
    step = np.zeros(n, dtype=int)
    step[1:] = np.sign(np.diff(y if trend_y is None else trend_y)).astype(int)
    step[new] = 0
    trend_len, trend_start = _streak(step, new)

    # 2 of 3: the window ending here is all on one side of the centre with 2+ points in the 2-3 sigma band,
    # and this point is one of them (NHSRplotthedots flags only the points near the limit).
    near = (close != 0).astype(int)
    win = np.zeros(n, dtype=int)
    if n >= 3:
        same = (pos[2:] >= 2) & (side[2:] != 0) & (side[2:] == side[1:-1]) & (side[2:] == side[:-2])
        two = (near[2:] + near[1:-1] + near[:-2]) >= 2
        win[2:] = np.where(same & two, side[2:], 0)
    win_len, win_start = _streak(win, new)
    nxt = np.where(near == 1, idx, n)                    # next point in the band at or after each position
    nxt = np.minimum.accumulate(nxt[::-1])[::-1] if n else nxt
    chain_start = np.clip(win_start - 2, 0, None)
    tot_start = nxt[np.minimum(chain_start, max(n - 1, 0))] if n else chain_start

    live = ~trial & np.isfinite(c) & np.isfinite(upper) & np.isfinite(lower)
    pat = live & np.broadcast_to(np.asarray(patterns, dtype=bool), (n,))
    return {
        "pos": pos, "centre": c, "lower": lower, "upper": upper, "lower_2sigma": lower2, "upper_2sigma": upper2,
        "trial": trial,
        "beyond_limits": np.where(live, outside, 0), "beyond_limits_since": out_start,
        "run": np.where(pat & (run_len >= run_length), side, 0), "run_since": run_start,
        "trend": np.where(pat & (trend_len >= trend_length - 1), step, 0), "trend_since": trend_start - 1,
        "two_of_three": np.where(pat & (win != 0) & (close == win), win, 0), "two_of_three_since": tot_start,
    }


def _xmr_long(gid: np.ndarray, y: np.ndarray, baseline: int = 12, min_points: int = 12,
              screen_outliers: bool = True, run_length: int = 7, trend_length: int = 7) -> dict:
    """XmR statistics and causal special-cause flags for many series at once.

    ``gid`` numbers the series (0..k-1, each series contiguous and in time order), ``y`` its values. The
    same arithmetic as ``xmr``, vectorised over series so a national run is a handful of numpy passes."""
    idx, new, pos, k = _positions(gid)
    base = pos < baseline
    cnt = np.bincount(gid, weights=base, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.bincount(gid, weights=np.where(base, y, 0.0), minlength=k) / cnt
    amr = _mean_moving_range(gid, y, base & (pos >= 1), k, screen_outliers)
    c, a = centre[gid], amr[gid]
    r = _rules(gid, y, c, c - LIMIT * a, c + LIMIT * a, c - NEAR * a, c + NEAR * a, baseline=baseline,
               min_points=min_points, run_length=run_length, trend_length=trend_length)
    mr = np.full(len(y), np.nan)
    mr[1:] = np.abs(np.diff(y))
    r["moving_range"] = np.where(new, np.nan, mr)
    return r


def _pchart_long(gid: np.ndarray, num: np.ndarray, den: np.ndarray, overlapping: np.ndarray,
                 baseline: int = 12, min_points: int = 12, screen_outliers: bool = True,
                 run_length: int = 7, trend_length: int = 7) -> dict:
    """Laney p'-charts (XmR of the standardised proportion) for many series at once.

    Independent points (``overlapping`` False: monthly series): centre p = baseline numerators / baseline
    denominators. Each month's count is standardised *exactly*: z_i = Phi^-1(mid-p of the count under
    Binomial(n_i, p)) -- a council's monthly events are often few (3 long CP plans ending in a month of 15)
    and the normal approximation then puts a 2 % event beyond "3 sigma". sigma_z = mean moving range of the
    baseline z (screened) / 1.128, at least 1 (variation below binomial chance is an artefact of a short
    baseline, not a reason for tighter limits). Rules read z against +/- 3 sigma_z and 2 sigma_z, runs its
    sign, trends the proportions; the limits reported are the binomial quantiles of those z for each
    month's denominator. All four rules apply.

    Overlapping points (rolling 12-month windows of state indicators): consecutive points share 11 months
    of data, so their moving ranges understate the variation and runs and trends are expected; only a
    point beyond the limits counts, and the limits are those of the difference between two independent
    proportions -- the point and the baseline (whose 12 overlapping windows hold about one window's worth
    of independent data): s_i = sqrt(p (1 - p) (1 / n_i + 1 / mean baseline n)), normal approximation
    (these denominators are whole caseloads)."""
    from scipy.stats import binom, norm

    idx, new, pos, k = _positions(gid)
    base = pos < baseline
    with np.errstate(invalid="ignore", divide="ignore"):
        bnum = np.bincount(gid, weights=np.where(base, num, 0.0), minlength=k)
        bden = np.bincount(gid, weights=np.where(base, den, 0.0), minlength=k)
        nbase = np.bincount(gid, weights=base, minlength=k)
        centre = np.clip(bnum / bden, 0.5 / bden, 1 - 0.5 / bden)   # a baseline of 0 % or 100 % still has spread
        p = num / den
        c = centre[gid]
        var = c * (1 - c)
        s_roll = np.sqrt(var * (1 / den + nbase[gid] / bden[gid]))
        x, n = np.round(num), np.round(den)
        u = np.clip(binom.cdf(x - 1, n, c) + 0.5 * binom.pmf(x, n, c), 1e-12, 1 - 1e-12)
        z = np.where(overlapping, (p - c) / s_roll, norm.ppf(u))
        z = np.where(np.isclose(p, c, rtol=1e-12, atol=1e-12), 0.0, z)     # on the centre: breaks a run
    sz = _mean_moving_range(gid, z, base & (pos >= 1) & ~new, k, screen_outliers) / 1.128
    sz = np.where(overlapping, 1.0, np.fmax(np.nan_to_num(sz[gid], nan=1.0), 1.0))

    def limit(m):   # the proportion at m sigma_z for each point
        monthly = binom.ppf(norm.cdf(m * sz), n, c) / n
        return np.clip(np.where(overlapping, c + m * s_roll, monthly), 0, 1)

    r = _rules(gid, z / sz, np.zeros(len(z)), np.full(len(z), -3.0), np.full(len(z), 3.0), np.full(len(z), -2.0),
               np.full(len(z), 2.0), baseline=baseline, min_points=min_points, run_length=run_length,
               trend_length=trend_length, patterns=~overlapping, trend_y=p)
    r.update(centre=c, lower=limit(-3), upper=limit(3), lower_2sigma=limit(-2), upper_2sigma=limit(2), z=z / sz)
    # a centre estimated from a handful of events (2 long plans ending in a year) is too uncertain to judge
    # months against: such series raise nothing until a longer history exists
    enough = (np.minimum(bnum, bden - bnum) >= MIN_BASELINE_EVENTS)[gid]
    live = np.isfinite(c) & np.isfinite(z) & enough
    for rule in ("beyond_limits", "run", "trend", "two_of_three"):
        r[rule] = np.where(live, r[rule], 0)
    r["overlapping"] = np.asarray(overlapping, dtype=bool)
    return r


def xmr(values, baseline: int = 12, min_points: int = 12, screen_outliers: bool = True) -> pd.DataFrame:
    """XmR chart for one series in time order (NHS "Making Data Count", as NHSRplotthedots computes it).

    Why: a council's own history is the fairest comparator -- it carries its own size, demography and
    recording habits -- and SPC separates the month-to-month noise every series has from a real change.

    Returns one row per point (index kept from a Series input): ``value``, ``centre`` (baseline mean),
    ``lower``/``upper`` (3 sigma), ``lower_2sigma``/``upper_2sigma``, ``moving_range``, ``trial`` (True while
    fewer than ``min_points`` points exist: trial limits only, no signal), and for each rule --
    ``beyond_limits``, ``run``, ``trend``, ``two_of_three`` -- +1 (high / rising), -1 (low / falling) or 0,
    with ``<rule>_since``: the position of the first point of that run (meaningful where the rule fires).
    ``special_cause`` is True where any rule fires. Rules are judged as at each point from the points up
    to it (causal): a run of 7 is flagged at its 7th point."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    y = s.to_numpy(dtype=float)
    if np.isnan(y).any():
        raise ValueError("xmr: values must not contain missing values (drop them first)")
    r = _xmr_long(np.zeros(len(y), dtype=int), y, baseline, min_points, screen_outliers)
    out = pd.DataFrame({"value": y}, index=s.index)
    for col in ("centre", "lower", "upper", "lower_2sigma", "upper_2sigma", "moving_range", "trial"):
        out[col] = r[col]
    for rule in ("beyond_limits", "run", "trend", "two_of_three"):
        out[rule] = r[rule]
        out[f"{rule}_since"] = np.where(r[rule] != 0, r[f"{rule}_since"], -1)
    out["special_cause"] = (out[["beyond_limits", "run", "trend", "two_of_three"]] != 0).any(axis=1)
    return out


def pchart(numerators, denominators, overlapping: bool = False, baseline: int = 12,
           min_points: int = 12) -> pd.DataFrame:
    """Laney p'-chart for one council's series of proportions in time order, as early warning charts it
    (``_pchart_long``): monthly series (``overlapping`` False) with all four rules; rolling 12-month series
    (True) beyond the limits only.

    Returns one row per point: ``value`` (proportion), ``centre``, ``lower``/``upper`` (3 sigma_z),
    ``lower_2sigma``/``upper_2sigma``, ``z`` (standardised, in sigma_z), ``trial``, and for each rule --
    ``beyond_limits``, ``run``, ``trend``, ``two_of_three`` -- +1, -1 or 0 with ``<rule>_since`` (position of
    the first point of that run, -1 where the rule does not fire)."""
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators differ in length")
    if not (np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0) & (num <= den)).all():
        raise ValueError("pchart: every point needs 0 <= numerator <= denominator, denominator > 0")
    n = len(num)
    r = _pchart_long(np.zeros(n, dtype=int), num, den, np.full(n, bool(overlapping)), baseline, min_points)
    out = pd.DataFrame({"value": num / den if n else num})
    for col in ("centre", "lower", "upper", "lower_2sigma", "upper_2sigma", "z", "trial"):
        out[col] = r[col]
    for rule in ("beyond_limits", "run", "trend", "two_of_three"):
        out[rule] = r[rule]
        out[f"{rule}_since"] = np.where(r[rule] != 0, r[f"{rule}_since"], -1)
    return out


def _arcsine_limits(target, sd, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Limits z standard deviations either side of ``target`` on the arcsine-square-root scale, as proportions."""
    return np.sin(np.clip(target - z * sd, 0, np.pi / 2)) ** 2, np.sin(np.clip(target + z * sd, 0, np.pi / 2)) ** 2


def funnel_limits(p0: float, denominators, tau2: float = 0.0, z: float = 3.09) -> tuple[np.ndarray, np.ndarray]:
    """A funnel's lower and upper limits at any ``denominators`` (England proportion ``p0``, additive
    over-dispersion ``tau2`` as ``funnel`` estimates it): the curve a funnel plot draws; at a council's own
    denominator, the limits it was judged by."""
    sd = np.sqrt(1 / (4 * np.asarray(denominators, dtype=float)) + tau2)
    return _arcsine_limits(np.arcsin(np.sqrt(p0)), sd, z)


def _funnel_long(gid: np.ndarray, num: np.ndarray, den: np.ndarray, z: float = 3.09,
                 method: str = "additive", trim: float = 0.1) -> dict:
    """Funnel limits for proportions for many funnels at once (``gid`` numbers the funnels)."""
    if method not in ("additive", "multiplicative", "none"):
        raise ValueError("method must be 'additive', 'multiplicative' or 'none'")
    k = int(gid.max()) + 1 if len(gid) else 0
    n_units = np.bincount(gid, minlength=k).astype(float)
    p0 = np.bincount(gid, weights=num, minlength=k) / np.bincount(gid, weights=den, minlength=k)
    target = np.arcsin(np.sqrt(p0))
    p = num / den
    Y = np.arcsin(np.sqrt(np.clip(p, 0, 1)))
    s = 1 / (2 * np.sqrt(den))
    zu = (Y - target[gid]) / s
    zs = pd.Series(zu)
    lo_q = zs.groupby(gid).quantile(trim).reindex(range(k)).to_numpy()
    hi_q = zs.groupby(gid).quantile(1 - trim).reindex(range(k)).to_numpy()
    zw = np.clip(zu, lo_q[gid], hi_q[gid])
    phi = np.bincount(gid, weights=zw ** 2, minlength=k) / n_units
    w = 1 / s ** 2
    sw, sw2 = np.bincount(gid, weights=w, minlength=k), np.bincount(gid, weights=w ** 2, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau2 = np.maximum(0.0, (n_units * phi - (n_units - 1)) / (sw - sw2 / sw))
    over = phi > 1
    tau2 = np.where(over & (method == "additive"), np.nan_to_num(tau2), 0.0)
    if method == "multiplicative":
        sd = s * np.sqrt(np.where(over, phi, 1.0)[gid])
    else:
        sd = np.sqrt(s ** 2 + tau2[gid])
    t = target[gid]
    lower, upper = _arcsine_limits(t, sd, z)
    zadj = (Y - t) / sd
    side = np.where(zadj > z, 1, np.where(zadj < -z, -1, 0))
    return {"p": p, "p0": p0[gid], "lower": lower, "upper": upper, "z": zadj, "z_unadjusted": zu,
            "phi": phi[gid], "tau2": tau2[gid], "side": side}


def funnel(numerators, denominators, z: float = 3.09, method: str = "additive", trim: float = 0.1) -> pd.DataFrame:
    """Funnel plot for proportions across units (Spiegelhalter 2005; as NHS-R FunnelPlotR computes it).

    Why: councils differ tenfold in size, so the same rate is strong evidence in a large council and noise
    in a small one; a funnel draws each council's limits at its own denominator. Councils also differ more
    than binomial chance allows (practice, thresholds, demography), so the limits are widened for the
    over-dispersion seen, otherwise half of England would be 'outside'.

    Works on the arcsine-square-root scale: target asin(sqrt(p0)), p0 = sum(numerators) / sum(denominators),
    standard error 1 / (2 sqrt(n)). phi = mean of squared z-scores winsorised at ``trim`` each end. When
    phi > 1: ``additive`` (default, FunnelPlotR's) adds the DerSimonian-Laird between-unit variance
    tau^2 = (n phi - (n - 1)) / (sum w - sum w^2 / sum w), w = 1 / s^2, to s^2; ``multiplicative``
    multiplies s by sqrt(phi); ``none`` leaves the limits unadjusted.

    Returns one row per unit, in input order: ``p``, ``p0`` (expected), ``lower``, ``upper`` (proportions),
    ``z`` (over-dispersion adjusted), ``z_unadjusted``, ``phi``, ``tau2``, ``side`` (+1 above, -1 below,
    0 inside) and ``outside``. Units with a missing or zero denominator get missing values."""
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("numerators and denominators differ in length")
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0) & (num <= den)
    cols = ("p", "p0", "lower", "upper", "z", "z_unadjusted", "phi", "tau2")
    out = pd.DataFrame({c: np.full(len(num), np.nan) for c in cols})
    out["side"] = 0
    if ok.any():
        r = _funnel_long(np.zeros(int(ok.sum()), dtype=int), num[ok], den[ok], z, method, trim)
        for c in (*cols, "side"):
            out.loc[ok, c] = r[c]
    out["outside"] = out["side"] != 0
    return out


# ---------------------------------------------------------------- signals ---------------------------------

def _fmt(v: float, unit: str) -> str:
    if unit == "percent":
        return f"{v:.1f}%"
    if unit == "rate_per_10k":
        return f"{v:.1f} per 10,000"
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"


def _direction(side: np.ndarray, polarity: np.ndarray) -> np.ndarray:
    worse_up = np.where(polarity == "lower_is_worse", -1, 1)
    return np.where((polarity == "context") | (side * worse_up > 0), "concern", "improvement")


def _catalogue(catalogue: pd.DataFrame) -> pd.DataFrame:
    cat = catalogue.rename(columns={"id": "indicator"}) if "indicator" not in catalogue else catalogue
    cat = cat.drop_duplicates("indicator").set_index("indicator")
    out = pd.DataFrame(index=cat.index)
    out["polarity"] = cat["polarity"] if "polarity" in cat else "context"
    out["title"] = cat["title"].fillna(pd.Series(cat.index, index=cat.index)) if "title" in cat else cat.index
    out["unit"] = cat["unit"] if "unit" in cat else None
    return out


def known_dates(ind: pd.DataFrame) -> pd.Series:
    """When each indicator row could first be read: its period end; a DfE published figure once it was
    published (``published_on``; where the frame has no such column or the value is missing, ``period_end``
    + the published collection's ``default_publication_lag_months``). Early warning and the report's charts both judge an ``as_of`` by this."""
    period = pd.to_datetime(ind["period_end"]).astype("datetime64[ns]")
    published = ind["source"].eq("published")
    lag = schema.collection("published").spec["default_publication_lag_months"]
    known = period.where(~published, period + pd.DateOffset(months=lag))
    if "published_on" in ind:
        on = pd.to_datetime(ind["published_on"]).astype("datetime64[ns]")
        known = on.where(published & on.notna(), known)
    return known.where(known > period, period)


def _prepare(indicators: pd.DataFrame, cat: pd.DataFrame) -> pd.DataFrame:
    """Once per frame: typed columns, the date each row became known, and which rows SPC / funnels read.

    A row is known when its period has ended; a DfE published figure only once it was published
    (``published_on``; where the frame has no such column or the value is missing, ``period_end`` +
    ``default_publication_lag_months`` is assumed)."""
    ind = indicators
    period = pd.to_datetime(ind["period_end"]).astype("datetime64[ns]")
    known = known_dates(ind).to_numpy()
    window = ind["window"].astype(object).to_numpy()
    source = ind["source"].astype(object).to_numpy()
    stream = np.full(len(ind), -1, dtype=np.int8)
    for s, (win, src) in enumerate(STREAMS):
        stream[(window == win) & (source == src)] = s
    num = pd.to_numeric(ind["numerator"], errors="coerce").to_numpy(float)
    den = pd.to_numeric(ind["denominator"], errors="coerce").to_numpy(float)
    value = pd.to_numeric(ind["value"], errors="coerce").to_numpy(float)
    indicator = ind["indicator"].astype(object).to_numpy()
    # Funnels for proportions only: percent indicators (no unit declared: numerators never above
    # denominators). Rates per 10,000 need Poisson limits, ratios (caseload) are not proportions: SPC only.
    units = cat["unit"].to_dict()
    unit = np.array([units.get(i) for i in indicator], dtype=object)
    over = pd.Series(num > den).groupby(indicator).transform("any").to_numpy(dtype=bool)
    proportion = (unit == "percent") | (pd.isna(unit) & ~over)
    prop = (proportion & (stream >= 0) & np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0)
            & (num <= den))
    # SPC: the monthly series where the indicator has one (independent points); otherwise, for proportions,
    # the child-level rolling 12-month series (overlapping points: beyond-limits only, see _pchart_long).
    # Rates and ratios without a monthly series (CLA per 10,000: context; caseloads: published annually)
    # are not charted.
    child = source == "child_level"
    has_month = pd.Series((window == "month") & child).groupby(indicator).transform("any").to_numpy(dtype=bool)
    counted = np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0) & (num <= den) & np.isfinite(value)
    spc = child & np.isfinite(value) & np.where(
        has_month, (window == "month") & (counted | ~proportion), (window == "rolling_12m") & counted & proportion)
    out = pd.DataFrame({
        "la_code": ind["la_code"].astype(object).to_numpy(), "indicator": indicator, "period_end": period.to_numpy(),
        "known": known, "stream": stream, "numerator": num, "denominator": den, "value": value, "spc": spc,
        "prop": prop, "window": window, "proportion": proportion})
    out = out[spc | prop].sort_values(["indicator", "la_code", "stream", "period_end"], kind="stable")
    out = out.drop_duplicates(["indicator", "la_code", "stream", "period_end"])
    return out.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype={"DOUBLE": "float64", "INTEGER": "int64"}.get(t, "object"))
                         for c, (t, _) in COLUMNS.items()})


def _spc_signals(vis: pd.DataFrame, cat: pd.DataFrame, as_of: pd.Timestamp, stale_months: int,
                 baseline: int) -> pd.DataFrame:
    rows = vis[vis["spc"].to_numpy()]
    rows = rows[~rows.duplicated(["indicator", "la_code", "period_end"])]
    if rows.empty:
        return pd.DataFrame()
    prop = rows["proportion"].to_numpy(dtype=bool)
    if prop.all() or not prop.any():
        return _spc_chart(rows, cat, as_of, stale_months, baseline, bool(prop.all()))
    parts = [_spc_chart(rows[m], cat, as_of, stale_months, baseline, kind) for m, kind in ((prop, True), (~prop, False))]
    return pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) \
        else pd.DataFrame()


def _spc_chart(rows: pd.DataFrame, cat: pd.DataFrame, as_of: pd.Timestamp, stale_months: int, baseline: int,
               proportion: bool) -> pd.DataFrame:
    """Signals at ``as_of`` from each series' latest point: p'-charts for proportions, XmR otherwise."""
    la, ind = rows["la_code"].to_numpy(), rows["indicator"].to_numpy()
    brk = np.r_[True, (la[1:] != la[:-1]) | (ind[1:] != ind[:-1])]
    gid = np.cumsum(brk) - 1
    windows = rows["window"].to_numpy()
    if proportion:
        r = _pchart_long(gid, rows["numerator"].to_numpy(float), rows["denominator"].to_numpy(float),
                         windows != "month", baseline=baseline)
        scale = pd.Series(ind).map(cat["unit"]).map(UNITS).fillna(100.0).to_numpy()
        values = rows["numerator"].to_numpy(float) / rows["denominator"].to_numpy(float) * scale
        for key in ("centre", "lower", "upper"):
            r[key] = r[key] * scale
    else:
        values = rows["value"].to_numpy(float)
        r = _xmr_long(gid, values, baseline=baseline)
    periods = rows["period_end"].to_numpy()
    last = np.r_[brk[1:], True]
    fresh = periods > (as_of - pd.DateOffset(months=stale_months)).to_datetime64()
    pick = last & fresh
    sustained = _sustained(r, brk)
    out = []
    for rule, method in zip(("beyond_limits", "run", "trend", "two_of_three"), SPC_METHODS):
        i = np.flatnonzero(pick & (r[rule] != 0))
        if not len(i):
            continue
        start = r[f"{rule}_since"][i]
        side = r[rule][i]
        out.append(pd.DataFrame({
            "la_code": la[i], "indicator": ind[i], "method": method, "value": values[i], "expected": r["centre"][i],
            "lower": r["lower"][i], "upper": r["upper"][i], "side": side, "since": periods[start],
            "n_points": i - start + 1, "period": periods[i], "window": windows[i],
            "sustained": np.where(side > 0, sustained[0][i], sustained[1][i])}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _sustained(r: dict, brk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point, (upwards, downwards): is the special cause corroborated -- two or more rules firing
    together in that direction, or a point beyond the limits with another beyond them on the same side
    in the two months before? One point beyond 3 sigma happens by chance in 1 month in 740 on each side,
    a run of 7 in about 1 in 130: across five monthly indicators a stable council would raise one of them
    every year or two. Two rules at once, or the limit crossed twice in three months, is what a sustained
    shift produces and chance rarely does."""
    rules = np.stack([r[k] for k in ("beyond_limits", "run", "trend", "two_of_three")])
    b = r["beyond_limits"]
    prev = np.zeros((2, len(b)), dtype=int)
    for lag in (1, 2):
        shifted = np.r_[np.zeros(lag, dtype=int), b[:-lag]] if len(b) > lag else np.zeros(len(b), dtype=int)
        crossed = np.zeros(len(b), dtype=bool)     # no lag across the start of a series
        for k in range(lag):
            crossed |= np.r_[np.zeros(k, dtype=bool), brk[:len(brk) - k]] if k else brk
        prev[lag - 1] = np.where(crossed, 0, shifted)
    # overlapping rolling windows share 11 months of data: the same excursion seen again is no corroboration
    independent = ~np.asarray(r.get("overlapping", np.zeros(len(b), dtype=bool)), dtype=bool)
    out = []
    for sign in (1, -1):
        both = (rules == sign).sum(axis=0) >= 2
        twice = (b == sign) & ((prev[0] == sign) | (prev[1] == sign)) & independent
        out.append(both | twice)
    return out[0], out[1]


def _funnel_signals(vis: pd.DataFrame, cat: pd.DataFrame, z: float, method: str, min_units: int) -> pd.DataFrame:
    rows = vis[vis["prop"].to_numpy()]
    if rows.empty:
        return pd.DataFrame()
    # A funnel compares councils on one period of one series; only periods with enough councils count.
    key = ["indicator", "stream", "period_end"]
    size = rows.groupby(key, sort=False)["la_code"].transform("size").to_numpy()
    rows = rows[size >= min_units]
    if rows.empty:
        return pd.DataFrame()
    # The series each indicator is judged on at as_of: the one with the latest qualifying period
    # (ties: rolling_12m, then child-level dfe_year, then published).
    latest = rows.groupby(["indicator", "stream"], sort=False)["period_end"].max().reset_index()
    latest = latest.sort_values(["indicator", "period_end", "stream"], ascending=[True, False, True])
    chosen = latest.drop_duplicates("indicator")
    rows = rows.merge(chosen[["indicator", "stream"]], on=["indicator", "stream"])   # keeps the sort order
    # rows: sorted by indicator, la_code, period_end. Funnels: one per indicator and period.
    gid = rows.groupby(["indicator", "period_end"], sort=False).ngroup().to_numpy()
    f = _funnel_long(gid, rows["numerator"].to_numpy(float), rows["denominator"].to_numpy(float), z, method)
    # since: consecutive periods of this series in which the council was outside on the same side.
    rank = rows.groupby("indicator", sort=False)["period_end"].rank(method="dense").to_numpy().astype(int)
    la, ind = rows["la_code"].to_numpy(), rows["indicator"].to_numpy()
    brk = np.r_[True, (la[1:] != la[:-1]) | (ind[1:] != ind[:-1]) | (np.diff(rank) != 1)]
    _, start = _streak(f["side"], brk)
    periods = rows["period_end"].to_numpy()
    top = rows.groupby("indicator", sort=False)["period_end"].transform("max").to_numpy()
    i = np.flatnonzero((periods == top) & (f["side"] != 0))
    if not len(i):
        return pd.DataFrame()
    scale = pd.Series(ind[i]).map(cat["unit"]).map(UNITS).fillna(100.0).to_numpy()
    councils = rows.groupby(["indicator", "period_end"], sort=False)["la_code"].transform("size").to_numpy()
    return pd.DataFrame({
        "la_code": la[i], "indicator": ind[i], "method": FUNNEL_METHOD,
        "value": f["p"][i] * scale, "expected": f["p0"][i] * scale,
        "lower": f["lower"][i] * scale, "upper": f["upper"][i] * scale, "side": f["side"][i],
        "since": periods[start[i]], "n_points": rank[i] - rank[start[i]] + 1, "period": periods[i],
        "window": [STREAMS[int(s)][0] for s in rows["stream"].to_numpy()[i]], "councils": councils[i]})


def _explain(sig: pd.DataFrame, cat: pd.DataFrame) -> list[str]:
    titles, units = cat["title"].to_dict(), cat["unit"].to_dict()
    cols = ("indicator", "method", "value", "expected", "lower", "upper", "side", "since", "n_points", "period",
            "window", "direction", "councils")
    if "councils" not in sig:
        sig = sig.assign(councils=np.nan)
    out = []
    for ind, meth, val, exp, lo, hi, side, since, n_points, period, window, direction, councils in zip(
            *(sig[c].tolist() for c in cols)):
        title, unit = titles.get(ind) or ind, units.get(ind)
        v, e = _fmt(val, unit), _fmt(exp, unit)
        since = pd.Timestamp(since).strftime("%Y-%m")
        up = side > 0
        if meth == "spc_point_beyond_limits":
            lim = "above the upper" if up else "below the lower"
            text = (f"{title} {'rose' if up else 'fell'} to {v} (expected {e}); {lim} limit "
                    f"({_fmt(hi if up else lo, unit)}) since {since}")
        elif meth == "spc_run":
            text = (f"{title} has been {'above' if up else 'below'} its usual level ({e}) for {n_points} "
                    f"months in a row, since {since}; now {v}")
        elif meth == "spc_trend":
            text = (f"{title} has {'risen' if up else 'fallen'} {n_points - 1} months running, since {since}; "
                    f"now {v} (usual level {e})")
        elif meth == "spc_two_of_three":
            text = (f"{title} at {v} is close to its {'upper' if up else 'lower'} limit (2 of the last 3 months "
                    f"beyond two sigma; usual level {e}), since {since}")
        else:
            when = pd.Timestamp(period).strftime("%Y-%m")
            # The centre is the pooled figure of the councils whose returns are held, England's only when
            # every council's are: say which.
            text = (f"{title} at {v} ({window.replace('_', ' ')} to {when}) is {'above' if up else 'below'} "
                    f"the funnel limit for a council of its size ({_fmt(hi if up else lo, unit)}; the "
                    f"{int(councils)} councils in this repository {e}); outside since {since}")
        out.append(f"{text} ({direction}).")
    return out


def signals_as_of(indicators: pd.DataFrame, catalogue: pd.DataFrame, as_of, *, z: float = 3.09,
                  funnel_method: str = "additive", baseline: int = 12, stale_months: int = 3,
                  min_units: int = 10) -> pd.DataFrame:
    """The signals live at ``as_of``, computed only from what was known then.

    Why: a warning is only useful if it could have been raised at the time; evaluating with data that
    arrived later (a later month, a figure published after ``as_of``) would make any back-test flatter than
    real life. So rows are kept only if ``period_end <= as_of`` and, for ``source = 'published'``, their
    ``published_on <= as_of`` (no ``published_on`` column, or a missing one: ``period_end`` + 8 months).

    - SPC: each council's ``month`` series (p'-chart; state indicators: ``rolling_12m``, beyond limits
      only; see the module docstring) -- a signal is live when the latest point fires a rule, that point is
      at most ``stale_months`` old, and the series has 12+ points;
    - funnel: per indicator, every council's value on the latest period (of the ``rolling_12m`` or
      ``dfe_year`` series, whichever is later) holding ``min_units``+ councils, against the pooled figure
      of all councils in the frame (England's only when every council's returns are held); proportions
      (``unit = 'percent'``) only.

    Returns the columns of ``early_warning`` (see ``COLUMNS``), one row per rule that fires."""
    if indicators is None or indicators.empty:
        return _empty()
    cat = _catalogue(catalogue)
    return _signals(_prepare(indicators, cat), cat, pd.Timestamp(as_of), z=z, funnel_method=funnel_method,
                    baseline=baseline, stale_months=stale_months, min_units=min_units)


def _signals(prep: pd.DataFrame, cat: pd.DataFrame, as_of: pd.Timestamp, *, z: float, funnel_method: str,
             baseline: int, stale_months: int, min_units: int) -> pd.DataFrame:
    vis = prep[prep["known"].to_numpy() <= as_of.to_datetime64()]
    parts = [p for p in (_spc_signals(vis, cat, as_of, stale_months, baseline),
                         _funnel_signals(vis, cat, z, funnel_method, min_units)) if not p.empty]
    if not parts:
        return _empty()
    sig = pd.concat(parts, ignore_index=True)
    polarity = sig["indicator"].map(cat["polarity"]).fillna("context").to_numpy()
    sig["direction"] = _direction(sig["side"].to_numpy(), polarity)
    sustained = sig["sustained"].fillna(False).to_numpy(dtype=bool) if "sustained" in sig else np.zeros(len(sig), bool)
    base = np.where((sig["method"] == FUNNEL_METHOD) | sustained, 2, 1)
    fam = pd.Series(np.where(sig["method"] == FUNNEL_METHOD, "funnel", "spc"))
    fams = fam.groupby([sig["la_code"], sig["indicator"], sig["direction"]]).transform("nunique")
    sig["severity"] = np.minimum(3, base + (fams.to_numpy() > 1)).astype("int64")
    sig["as_of"] = as_of.date()
    sig["since"] = pd.to_datetime(sig["since"]).dt.date
    sig["explanation"] = _explain(sig, cat)
    sig = sig.sort_values(["indicator", "la_code", "method"]).reset_index(drop=True)
    return sig[list(COLUMNS)].astype({"value": "float64", "expected": "float64", "lower": "float64",
                                     "upper": "float64", "severity": "int64"})


# ---------------------------------------------------------------- build ------------------------------------

def month_ends(indicators: pd.DataFrame) -> list[date]:
    """Every month end from the first to the last ``rolling_12m`` or ``month`` period in the frame."""
    roll = pd.to_datetime(indicators.loc[indicators["window"].isin(["rolling_12m", "month"]), "period_end"]).dropna()
    if roll.empty:
        return []
    return [d.date() for d in pd.date_range(roll.min(), roll.max(), freq="ME")]


def early_warning_frame(indicators: pd.DataFrame, catalogue: pd.DataFrame, *, z: float = 3.09,
                        funnel_method: str = "additive", baseline: int = 12, stale_months: int = 3,
                        min_units: int = 10) -> pd.DataFrame:
    """``signals_as_of`` at every month end covered by the rolling 12-month data, stacked (the frame is
    prepared once; each month end then filters on the date each row became known)."""
    if indicators is None or indicators.empty:
        return _empty()
    cat = _catalogue(catalogue)
    prep = _prepare(indicators, cat)
    frames = [_signals(prep, cat, pd.Timestamp(d), z=z, funnel_method=funnel_method, baseline=baseline,
                       stale_months=stale_months, min_units=min_units) for d in month_ends(indicators)]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def build_early_warning(con: duckdb.DuckDBPyConnection, **options) -> None:
    """Create ``early_warning`` from ``indicators`` and ``indicator_catalogue`` in an open connection.

    Why a table: the warnings then sit in the catalogue beside the figures they explain, queryable per
    council and date. No input (or no rolling 12-month data) gives an empty, correctly typed table."""
    started = time.perf_counter()
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    frame = _empty()
    if {"indicators", "indicator_catalogue"} <= tables:
        ind = con.execute('SELECT * FROM indicators').df()
        cat = con.execute("SELECT * FROM indicator_catalogue").df()
        if not ind.empty:
            frame = early_warning_frame(ind, cat, **options)
    create_table_from_frame(con, "early_warning", frame, COLUMNS, order_by="as_of, indicator, la_code, method")
    log.info("early_warning: %d signals in %.1f s", len(frame), time.perf_counter() - started)
