"""Each council's standing on the published statistics and Ofsted's judgements, at every month end.

Published figures are one point a year, so no SPC baseline will exist for years: they are judged by their
**level** against England and the council's statistical neighbours, and by their **change** over two years.
Everything is computed as it could have been on the day: a figure counts from its dataset's ``published_on``
(declared per dataset in ``schemas/``: e.g. CIN census on 31 October, children looked after on 30 November,
the workforce census at 30 September on the following 28 February), an Ofsted judgement from its
``publication_date``. First known or revised: a figure is kept as first known where the file says which
figure that was; no file held does (each gives every year as its own release has it: CSWW 2017-2025 and
the older 2017-2022 layout as revised by their releases), so figures are used as revised, from the first
release date, and the warnings say "as revised"; a file that gives a year in more than one version (KS2's
``version`` column: Provisional, Final, Revised; ``versions`` in schemas/ees) has its first known used, and
the warnings say "earliest version the file holds" (``vintages``). Where two layouts give the
same figure, the later release wins (``schemas/indicators``' ``earlier``).

Metrics (``METRICS``): each a proportion with its denominator (re-referrals of referrals, ...), a rate per
10,000 children aged 0-17 (ONS mid-year estimate of the calendar year before the 31 March year end), a
ratio (caseload) or pounds (children's social care net current expenditure per child aged 0-17, from the
RO3 revenue outturn, ``spend_ro3``). Per metric and year, across every council with a figure:

- ``z_level``: proportions and rates -- the over-dispersion-adjusted funnel z-score (arcsine scale,
  DerSimonian-Laird between-council variance, as ``early_warning.funnel`` computes it), which shrinks a small council's
  deviation towards England by the width of its own funnel; ratios -- a robust z, (x - median) / (1.4826
  MAD). Then averaged with the same deviation from the mean of the council's statistical neighbours (latest
  model), in England's standard deviation, so a council is not flagged for the demand its area explains;
- ``z_change``: the change from two years before (one year when only that is held), as a robust z across
  councils;
- ``signed``: ``clip(z_level, -3, 3) + 0.5 clip(z_change, -3, 3)``, signed by polarity so that positive is
  worse. Rates of children in need, on protection plans and looked after, and referrals (``demand``) have no
  better direction; higher demand and rising demand are read as pressure, as Ofsted's and ADCS's accounts of
  failing services describe them.

Suppressed cells (c, x, z, k, low, u) are missing, never zero: the published view holds them as NULL and
they are dropped here. Joint returns (``314 / 318``, ``940 / 941``; ``schemas/councils.yaml``) are credited
to each member council. A council created by reorganisation takes its predecessors' figures (their mean)
for the years before it existed, so its change is measured across the reorganisation, but it has no row
or warning before its first day (``in_existence``); a council abolished has none after its last day.

Factors (``FACTOR_WEIGHTS``, weights documented there): workforce instability (turnover, agency, vacancies,
caseload, children looked after with 3+ social workers), timeliness (children in need awaiting assessment
at 31 March -- the published trace of assessment timeliness, C2 not being held -- and CP plans open 2 years
or more), repeat work (re-referrals, repeat CP plans), placement stability (3+ placements, long-term
stability, new placements out of area over 20 miles, mid-year school moves), outcomes (health assessments,
convictions, absence and KS2 of children in need and of children looked after), demand (referrals,
children in need, on CP plans and looked after per 10,000), spend and Ofsted history: each the mean of its
metrics' ``signed``.

Warnings (``signals_at``): a figure outside England's 99.8 % range, or an unusual change, is written to
``early_warning`` (methods ``published_level``, ``published_change``) with its explanation in words.

Ofsted history: the latest judgement published by the month end and in the last ``OFSTED_STALE_YEARS``
(a successor inherits its predecessors'), as 2 (Inadequate), 1 (Requires improvement), 0 (Good) or -1
(Outstanding).
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from transforms import schema
from transforms.analytics.early_warning import _funnel_long

STALE_MONTHS = 30     # a figure whose period ended longer ago than this no longer counts (a discontinued series)
CHANGE_WEIGHT = 0.5   # weight of the two-year change beside the level
CLIP = 3.0
LIMIT_Z = 3.09        # 99.8 %: a published figure this far from England's (or a change from the others') warns
OFSTED_POINTS = {"4": 2.0, "3": 1.0, "2": 0.0, "1": -1.0}
OFSTED_STALE_YEARS = 8   # a judgement older than this no longer counts: graded inspections came every 3-5 years, and
                         # the move from SIF (to 2018) to ILACS (2018-2024) left up to 7 years between two of them
OFSTED_WORDS = {"4": "Inadequate", "3": "Requires improvement", "2": "Good", "1": "Outstanding"}


@dataclass(frozen=True)
class Metric:
    id: str
    title: str
    factor: str
    polarity: str          # higher_is_worse | lower_is_worse | demand (higher read as pressure)
    unit: str              # percent | rate | ratio | pounds


METRICS = (
    Metric("turnover_rate_fte", "social worker turnover", "workforce instability", "higher_is_worse", "percent"),
    Metric("agency_rate_fte", "agency social workers", "workforce instability", "higher_is_worse", "percent"),
    Metric("vacancy_rate_fte", "social worker vacancies", "workforce instability", "higher_is_worse", "percent"),
    Metric("caseload_fte", "average caseload", "workforce instability", "higher_is_worse", "ratio"),
    Metric("rereferral_12m", "re-referrals within 12 months", "repeat work", "higher_is_worse", "percent"),
    Metric("repeat_cp_plan", "second or later CP plans", "repeat work", "higher_is_worse", "percent"),
    Metric("social_worker_changes", "children looked after with 3+ social workers", "workforce instability",
           "higher_is_worse", "percent"),
    Metric("awaiting_assessment", "children in need awaiting assessment", "timeliness", "higher_is_worse",
           "percent"),
    Metric("cp_plan_open_2y", "CP plans open 2 years or more", "timeliness", "higher_is_worse", "percent"),
    Metric("placement_stability_short", "children looked after with 3+ placements", "placement stability",
           "higher_is_worse", "percent"),
    Metric("placement_stability_long", "long-term placements stable 2 years", "placement stability",
           "lower_is_worse", "percent"),
    Metric("placements_distant", "new placements out of area over 20 miles", "placement stability",
           "higher_is_worse", "percent"),
    Metric("school_moves_midyear", "children looked after with a mid-year school move", "placement stability",
           "higher_is_worse", "percent"),
    Metric("health_assessment", "children looked after with their health assessment", "outcomes",
           "lower_is_worse", "percent"),
    Metric("convictions_cla", "children looked after convicted or cautioned", "outcomes", "higher_is_worse",
           "percent"),
    Metric("absence_cin", "absence of children in need", "outcomes", "higher_is_worse", "percent"),
    Metric("ks2_rwm_cin", "children in need at the KS2 expected standard", "outcomes", "lower_is_worse",
           "percent"),
    Metric("absence_cla", "absence of children looked after", "outcomes", "higher_is_worse", "percent"),
    Metric("ks2_rwm_cla", "children looked after at the KS2 expected standard", "outcomes", "lower_is_worse",
           "percent"),
    Metric("referral_rate", "referrals per 10,000", "demand", "demand", "rate"),
    Metric("cin_rate", "children in need per 10,000", "demand", "demand", "rate"),
    Metric("cp_rate", "children on CP plans per 10,000", "demand", "demand", "rate"),
    Metric("cla_rate_per_10k", "children looked after per 10,000", "demand", "demand", "rate"),
    Metric("csc_spend_per_child", "children's social care net spend per child", "spend", "demand", "pounds"),
)
# Weights of the factors in the score: each factor's Somers' D (2 x AUC - 1, floored at 0, to 0.05) for
# Inadequate vs Good/Outstanding on the development set, Ofsted's SIF judgements 2014-2018
# (bench/early_warning_weights.py; figures in bench/README.md). Univariate, never fitted jointly: with 40
# Inadequate judgements a joint fit is noise. Factors public at SIF inspection dates are weighed by how well
# they *preceded* the judgement (demand 0.600, repeat work 0.588, timeliness 0.621); factors first published
# later, by how well their first published year tells apart councils Ofsted had judged (workforce 0.877 in
# February 2018, outcomes 0.509 in 2020, placement stability 0.447 in 2022) -- an upper bound, since an
# Inadequate judgement itself brings agency staff, but the only evidence allowed here.
# Ofsted history has no AUC on the development set (every earlier judgement held is an Inadequate before a
# re-inspection), but those 21 re-inspections found Inadequate again against Good 7 : 3, where first
# inspections found it 33 : 54 -- odds 3.8 times higher after an Inadequate, as strong as any published
# factor: it weighs as the strongest one. Spend weighs nothing: its one year held (RO3 2024-25, public in
# December 2025) tells the SIF judgements apart no better than chance (concurrent AUC 0.504); it is shown,
# not scored, as are outcomes and placement stability. ``live warnings`` (child-level SPC/funnel evidence,
# never at SIF dates) keeps weight 1 from the scenario benchmark (bench/README.md).
FACTOR_WEIGHTS = {
    "Ofsted history": 0.75,
    "workforce instability": 0.75,
    "timeliness": 0.25,
    "repeat work": 0.2,
    "demand": 0.2,
    "outcomes": 0.0,
    "placement stability": 0.0,
    "spend": 0.0,
    "live warnings": 1.0,
}
FACTORS = tuple(FACTOR_WEIGHTS)

# metric -> how it is read from the published figures (a rate: the count and its dataset)
_RATES = {"referral_rate": ("c1_referrals", "referral_count"),
          "cin_rate": ("b1_children_in_need", "at31_episodes"),
          "cp_rate": ("d5_cp_plan_duration", "cpp_at31")}


# ---------------------------------------------------------------- reading --------------------------------

def _members() -> dict[str, list[str]]:
    return {j.code: j.members for j in schema.councils().joint_returns}


def _credit_joint(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a joint return (``314 / 318``) repeated for each member council."""
    members = _members()
    joint = frame["la_code"].isin(members)
    if not joint.any():
        return frame
    parts = [frame[~joint]]
    for code, who in members.items():
        rows = frame[frame["la_code"] == code]
        parts += [rows.assign(la_code=m) for m in who]
    out = pd.concat(parts, ignore_index=True)
    # a member's own figure, where published, wins over the joint one
    return out.drop_duplicates(["la_code", "metric", "year"], keep="first")


