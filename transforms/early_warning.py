"""Early warning: each council's indicators against its own history (SPC) and against England (funnels).

``early_warning(la_code, indicator, as_of, method, value, expected, lower, upper, direction, since,
severity, explanation)`` holds, for every month end ``as_of`` covered by the rolling 12-month child-level
indicators, the signals that were *live* at that date, computed only from what was known then.

Own history -- XmR charts as NHS "Making Data Count" draws them (the NHS-R package NHSRplotthedots):

- centre = mean of the baseline (the first ``baseline`` points, default 12); limits = centre +/- 2.66 x
  mean moving range of the baseline (3 sigma). As in NHSRplotthedots (``screen_outliers = TRUE``), moving
  ranges of 3.267 x the mean moving range or more are dropped and the mean recomputed, so one wild month
  does not widen the limits it is judged by.
- special causes: a point beyond the limits (``spc_point_beyond_limits``); 7 or more consecutive points on
  one side of the centre, a point exactly on it breaking the run (``spc_run``); 7 consecutive points each
  strictly higher (or lower) than the one before, a tie breaking it (``spc_trend``); 2 of 3 consecutive
  points in the band between 2 and 3 sigma, all three on the same side of the centre
  (``spc_two_of_three``; as NHSRplotthedots, a point beyond 3 sigma counts under the first rule instead).
- rules are evaluated *as at each point*, from that point and the ones before it: a run is signalled at
  its 7th point, not painted back over its first six as a chart drawn later would. That is what makes a
  signal at ``as_of`` free of look-ahead, and lets one pass over the history serve every ``as_of``.
- under 12 points there are only trial limits: no signal is raised (``xmr`` returns ``trial = True``).

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

- 1 -- a pattern inside the limits (run, trend, 2 of 3 near a limit): a shift worth watching;
- 2 -- a point beyond the council's own 3-sigma limits, or outside England's 99.8 % funnel;
- +1 (at most 3) when own history and England agree: an SPC signal and a funnel signal on the same
  council, indicator and ``as_of`` in the same direction.
"""
from __future__ import annotations

import logging
import time
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from transforms.sql import create_table_from_frame

log = logging.getLogger(__name__)

LIMIT = 2.66                      # 3 sigma for an XmR chart: 3 / d2, d2 = 1.128
NEAR = 2 * LIMIT / 3              # 2 sigma
MR_SCREEN = 3.267                 # D4: moving ranges at or above D4 x mean MR are screened out
SPC_METHODS = ("spc_point_beyond_limits", "spc_run", "spc_trend", "spc_two_of_three")
FUNNEL_METHOD = "funnel_england"
SCALE = {"percent": 100.0, "rate_per_10k": 10_000.0, "ratio": 1.0}
# Where the indicators frame carries no publication date, a published (DfE) figure is taken to be known
# 8 months after its period ends (31 March -> 30 November: DfE's CIN and CLA releases come out in the
# autumn after the year), so it is never used before it could have been read.
PUBLICATION_LAG_MONTHS = 8
# Funnel series, by preference when two end on the same date.
STREAMS = (("rolling_12m", "child_level"), ("dfe_year", "child_level"), ("dfe_year", "published"))

