"""One continuous risk score per council and month end: its standing on the published statistics, its
Ofsted history and its live child-level warnings.

Every council with any data -- published figures, an Ofsted judgement, child-level returns -- has a row at
every month end from the first publication held to the latest data, computed only from what was public
(or, for its own returns, held) then; a council with nothing known yet has no row, not a zero, and a
council has rows only while it exists: none before a reorganisation created it, none after one abolished
it (``schemas/councils.yaml``; ``standing.in_existence``).

Factors (``standing.FACTOR_WEIGHTS``), each in z-score units, positive = worse:

- from the published statistics (``transforms/analytics/standing.py``, which lists each factor's metrics):
  workforce instability, timeliness, repeat work, placement stability, outcomes, demand and spend: the mean
  of the factor's metrics' signed standing against England and the statistical neighbours plus half its
  two-year change;
- Ofsted history: the latest published overall judgement (Inadequate 2, Requires improvement 1, Good 0,
  Outstanding -1);
- live warnings (councils with child-level returns): the early-warning concerns of severity 2 or more live
  at the month end, each indicator counted once at its strongest signal, weighted by ``INDICATOR_WEIGHTS``
  (workforce 3, timeliness, repeat work and placement stability 2, other 1) times severity, divided by
  ``WARNING_POINTS_PER_Z`` and capped at 3. A lone special cause (severity 1) is shown by ``csreturns warn``
  but not scored: on the scenario benchmark (bench/README.md) it comes about 0.6 times per stable
  council-year, against 0.09 for warnings.

``score = sum(w_f x factor_f) / (sum of the weights of the factors the council has + SHRINK)``: the
weighted mean of the factors it has, shrunk towards England's average (0) by about one factor's worth, so a council known
on one factor does not outrank one known on five by the noise of a single figure. ``<factor>`` columns hold
each factor's contribution (``w_f x factor_f`` over the same divisor: they sum to the score); ``coverage``
how many factors were known. Weights: each factor's Somers' D on the development set, Ofsted's SIF
judgements (``standing.FACTOR_WEIGHTS``, bench/early_warning_weights.py).
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from transforms.analytics import standing
from transforms.analytics.standing import runs

INDICATOR_WEIGHTS = {
    # factor: (weight, indicators) -- live child-level warnings, by the indicator they are on
    "workforce instability": (3.0, ["turnover_rate_fte", "agency_rate_fte", "vacancy_rate_fte", "caseload_fte",
                                    "social_worker_changes"]),
    "timeliness": (2.0, ["assessment_45wd", "icpc_15wd"]),
    "repeat work": (2.0, ["rereferral_12m", "repeat_cp_plan"]),
    "placement stability": (2.0, ["placement_stability_short", "placement_stability_long"]),
}
FACTORS = INDICATOR_WEIGHTS          # the name the report reads
DEFAULT_WEIGHT = 1.0   # any other indicator (missing from care, long CP plans, rates)
MIN_SEVERITY = 2       # warnings only: see the module docstring
WARNING_POINTS_PER_Z = 4.0           # a workforce warning of severity 2 (6 points) = 1.5
SHRINK = 0.25                        # weight of England's average (0) added to every council's divisor: about one
                                     # published factor's worth (standing.FACTOR_WEIGHTS)


def factor_column(factor: str) -> str:
    """``workforce instability`` -> ``f_workforce_instability``."""
    return "f_" + factor.lower().replace(" ", "_")


COLUMNS = {
    "la_code": ("VARCHAR", "3-digit old LA code of the council"),
    "as_of": ("DATE", "Month end"),
    "score": ("DOUBLE", "Weighted mean of the council's factors (z units, positive = worse) shrunk towards 0 by one "
                        "factor's worth (transforms/analytics/council_risk.py)"),
    "rank": ("INTEGER", "1 = highest score among councils at this month end (ties share a rank)"),
    "top_reasons": ("VARCHAR[]", "Up to three reasons, weightiest first, in plain words"),
    "coverage": ("INTEGER", "Number of factors known for the council at this month end"),
    "standing": ("VARCHAR[]", "Every factor's figures in words ('factor: level (year), place among its neighbours, "
                              "England, change'), the factor adding most to the score first"),
    **{factor_column(f): ("DOUBLE", f"Contribution of {f} to the score (NULL: not known)") for f in standing.FACTORS},
}
RELATIONS = {"council_risk": ("LA / month end", "A continuous risk score per council and month end from its standing "
                                                "on the published statistics, its Ofsted history and its live "
                                                "early-warning concerns, with each factor's contribution",
                              COLUMNS)}


def weights() -> pd.DataFrame:
    rows = [(ind, w, factor) for factor, (w, inds) in INDICATOR_WEIGHTS.items() for ind in inds]
    return pd.DataFrame(rows, columns=["indicator", "weight", "factor"])


def _warning_factor(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``(la_code, as_of, factor, value, reasons)`` for live warnings, at the month ends of ``early_warning``
    and of the child-level rolling windows (a council with returns and no warning has 0)."""
    con.register("_risk_weights", weights())
    try:
        return con.execute(f"""
        WITH months AS (SELECT DISTINCT as_of FROM early_warning
                        UNION SELECT DISTINCT period_end FROM indicators
                        WHERE "window" = 'rolling_12m' AND source = 'child_level'),
             councils AS (SELECT DISTINCT la_code FROM indicators WHERE source = 'child_level'),
             concern AS (
               SELECT la_code, as_of, indicator, max(severity) AS severity,
                      arg_max(explanation, severity) AS explanation
               FROM early_warning WHERE direction = 'concern' AND severity >= {MIN_SEVERITY}
                 AND method NOT LIKE 'published%' GROUP BY ALL),
             weighted AS (
               SELECT c.*, c.severity * coalesce(w.weight, {DEFAULT_WEIGHT}) AS points
               FROM concern c LEFT JOIN _risk_weights w USING (indicator))
        SELECT k.la_code, CAST(m.as_of AS TIMESTAMP) AS as_of, 'live warnings' AS factor,
               least(coalesce(sum(w.points), 0) / {WARNING_POINTS_PER_Z}, 3.0) AS value,
               coalesce(list(w.explanation ORDER BY w.points DESC, w.indicator)
                        FILTER (WHERE w.explanation IS NOT NULL)[1:3], []) AS reasons
        FROM councils k CROSS JOIN months m
        LEFT JOIN weighted w ON w.la_code = k.la_code AND w.as_of = m.as_of
        GROUP BY ALL""").df()
    finally:
        con.unregister("_risk_weights")