def read_metrics(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``(la_code, metric, year, period_end, known_from, numerator, denominator, value)``: one published
    figure per council, metric and year (``year``: the year the period ends). Empty when nothing is held."""
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    parts = []
    wanted = [m.id for m in METRICS if m.id not in _RATES]
    columns = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'indicators'").fetchall()}
    if "indicators" in have and "published_on" in columns:
        parts.append(con.execute(f"""
            SELECT la_code, indicator AS metric, year(period_end) AS year, period_end,
                   published_on AS known_from, numerator, denominator, value
            FROM indicators
            WHERE source = 'published' AND "window" = 'dfe_year' AND value IS NOT NULL
              AND published_on IS NOT NULL
              AND indicator IN ({", ".join(f"'{w}'" for w in wanted)})""").df())
    if "published_statistics" in have:
        for metric, (dataset, measure) in _RATES.items():
            parts.append(con.execute("""
                WITH c AS (SELECT old_la_code AS la_code, period_end, max(value) AS n,
                                  max(published_on) AS known
                           FROM published_statistics
                           WHERE dataset = ? AND measure = ? AND geographic_level = 'Local authority'
                             AND value IS NOT NULL GROUP BY ALL),
                     p AS (SELECT old_la_code AS la_code, year(period_end) + 1 AS year, max(value) AS pop,
                                  max(published_on) AS known
                           FROM published_statistics
                           WHERE dataset = 'population_0_17' AND geographic_level = 'Local authority'
                             AND value IS NOT NULL GROUP BY ALL)
                SELECT c.la_code, ? AS metric, year(c.period_end) AS year, c.period_end,
                       greatest(c.known, p.known) AS known_from, c.n AS numerator, p.pop AS denominator,
                       10000 * c.n / p.pop AS value
                FROM c JOIN p ON p.la_code = c.la_code AND p.year = year(c.period_end)
                WHERE p.pop > 0""", [dataset, measure, metric]).df())
    if "spend_ro3" in have:
        # net current expenditure over the services (not their "of which" parts), per child aged 0-17
        # (the latest mid-year estimate held on or before the financial year's end). The landing reads
        # "2024-25" as return year 2025 (schemas/spend_ro3.yaml): the period ends 31 March return_year and
        # the figures are public from the 31 December after it, the later plausible date.
        parts.append(con.execute("""
            WITH s AS (SELECT la_code, return_year AS year, sum(value) AS spend
                       FROM spend_ro3
                       WHERE line = 'Net Current Expenditure' AND service NOT LIKE '% of which %'
                         AND la_code IS NOT NULL GROUP BY ALL HAVING count(value) > 0),
                 p AS (SELECT old_la_code AS la_code, year(period_end) + 1 AS year, max(value) AS pop
                       FROM published_statistics
                       WHERE dataset = 'population_0_17' AND geographic_level = 'Local authority'
                         AND value IS NOT NULL GROUP BY ALL)
            SELECT s.la_code, 'csc_spend_per_child' AS metric, s.year, make_date(s.year, 3, 31) AS period_end,
                   make_date(s.year, 12, 31) AS known_from, 1000 * s.spend AS numerator, p.pop AS denominator,
                   1000 * s.spend / p.pop AS value
            FROM s ASOF JOIN p ON p.la_code = s.la_code AND p.year <= s.year
            WHERE p.pop > 0""").df() if "published_statistics" in have else pd.DataFrame())
    cols = ["la_code", "metric", "year", "period_end", "known_from", "numerator", "denominator", "value"]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    out["period_end"] = pd.to_datetime(out["period_end"]).astype("datetime64[ns]")
    out["known_from"] = pd.to_datetime(out["known_from"]).astype("datetime64[ns]")
    out["year"] = out["year"].astype(int)
    return _credit_joint(out)


def read_neighbours(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Council -> its statistical neighbours (the latest model held; empty when none is held)."""
    try:
        rows = con.execute("""SELECT la_code, list(neighbour_code ORDER BY rank) FROM statistical_neighbours
                              WHERE return_year = (SELECT max(return_year) FROM statistical_neighbours)
                              GROUP BY la_code""").fetchall()
    except duckdb.Error:
        return {}
    return {la: [n for n in ns if n] for la, ns in rows}


def read_judgements(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``(la_code, publication_date, grade)``: Ofsted's overall effectiveness judgements with a publication
    date, matched to councils by LA code, else by name (``schemas/councils.yaml``), and to the council that
    existed on the publication date (``CouncilsFile.as_on``)."""
    cols = ["la_code", "publication_date", "grade"]
    try:
        j = con.execute("""SELECT la_code, la_name, publication_date, overall_effectiveness AS grade
                           FROM ofsted_judgements
                           WHERE publication_date IS NOT NULL AND overall_effectiveness IN ('1','2','3','4')""").df()
    except duckdb.Error:
        return pd.DataFrame(columns=cols)
    by_name = {c.name.lower(): k for k, c in schema.councils().councils.items() if c.until is None}
    by_name.update({c.name.lower(): k for k, c in schema.councils().councils.items() if k not in by_name.values()
                    and c.name.lower() not in by_name})
    code = j["la_code"].where(j["la_code"].notna(), j["la_name"].str.strip().str.lower().map(by_name))
    out = j.assign(la_code=code).dropna(subset=["la_code"])[cols]
    out["publication_date"] = pd.to_datetime(out["publication_date"]).astype("datetime64[ns]")
    # a judgement coded with a council created later belongs to the council inspected then
    out["la_code"] = [schema.councils().as_on(c, d.date()) for c, d in zip(out["la_code"], out["publication_date"])]
    return out.sort_values(["la_code", "publication_date"]).reset_index(drop=True)


# ---------------------------------------------------------------- standing per year ----------------------

def _robust_z(x: pd.Series) -> pd.Series:
    med = x.median()
    mad = 1.4826 * (x - med).abs().median()
    if not np.isfinite(mad) or mad == 0:
        sd = x.std()
        mad = sd if np.isfinite(sd) and sd > 0 else 1.0
    return (x - med) / mad


def _with_predecessors(m: pd.DataFrame) -> pd.DataFrame:
    """Years before a reorganised council existed, from its predecessors' figures (their mean)."""
    councils = schema.councils()
    extra = []
    for code in councils.councils:
        pre = councils.predecessors(code)
        if not pre:
            continue
        own = set(m.loc[m["la_code"] == code, "year"].astype(str) + m.loc[m["la_code"] == code, "metric"])
        rows = m[m["la_code"].isin(pre)]
        if rows.empty:
            continue
        agg = rows.groupby(["metric", "year"], as_index=False).agg(
            period_end=("period_end", "max"), known_from=("known_from", "max"), value=("value", "mean"))
        agg = agg[~(agg["year"].astype(str) + agg["metric"]).isin(own)]
        extra.append(agg.assign(la_code=code, inherited=True))
    if not extra:
        return m.assign(inherited=False)
    return pd.concat([m.assign(inherited=False), *extra], ignore_index=True)


def standing(metrics: pd.DataFrame, neighbours: dict[str, list[str]]) -> pd.DataFrame:
    """Per council, metric and year: level, change and their z-scores (see the module docstring), the
    England figure, the council's place among its neighbours and an explanation, ``signed`` (worse > 0)."""
    if metrics.empty:
        return pd.DataFrame()
    spec = {m.id: m for m in METRICS}
    m = _with_predecessors(metrics)
    own = m[~m["inherited"]].reset_index(drop=True)
    # every proportion and rate funnel at once, one per metric and year (same arithmetic as ``funnel``)
    scale = own["metric"].map({k: {"percent": 100.0, "rate": 10000.0}.get(v.unit, np.nan) for k, v in spec.items()})
    num, den = own["value"] / scale * own["denominator"], own["denominator"].astype(float)
    ok = (np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0) & (num <= den)).to_numpy()
    own["fz"], own["p0"] = np.nan, np.nan
    if ok.any():
        gid = own.loc[ok].groupby(["metric", "year"]).ngroup().to_numpy()
        r = _funnel_long(gid, num[ok].to_numpy(), den[ok].to_numpy())
        own.loc[ok, "fz"], own.loc[ok, "p0"] = r["z"], r["p0"] * scale[ok].to_numpy()
    out = []
    for (metric, year), g in own.groupby(["metric", "year"]):
        g = g.copy()
        s = spec[metric]
        if s.unit in ("percent", "rate") and g["fz"].notna().any():
            # the funnel z where the council's counts are published; a robust z for a council whose count
            # is suppressed (one such council no longer costs every other council its funnel)
            z = g["fz"].where(g["fz"].notna(), _robust_z(g["value"])).to_numpy()
            england = float(g["p0"].dropna().iloc[0])
            sd = float(g["value"].std())
        else:
            z = _robust_z(g["value"]).to_numpy()
            england, sd = float(g["value"].median()), float(g["value"].std())
        g["z_england"] = z
        g["england"] = england
        values = dict(zip(g["la_code"], g["value"]))
        nb_z, nb_rank, nb_n = [], [], []
        for la, v in zip(g["la_code"], g["value"]):
            peers = [values[n] for n in neighbours.get(la, []) if n in values]
            if peers and sd > 0:
                nb_z.append((v - float(np.mean(peers))) / sd)
                nb_rank.append(1 + sum(p > v for p in peers))
                nb_n.append(len(peers) + 1)
            else:
                nb_z.append(np.nan)
                nb_rank.append(np.nan)
                nb_n.append(np.nan)
        g["z_neighbours"], g["neighbour_rank"], g["neighbour_n"] = nb_z, nb_rank, nb_n
        out.append(g)
    levels = pd.concat(out, ignore_index=True)
    # change from two years before (one year when that is all there is), through predecessors' figures
    hist = m.set_index(["la_code", "metric", "year"])["value"]
    hist = hist[~hist.index.duplicated()]

    def before(k: int) -> np.ndarray:
        idx = pd.MultiIndex.from_arrays([levels["la_code"], levels["metric"], levels["year"] - k])
        return hist.reindex(idx).to_numpy()

    two, one = before(2), before(1)
    levels["change_years"] = np.where(np.isfinite(two), 2, np.where(np.isfinite(one), 1, np.nan))
    levels["change"] = levels["value"] - np.where(np.isfinite(two), two, one)
    by = levels.groupby(["metric", "year"])["change"]
    med = by.transform("median")
    dev = (levels["change"] - med).abs()
    mad = 1.4826 * dev.groupby([levels["metric"], levels["year"]]).transform("median")
    spread = mad.where(mad > 0, by.transform("std"))
    enough = by.transform("count") >= 10
    levels["z_change"] = ((levels["change"] - med) / spread).where(enough & (spread > 0))
    # A small council's figure is mostly noise: 2 of 3 FTE agency is 67 %. The funnel z allows for that;
    # the standing against neighbours and the change do not, so both are shrunk by the figure's
    # reliability (empirical Bayes: between-council variance over itself plus the binomial variance at
    # the council's denominator).
    reliability = _reliability(levels, spec)
    levels["z_neighbours"] = levels["z_neighbours"] * reliability
    levels["z_change"] = levels["z_change"] * reliability
    levels["z_level"] = levels[["z_england", "z_neighbours"]].mean(axis=1)
    sign = levels["metric"].map({k: (-1.0 if v.polarity == "lower_is_worse" else 1.0) for k, v in spec.items()})
    lvl = levels["z_level"].clip(-CLIP, CLIP)
    chg = levels["z_change"].clip(-CLIP, CLIP).fillna(0.0)
    levels["signed"] = sign * (lvl + CHANGE_WEIGHT * chg)
    levels["factor"] = levels["metric"].map({k: v.factor for k, v in spec.items()})
    levels["explanation"] = [_explain(spec[r.metric], r) for r in levels.itertuples()]
    return levels


def _reliability(levels: pd.DataFrame, spec: dict) -> np.ndarray:
    """Per row, in [0, 1]: ``tau2 / (tau2 + p(1 - p) / n)`` for a proportion with its denominator ``n``
    (``p`` the metric and year's median, ``tau2`` the variance of the councils' proportions less their
    mean binomial variance, at least a tenth of the variance seen); 1 for a figure without a denominator
    (a robust z is all it has) and for rates per 10,000, whose denominators are populations."""
    rel = np.ones(len(levels))
    percent = levels["metric"].map({k: v.unit == "percent" for k, v in spec.items()}).fillna(False).to_numpy(bool)
    n = pd.to_numeric(levels.get("denominator"), errors="coerce").to_numpy(float) if "denominator" in levels \
        else np.full(len(levels), np.nan)
    p = levels["value"].to_numpy(float) / 100.0
    use = percent & np.isfinite(n) & (n > 0) & np.isfinite(p)
    if not use.any():
        return rel
    frame = pd.DataFrame({"metric": levels["metric"], "year": levels["year"], "p": p, "n": n})[use]
    centre = frame.groupby(["metric", "year"])["p"].transform("median").clip(0.001, 0.999)
    within = centre * (1 - centre) / frame["n"]
    seen = frame.groupby(["metric", "year"])["p"].transform("var")
    tau2 = np.maximum(seen - within.groupby([frame["metric"], frame["year"]]).transform("mean"), seen / 10)
    rel[use] = (tau2 / (tau2 + within)).fillna(1.0).to_numpy()
    return rel


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _fmt(v: float, unit: str) -> str:
    if unit == "pounds":
        return f"£{v:,.0f}"
    return f"{v:.1f}%" if unit == "percent" else (f"{v:.0f}" if unit == "rate" else f"{v:.1f}")


def _explain(s: Metric, r) -> str:
    """``re-referrals within 12 months 27.1% (2016), 3rd highest of 11 neighbours, England 22.3%, up 4.0
    points in two years``."""
    year = f"{r.year}" if r.period_end.month != 3 else f"{r.year - 1}-{str(r.year)[2:]}"
    text = f"{s.title} {_fmt(r.value, s.unit)} ({year})"
    if np.isfinite(r.neighbour_rank):
        rank, n = int(r.neighbour_rank), int(r.neighbour_n)
        place = n + 1 - rank if s.polarity == "lower_is_worse" else rank
        word, other = ("lowest", "highest") if s.polarity == "lower_is_worse" else ("highest", "lowest")
        where = f"the {word}" if place == 1 else f"the {other}" if place == n else f"{_ordinal(place)} {word}"
        text += f", {where} of {n} with its neighbours"
    text += f", England {_fmt(r.england, s.unit)}"
    if np.isfinite(r.change) and r.change != 0:
        unit = " points" if s.unit == "percent" else ""
        span = "two years" if r.change_years == 2 else "a year"
        size = _fmt(abs(r.change), s.unit) if s.unit in ("rate", "pounds") else f"{abs(r.change):.1f}"
        text += f", {'up' if r.change > 0 else 'down'} {size}{unit} in {span}"
    return text


# ---------------------------------------------------------------- at each month end -----------------------

def month_ends(start, end) -> list[pd.Timestamp]:
    """Month ends from the one on or after ``start`` to the one on or after ``end``."""
    if start is None or end is None or pd.isna(start) or pd.isna(end):
        return []
    return list(pd.date_range(pd.Timestamp(start) + pd.offsets.MonthEnd(0), pd.Timestamp(end) + pd.offsets.MonthEnd(0),
                              freq="ME"))


def runs(frame: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """For a frame sorted by ``keys``: one row of the keys per run of equal keys, and each run's start and
    end positions (so per-group lists are Python slices, not a pandas aggregation per group)."""
    if frame.empty:
        return frame[keys].iloc[:0].reset_index(drop=True), np.array([], int), np.array([], int)
    change = np.zeros(len(frame), dtype=bool)
    change[0] = True
    for k in keys:
        v = frame[k].to_numpy()
        change[1:] |= v[1:] != v[:-1]
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:], len(frame)]
    return frame[keys].iloc[starts].reset_index(drop=True), starts, ends