COLUMNS = {
    "la_code": ("VARCHAR", "3-digit old LA code of the council"),
    "indicator": ("VARCHAR", "Indicator id (indicator_catalogue.indicator)"),
    "as_of": ("DATE", "Month end at which the signal was live, using only data known by then"),
    "method": ("VARCHAR", "spc_point_beyond_limits, spc_run, spc_trend, spc_two_of_three (own rolling 12-month "
                          "history, XmR) or funnel_england (against all councils, 99.8 % funnel)"),
    "value": ("DOUBLE", "The council's value at the latest point (indicator unit)"),
    "expected": ("DOUBLE", "SPC: centre line of the council's own baseline; funnel: England proportion"),
    "lower": ("DOUBLE", "Lower limit (SPC 3 sigma; funnel 99.8 %, over-dispersion adjusted)"),
    "upper": ("DOUBLE", "Upper limit (SPC 3 sigma; funnel 99.8 %, over-dispersion adjusted)"),
    "direction": ("VARCHAR", "concern or improvement by the indicator's polarity (context indicators: concern)"),
    "since": ("DATE", "First period of the current special-cause run"),
    "severity": ("INTEGER", "1 pattern inside limits; 2 beyond own limits or outside the funnel; +1 (max 3) when "
                            "own history and England agree"),
    "explanation": ("VARCHAR", "The signal in a sentence"),
}
RELATIONS = {  # documented in the catalogue's relations and column_dictionary (transforms/catalogue.py)
    "early_warning": ("LA / indicator / month end / method",
                      "Early-warning signals live at each month end: own rolling 12-month history (XmR) and "
                      "England funnel, using only data known at that date", COLUMNS),
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


def _xmr_long(gid: np.ndarray, y: np.ndarray, baseline: int = 12, min_points: int = 12,
              screen_outliers: bool = True, run_length: int = 7, trend_length: int = 7) -> dict:
    """XmR statistics and causal special-cause flags for many series at once.

    ``gid`` numbers the series (0..k-1, each series contiguous and in time order), ``y`` its values. The
    same arithmetic as ``xmr``, vectorised over series so a national run is a handful of numpy passes."""
    n = len(y)
    idx = np.arange(n)
    new = np.ones(n, dtype=bool)
    new[1:] = gid[1:] != gid[:-1]
    first = np.maximum.accumulate(np.where(new, idx, 0)) if n else idx
    pos = idx - first
    k = int(gid.max()) + 1 if n else 0

    base = pos < baseline
    cnt = np.bincount(gid, weights=base, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.bincount(gid, weights=np.where(base, y, 0.0), minlength=k) / cnt
        mr = np.full(n, np.nan)
        mr[1:] = np.abs(np.diff(y))
        mr_ok = base & (pos >= 1)
        amr = (np.bincount(gid, weights=np.where(mr_ok, mr, 0.0), minlength=k)
               / np.bincount(gid, weights=mr_ok, minlength=k))
        if screen_outliers:
            mr_ok = mr_ok & (mr < MR_SCREEN * amr[gid])
            amr = (np.bincount(gid, weights=np.where(mr_ok, mr, 0.0), minlength=k)
                   / np.bincount(gid, weights=mr_ok, minlength=k))
    c, a = centre[gid], amr[gid]
    lower, upper = c - LIMIT * a, c + LIMIT * a
    lower2, upper2 = c - NEAR * a, c + NEAR * a

    trial = pos < max(baseline, min_points) - 1          # fewer than min_points (and a partial baseline) so far
    side = np.sign(y - c).astype(int)
    outside = np.where(y > upper, 1, np.where(y < lower, -1, 0))
    close = np.where((outside == 0) & ((y > upper2) | (y < lower2)), side, 0)

    out_len, out_start = _streak(outside, new)
    run_len, run_start = _streak(side, new)
    step = np.zeros(n, dtype=int)
    step[1:] = np.sign(np.diff(y)).astype(int)
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

    live = ~trial & np.isfinite(c) & np.isfinite(a)
    return {
        "pos": pos, "centre": c, "lower": lower, "upper": upper, "lower_2sigma": lower2, "upper_2sigma": upper2,
        "moving_range": np.where(new, np.nan, mr), "trial": trial,
        "beyond_limits": np.where(live, outside, 0), "beyond_limits_since": out_start,
        "run": np.where(live & (run_len >= run_length), side, 0), "run_since": run_start,
        "trend": np.where(live & (trend_len >= trend_length - 1), step, 0), "trend_since": trend_start - 1,
        "two_of_three": np.where(live & (win != 0) & (close == win), win, 0), "two_of_three_since": tot_start,
    }


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
    lower = np.sin(np.clip(t - z * sd, 0, np.pi / 2)) ** 2
    upper = np.sin(np.clip(t + z * sd, 0, np.pi / 2)) ** 2
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


def _prepare(indicators: pd.DataFrame, cat: pd.DataFrame) -> pd.DataFrame:
    """Once per frame: typed columns, the date each row became known, and which rows SPC / funnels read.

    A row is known when its period has ended; a DfE published figure only once it was published
    (``published_on``; where the frame has no such column or the value is missing, ``period_end`` +
    PUBLICATION_LAG_MONTHS is assumed)."""
    ind = indicators
    period = pd.to_datetime(ind["period_end"]).astype("datetime64[ns]")
    published = (ind["source"] == "published").to_numpy(dtype=bool)
    known = period.to_numpy().copy()
    lagged = (period + pd.DateOffset(months=PUBLICATION_LAG_MONTHS)).to_numpy()
    if "published_on" in ind:
        pub = pd.to_datetime(ind["published_on"]).astype("datetime64[ns]").to_numpy()
        has = ~np.isnat(pub)
        known = np.where(published & has, pub, np.where(published, lagged, known))
    else:
        known = np.where(published, lagged, known)
    known = np.maximum(known, period.to_numpy())
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
    spc = (window == "rolling_12m") & np.isfinite(value)
    out = pd.DataFrame({
        "la_code": ind["la_code"].astype(object).to_numpy(), "indicator": indicator, "period_end": period.to_numpy(),
        "known": known, "stream": stream, "numerator": num, "denominator": den, "value": value, "spc": spc,
        "prop": prop})
    out = out[spc | prop].sort_values(["indicator", "la_code", "stream", "period_end"], kind="stable")
    out = out.drop_duplicates(["indicator", "la_code", "stream", "period_end"])
    return out.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype={"DOUBLE": "float64", "INTEGER": "int64"}.get(t, "object"))
                         for c, (t, _) in COLUMNS.items()})


