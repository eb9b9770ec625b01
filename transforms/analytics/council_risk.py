"""One score per council and month end, from the early-warning signals live then.

The weights favour what the sector and Ofsted name as the precursors of decline: workforce instability
first (turnover, agency staff, vacancies, caseloads: the clearest gradient by Ofsted grade in published
research), then timeliness of protection, repeat work and placement stability. A council's score is the sum,
over indicators with a live *warning* (a concern of severity 2 or 3: corroborated, or confirmed against
England), of the indicator's weight times the strongest signal's severity. A lone special cause (severity
1, "worth watching") is shown by ``csreturns warn`` and the report but not scored: on the scenario benchmark
(bench/README.md) it comes about 0.6 times per stable council-year, against 0.09 for warnings, and would
rank councils by noise. Improvements never add to the score. Councils with no live warning score 0, so
every council has a row for every month end the data covers.
"""
from __future__ import annotations

import duckdb
import pandas as pd

FACTORS = {
    # factor: (weight, indicators)
    "workforce instability": (3.0, ["turnover_rate_fte", "agency_rate_fte", "vacancy_rate_fte", "caseload_fte",
                                    "social_worker_changes"]),
    "timeliness": (2.0, ["assessment_45wd", "icpc_15wd"]),
    "repeat work": (2.0, ["rereferral_12m", "repeat_cp_plan"]),
    "placement stability": (2.0, ["placement_stability_short", "placement_stability_long"]),
}
DEFAULT_WEIGHT = 1.0   # any other indicator (missing from care, long CP plans, rates)
MIN_SEVERITY = 2       # warnings only: see the module docstring

COLUMNS = {
    "la_code": ("VARCHAR", "3-digit old LA code of the council"),
    "as_of": ("DATE", "Month end"),
    "score": ("DOUBLE", "Sum over indicators with a live warning (severity 2+) of weight x severity (weights in "
                        "transforms/analytics/council_risk.py: workforce 3, timeliness 2, repeat work 2, placement stability 2, other 1)"),
    "rank": ("INTEGER", "1 = highest score among councils at this month end (ties share a rank)"),
    "top_reasons": ("VARCHAR[]", "Up to three live warnings, weightiest first, in plain words"),
}
RELATIONS = {"council_risk": ("LA / month end", "A risk score per council and month end combining its live "
                                                "early-warning concerns, weighted towards workforce instability",
                              COLUMNS)}


def weights() -> pd.DataFrame:
    rows = [(ind, w, factor) for factor, (w, inds) in FACTORS.items() for ind in inds]
    return pd.DataFrame(rows, columns=["indicator", "weight", "factor"])


def build_council_risk(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``council_risk`` from ``early_warning`` and ``indicators`` in an open catalogue connection."""
    con.register("_risk_weights", weights())
    try:
        con.execute(f"""
        CREATE OR REPLACE TABLE council_risk AS
        WITH months AS (SELECT DISTINCT as_of FROM early_warning
                        UNION SELECT DISTINCT period_end FROM indicators WHERE "window" = 'rolling_12m'),
             councils AS (SELECT DISTINCT la_code FROM indicators WHERE source = 'child_level'),
             concern AS (   -- the strongest live concern per council, indicator and month
               SELECT la_code, as_of, indicator, max(severity) AS severity,
                      arg_max(explanation, severity) AS explanation
               FROM early_warning WHERE direction = 'concern' AND severity >= {MIN_SEVERITY} GROUP BY ALL),
             weighted AS (
               SELECT c.*, c.severity * coalesce(w.weight, {DEFAULT_WEIGHT}) AS points
               FROM concern c LEFT JOIN _risk_weights w USING (indicator)),
             scored AS (
               SELECT k.la_code, m.as_of, coalesce(sum(w.points), 0) AS score,
                      coalesce(list(w.explanation ORDER BY w.points DESC, w.indicator)
                               FILTER (WHERE w.explanation IS NOT NULL)[1:3], []) AS top_reasons
               FROM councils k CROSS JOIN months m
               LEFT JOIN weighted w ON w.la_code = k.la_code AND w.as_of = m.as_of
               GROUP BY ALL)
        SELECT la_code, as_of, CAST(score AS DOUBLE) AS score,
               CAST(rank() OVER (PARTITION BY as_of ORDER BY score DESC) AS INTEGER) AS rank,
               CAST(top_reasons AS VARCHAR[]) AS top_reasons
        FROM scored ORDER BY as_of, rank, la_code""")
    finally:
        con.unregister("_risk_weights")