def combine(factors: pd.DataFrame) -> pd.DataFrame:
    """``council_risk`` rows from ``(la_code, as_of, factor, value, reasons)`` (see the module docstring)."""
    cols = list(COLUMNS)
    if factors.empty:
        return pd.DataFrame(columns=cols)
    f = factors.copy()
    f["weight"] = f["factor"].map(standing.FACTOR_WEIGHTS).fillna(1.0)
    f["points"] = f["weight"] * f["value"]
    divisor = f.groupby(["la_code", "as_of"])["weight"].transform("sum") + SHRINK
    f["contribution"] = f["points"] / divisor
    contribution = f["contribution"]
    wide = f.pivot_table(index=["la_code", "as_of"], columns="factor", values="contribution", aggfunc="sum")
    out = pd.DataFrame(index=wide.index)
    out["score"] = wide.sum(axis=1, min_count=1)
    out["coverage"] = wide.notna().sum(axis=1).astype("int32")
    for factor in standing.FACTORS:
        out[factor_column(factor)] = wide[factor] if factor in wide else np.nan
    # reasons: the factors that push the score up most, each with its own worst metrics; standing: every
    # factor's figures, the factor adding most first
    keys = ["la_code", "as_of"]
    every = factors.assign(contribution=contribution).sort_values([*keys, "contribution"],
                                                                  ascending=[True, True, False])
    if "detail" not in every:
        every["detail"] = None
    head, starts, ends = runs(every, keys)
    reasons, details = every["reasons"].tolist(), every["detail"].tolist()
    names, contrib = every["factor"].tolist(), every["contribution"].to_numpy()

    def flat(lists):
        return [x for part in lists if isinstance(part, (list, np.ndarray)) for x in part]

    top = [flat(r for r, c in zip(reasons[a:b], contrib[a:b]) if c > 0)[:3] for a, b in zip(starts, ends)]
    detail = [[f"{n}: {x}" for n, d, r in zip(names[a:b], details[a:b], reasons[a:b])
               for x in (d if isinstance(d, (list, np.ndarray)) else r)] for a, b in zip(starts, ends)]
    index = pd.MultiIndex.from_frame(head)
    out["top_reasons"] = pd.Series(top, index=index).reindex(out.index)
    out["standing"] = pd.Series(detail, index=index).reindex(out.index)
    for col in ("top_reasons", "standing"):
        out[col] = out[col].apply(lambda r: list(r) if isinstance(r, (list, np.ndarray)) else [])
    out = out.reset_index()
    out["rank"] = out.groupby("as_of")["score"].rank(method="min", ascending=False).astype("int32")
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    # a council has rows only while it exists: none before a reorganisation created it, none after one
    # abolished it (each area is ranked once at a month end)
    out = standing.in_existence(out)
    out["rank"] = out.groupby("as_of")["score"].rank(method="min", ascending=False).astype("int32")
    return out[cols].sort_values(["as_of", "rank", "la_code"]).reset_index(drop=True)


def build_council_risk(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``council_risk`` in an open catalogue connection from ``indicators``, ``early_warning``,
    ``published_statistics``, ``statistical_neighbours`` and ``ofsted_judgements`` (those held), and add the
    published figures' warnings (``published_level``, ``published_change``: ``standing.signals_at``) to
    ``early_warning``."""
    published, _, signals = standing.published_factors(con)
    frame = combine(pd.concat([published, _warning_factor(con)], ignore_index=True))
    # the published figures' warnings join the child-level ones in early_warning (after the live-warnings
    # factor has read those: the published figures are scored through their standing, not twice)
    if len(signals):
        con.register("_published_signals", signals)
        try:
            have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_name = 'early_warning'").fetchall()}
            cols = ", ".join(f'"{c}"' for c in signals.columns if c in have)
            con.execute(f"INSERT INTO early_warning ({cols}) SELECT {cols} FROM _published_signals")
        finally:
            con.unregister("_published_signals")
    types = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, (t, _) in COLUMNS.items())
    con.register("_risk_df", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE council_risk AS SELECT {types} FROM _risk_df "
                    "ORDER BY as_of, rank, la_code")
    finally:
        con.unregister("_risk_df")