def _spc_signals(vis: pd.DataFrame, as_of: pd.Timestamp, stale_months: int, baseline: int) -> pd.DataFrame:
    rows = vis[vis["spc"].to_numpy()]
    rows = rows[~rows.duplicated(["indicator", "la_code", "period_end"])]   # sorted by stream: child-level first
    if rows.empty:
        return pd.DataFrame()
    la, ind = rows["la_code"].to_numpy(), rows["indicator"].to_numpy()
    brk = np.r_[True, (la[1:] != la[:-1]) | (ind[1:] != ind[:-1])]
    gid = np.cumsum(brk) - 1
    values = rows["value"].to_numpy(float)
    r = _xmr_long(gid, values, baseline=baseline)
    periods = rows["period_end"].to_numpy()
    last = np.r_[brk[1:], True]
    fresh = periods > (as_of - pd.DateOffset(months=stale_months)).to_datetime64()
    pick = last & fresh
    out = []
    for rule, method in zip(("beyond_limits", "run", "trend", "two_of_three"), SPC_METHODS):
        i = np.flatnonzero(pick & (r[rule] != 0))
        if not len(i):
            continue
        start = r[f"{rule}_since"][i]
        out.append(pd.DataFrame({
            "la_code": la[i], "indicator": ind[i], "method": method, "value": values[i], "expected": r["centre"][i],
            "lower": r["lower"][i], "upper": r["upper"][i], "side": r[rule][i], "since": periods[start],
            "n_points": i - start + 1, "period": periods[i], "window": "rolling_12m"}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


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
    scale = pd.Series(ind[i]).map(cat["unit"]).map(SCALE).fillna(100.0).to_numpy()
    return pd.DataFrame({
        "la_code": la[i], "indicator": ind[i], "method": FUNNEL_METHOD,
        "value": f["p"][i] * scale, "expected": f["p0"][i] * scale,
        "lower": f["lower"][i] * scale, "upper": f["upper"][i] * scale, "side": f["side"][i],
        "since": periods[start[i]], "n_points": rank[i] - rank[start[i]] + 1, "period": periods[i],
        "window": [STREAMS[int(s)][0] for s in rows["stream"].to_numpy()[i]]})


def _explain(sig: pd.DataFrame, cat: pd.DataFrame) -> list[str]:
    titles, units = cat["title"].to_dict(), cat["unit"].to_dict()
    cols = ("indicator", "method", "value", "expected", "lower", "upper", "side", "since", "n_points", "period",
            "window", "direction")
    out = []
    for ind, meth, val, exp, lo, hi, side, since, n_points, period, window, direction in zip(
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
            text = (f"{title} at {v} ({window.replace('_', ' ')} to {when}) is {'above' if up else 'below'} "
                    f"England's funnel limit for a council of its size ({_fmt(hi if up else lo, unit)}; "
                    f"England {e}); outside since {since}")
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

    - SPC: each council's ``rolling_12m`` series (``xmr`` rules) -- a signal is live when the latest point
      fires a rule, that point is at most ``stale_months`` old, and the series has 12+ points;
    - funnel: per indicator, every council's value on the latest period (of the ``rolling_12m`` or
      ``dfe_year`` series, whichever is later) holding ``min_units``+ councils, against England (all
      councils in the frame); proportions (``unit = 'percent'``) only.

    Returns the columns of ``early_warning`` (see ``COLUMNS``), one row per rule that fires."""
    if indicators is None or indicators.empty:
        return _empty()
    cat = _catalogue(catalogue)
    return _signals(_prepare(indicators, cat), cat, pd.Timestamp(as_of), z=z, funnel_method=funnel_method,
                    baseline=baseline, stale_months=stale_months, min_units=min_units)


def _signals(prep: pd.DataFrame, cat: pd.DataFrame, as_of: pd.Timestamp, *, z: float, funnel_method: str,
             baseline: int, stale_months: int, min_units: int) -> pd.DataFrame:
    vis = prep[prep["known"].to_numpy() <= as_of.to_datetime64()]
    parts = [p for p in (_spc_signals(vis, as_of, stale_months, baseline),
                         _funnel_signals(vis, cat, z, funnel_method, min_units)) if not p.empty]
    if not parts:
        return _empty()
    sig = pd.concat(parts, ignore_index=True)
    polarity = sig["indicator"].map(cat["polarity"]).fillna("context").to_numpy()
    sig["direction"] = _direction(sig["side"].to_numpy(), polarity)
    base = np.where(sig["method"].isin(["spc_point_beyond_limits", FUNNEL_METHOD]), 2, 1)
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
    """Every month end from the first to the last ``rolling_12m`` period in the frame."""
    roll = pd.to_datetime(indicators.loc[indicators["window"] == "rolling_12m", "period_end"]).dropna()
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