def in_existence(frame: pd.DataFrame, column: str = "as_of") -> pd.DataFrame:
    """The rows of ``frame`` whose council existed on the date in ``column``: from its first day (``from``,
    a council created by reorganisation) to its last (``until``, one abolished), ``schemas/councils.yaml``.
    A successor's series runs back through its predecessors' figures (its change is measured across the
    reorganisation) but it has no row, no score and no warning before it existed: its predecessors have
    them, and a month end ranks each area once."""
    councils = schema.councils().councils
    if frame.empty:
        return frame
    day = pd.to_datetime(frame[column])
    first = pd.to_datetime(frame["la_code"].map({k: c.from_ for k, c in councils.items() if c.from_}))
    last = pd.to_datetime(frame["la_code"].map({k: c.until for k, c in councils.items() if c.until}))
    return frame[(first.isna() | (day >= first)) & (last.isna() | (day <= last))]


def known_at(levels: pd.DataFrame, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """``standing`` rows as known at each month end ``as_of`` of ``dates``: per council and metric, the latest
    year published by then (a later-published earlier year never replaces it), not older than
    ``STALE_MONTHS``, for a council that existed then (``in_existence``)."""
    if levels.empty or not dates:
        return levels.iloc[:0].assign(as_of=pd.Series(dtype="datetime64[ns]"))
    grid = pd.DataFrame({"as_of": pd.to_datetime(dates).astype("datetime64[ns]")}).sort_values("as_of")
    lv = levels.assign(known_from=levels["known_from"].astype("datetime64[ns]"),
                       period_end=levels["period_end"].astype("datetime64[ns]")).sort_values("known_from")
    keys = lv[["la_code", "metric"]].drop_duplicates()
    g = keys.merge(grid, how="cross").sort_values("as_of")
    known = pd.merge_asof(g, lv, left_on="as_of", right_on="known_from", by=["la_code", "metric"],
                          direction="backward").dropna(subset=["known_from"])
    known = known.sort_values("year").drop_duplicates(["la_code", "metric", "as_of"], keep="last")
    age = (known["as_of"] - known["period_end"]).dt.days / 30.44
    return in_existence(known[age <= STALE_MONTHS]).reset_index(drop=True)


def vintages() -> dict[str, str]:
    """Metric -> which of its figures is used, in words: "earliest version the file holds" where its dataset's file
    says which version came first (``versions`` in schemas/ees; the indicators keep that one), else
    "as revised" (each file gives a year once, as its release has it)."""
    from transforms.analytics import indicators

    out = {}
    for item in indicators.catalogue():
        pub = item.get("published") or {}
        if pub:
            out[item["id"]] = "earliest version the file holds" if indicators.versions(pub["dataset"]) else "as revised"
    return {m.id: out.get(m.id, "as revised") for m in METRICS}


def signals_at(known: pd.DataFrame) -> pd.DataFrame:
    """Warnings from the published figures known at each month end (``known_at``), in ``early_warning``'s
    columns: annual figures are judged by level and change, never by SPC (one point a year).

    - ``published_level``: the level is outside England's 99.8 % range (``|z_england| >= LIMIT_Z``: the
      over-dispersed funnel for proportions and rates -- never without it, a council whose counts are
      suppressed does not warn on its level -- a robust z for ratios and pounds); severity 2, as a
      child-level funnel outlier;
    - ``published_change``: the change over two years (one where that is all there is) is beyond
      ``LIMIT_Z`` robust standard deviations of every council's change; severity 1 (worth watching), 2 when
      the level is outside England's range on the same side too.

    ``direction``: concern when worse by the metric's polarity (demand: higher, as in the score),
    improvement otherwise. ``expected`` is England's figure; ``lower``/``upper`` are not given (NULL)."""
    cols = ["la_code", "indicator", "as_of", "method", "value", "expected", "lower", "upper", "direction", "since",
            "severity", "explanation"]
    if known.empty:
        return pd.DataFrame(columns=cols)
    spec = {m.id: m for m in METRICS}
    sign = known["metric"].map({k: (-1.0 if v.polarity == "lower_is_worse" else 1.0) for k, v in spec.items()})
    # a proportion or rate warns on its level only through its funnel (its counts published): a robust z
    # ignores how small the council is
    counted = known["fz"].notna() | ~known["metric"].map(lambda k: spec[k].unit in ("percent", "rate"))
    level = known["z_england"].where((known["z_england"].abs() >= LIMIT_Z) & counted)
    change = known["z_change"].where(known["z_change"].abs() >= LIMIT_Z)
    parts = []
    for method, z in (("published_level", level), ("published_change", change)):
        rows = known[z.notna()].copy()
        if rows.empty:
            continue
        worse = (np.sign(z[z.notna()]) * sign[z.notna()]) > 0
        rows["method"] = method
        rows["direction"] = np.where(worse, "concern", "improvement")
        if method == "published_level":
            rows["severity"] = 2
            how = "outside England's range (99.8 %)"
        else:
            same = np.sign(known.loc[z.notna(), "z_england"]) == np.sign(z[z.notna()])
            rows["severity"] = np.where(level[z.notna()].notna() & same, 2, 1)
            how = "an unusual change (99.8 % of councils' changes)"
        vintage = rows["metric"].map(vintages())
        rows["explanation"] = [f"{text[0].upper()}{text[1:]}: {how}; published annually ({v}), judged by "
                               f"level and change ({d})."
                               for text, v, d in zip(rows["explanation"], vintage, rows["direction"])]
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    out = out.rename(columns={"metric": "indicator", "england": "expected", "period_end": "since"})
    out["lower"], out["upper"] = np.nan, np.nan
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["since"] = pd.to_datetime(out["since"]).dt.date
    return out[cols].astype({"severity": "int64"})


def factors_at(levels: pd.DataFrame, judgements: pd.DataFrame, dates: list[pd.Timestamp],
               known: pd.DataFrame | None = None) -> pd.DataFrame:
    """``(la_code, as_of, factor, value, reasons, detail)``: each factor's score per council and month end,
    from the figures known then (the latest year of each metric published by ``as_of``, not older than
    ``STALE_MONTHS``); ``reasons`` the factor's metrics well above England's average (signed > 0.5, at most
    two) in words, ``detail`` every metric of it in words, worst first. ``known``: ``known_at(levels, dates)``
    when the caller has it already."""
    if not dates:
        return pd.DataFrame(columns=["la_code", "as_of", "factor", "value", "reasons", "detail"])
    grid = pd.DataFrame({"as_of": pd.to_datetime(dates).astype("datetime64[ns]")}).sort_values("as_of")
    parts = []
    if len(levels):
        known = known_at(levels, dates) if known is None else known
        keys = ["la_code", "as_of", "factor"]
        known = known.sort_values([*keys, "signed"], ascending=[True, True, True, False])
        f, starts, ends = runs(known, keys)
        f["value"] = known.groupby(keys, sort=True)["signed"].mean().to_numpy()
        text, signed = known["explanation"].tolist(), known["signed"].to_numpy()
        f["detail"] = [text[a:b] for a, b in zip(starts, ends)]
        f["reasons"] = [[t for t, x in zip(text[a:b], signed[a:b]) if x > 0.5][:2] for a, b in zip(starts, ends)]
        parts.append(f[["la_code", "as_of", "factor", "value", "reasons", "detail"]])
    if len(judgements):
        # a successor council inherits its predecessors' judgements
        councils = schema.councils()
        js = [judgements]
        for code in councils.councils:
            pre = councils.predecessors(code)
            if pre:
                js.append(judgements[judgements["la_code"].isin(pre)].assign(la_code=code))
        j = pd.concat(js, ignore_index=True)
        j = j.assign(publication_date=j["publication_date"].astype("datetime64[ns]")).sort_values("publication_date")
        g = j[["la_code"]].drop_duplicates().merge(grid, how="cross").sort_values("as_of")
        known = pd.merge_asof(g, j, left_on="as_of", right_on="publication_date", by="la_code",
                              direction="backward").dropna(subset=["publication_date"])
        known = known[known["as_of"] - known["publication_date"] <= pd.Timedelta(days=round(365.25 * OFSTED_STALE_YEARS))]
        words = ("last Ofsted judgement " + known["grade"].map(OFSTED_WORDS) + " (published "
                 + known["publication_date"].dt.strftime("%B %Y") + ")")
        pts = known["grade"].map(OFSTED_POINTS)
        parts.append(pd.DataFrame({"la_code": known["la_code"], "as_of": known["as_of"], "factor": "Ofsted history",
                                   "value": pts, "reasons": [[w] if p > 0 else [] for w, p in zip(words, pts)],
                                   "detail": [[w] for w in words]}))
    if not parts:
        return pd.DataFrame(columns=["la_code", "as_of", "factor", "value", "reasons", "detail"])
    return pd.concat(parts, ignore_index=True)


def published_factors(con: duckdb.DuckDBPyConnection, dates: list | None = None
                      ) -> tuple[pd.DataFrame, list, pd.DataFrame]:
    """Factors at every month end from the first publication held to the latest (or at ``dates``), the
    month ends used, and the published figures' warnings at them (``signals_at``)."""
    metrics = read_metrics(con)
    judgements = read_judgements(con)
    if dates is None:
        starts = [x.min() for x in (metrics["known_from"], judgements["publication_date"]) if len(x)]
        ends = [x.max() for x in (metrics["known_from"], judgements["publication_date"]) if len(x)]
        dates = month_ends(min(starts), max(ends)) if starts else []
    levels = standing(metrics, read_neighbours(con))
    known = known_at(levels, dates)
    return factors_at(levels, judgements, dates, known), dates, signals_at(known)
