"""The indicator layer: the measures early warning watches, per council and period.

``indicators(la_code, indicator, period_end, window, numerator, denominator, value, source)`` holds

- ``source = 'child_level'``: computed here, in DuckDB SQL over the catalogue's relations, for two
  windows: ``dfe_year`` (the 12 months to 31 March, as DfE publishes) and ``rolling_12m`` (the 12 months
  to every month end the returns cover), so a change shows between annual publications; event indicators
  declared ``monthly`` also get ``month`` (the calendar month), the independent points SPC charts need;
- ``source = 'published'``: the same indicator as DfE published it (``dfe_year``, ``period_end`` from
  ``published_statistics``), including the workforce indicators that only exist as published figures.

Definitions, polarity and references are declared in ``schemas/indicators/indicators.yaml`` and loaded
as ``indicator_catalogue``. Returns overlap (an episode open at 31 March is sent again the next year,
by then perhaps with its end date), so every child-level table is first de-duplicated across return
years, keeping the latest return's row. A window is computed only where the council's returns cover
every month its definition reads (``needs_months``), so a missing year never shows as a fall.
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import duckdb
import pandas as pd
from pydantic import Field, model_validator

from transforms import schema
from transforms.schema import SCHEMA_DIR
from transforms.sql import create_table_from_frame, literal
from transforms.workdays import working_day_calendar

log = logging.getLogger(__name__)

CATALOGUE_FILE = SCHEMA_DIR / "indicators" / "indicators.yaml"
UNITS = {"percent": 100.0, "rate_per_10k": 10_000.0, "ratio": 1.0}
POLARITIES = {"higher_is_worse", "lower_is_worse", "context"}

INDICATOR_COLUMNS = {
    "la_code": ("VARCHAR", "3-digit old LA code of the council"),
    "indicator": ("VARCHAR", "Indicator id (indicator_catalogue.indicator)"),
    "period_end": ("DATE", "Last day of the period (31 March for dfe_year; 30 September for workforce figures)"),
    "window": ("VARCHAR", "dfe_year: the 12 months to 31 March (the published definition); rolling_12m: the 12 "
                          "months to period_end, for every month end the returns cover; month: the calendar month "
                          "to period_end (event indicators declared monthly: early warning's SPC series). "
                          "Quote it: \"window\""),
    "numerator": ("DOUBLE", "Numerator (see indicator_catalogue.numerator)"),
    "denominator": ("DOUBLE", "Denominator (see indicator_catalogue.denominator)"),
    "value": ("DOUBLE", "Value in the indicator's unit (null where the denominator is 0)"),
    "source": ("VARCHAR", "child_level (computed from the returns) or published (as DfE published it)"),
    "published_on": ("DATE", "When a published figure became public (declared per dataset in schemas/): early "
                             "warning never uses it before; null for child-level figures (known at period end)"),
}
CATALOGUE_COLUMNS = {
    "indicator": ("VARCHAR", "Indicator id"), "title": ("VARCHAR", "Short title"),
    "definition": ("VARCHAR", "What is counted, and why that way"),
    "numerator": ("VARCHAR", "What the numerator counts"), "denominator": ("VARCHAR", "What the denominator counts"),
    "unit": ("VARCHAR", "percent, rate_per_10k or ratio"),
    "polarity": ("VARCHAR", "higher_is_worse, lower_is_worse or context (watch for sharp change)"),
    "source_returns": ("VARCHAR[]", "Returns or datasets it is computed from"),
    "source_relations": ("VARCHAR[]", "Catalogue relations the child-level SQL reads"),
    "child_level": ("BOOLEAN", "Computed from child-level returns (false: published figures only)"),
    "needs_months": ("INTEGER", "Months of returns the definition reads, ending at the period end"),
    "reference": ("VARCHAR", "DfE publication table the definition follows"),
    "lait_measure": ("VARCHAR", "Matching measure in DfE's LA Interactive Tool (LAIT)"),
    "published_dataset": ("VARCHAR", "Published counterpart: dataset in published_statistics"),
    "published_measure": ("VARCHAR", "Published counterpart: measure column"),
    "published_breakdowns": ("VARCHAR", "Published counterpart: breakdown filter (JSON)"),
    "published_numerator": ("VARCHAR", "Published numerator: measure(s) and breakdowns (JSON)"),
    "published_denominator": ("VARCHAR", "Published denominator: measure(s) and breakdowns (JSON)"),
    "caveats": ("VARCHAR", "What to bear in mind"),
}
class PublishedPart(schema.SchemaModel):
    """A published figure: one measure, or the sum of several, under a breakdown filter."""
    measure: str | None = None
    """Measure column (as the EES file names it)."""
    measures: list[str] | None = None
    """Measure columns summed (a figure only where all are present)."""
    breakdowns: dict[str, str] | None = None
    """Breakdown filter (default: the counterpart's)."""

    @model_validator(mode="after")
    def _one(self):
        if (self.measure is None) == (self.measures is None):
            raise schema.invalid("declares either measure or measures", whole=True)
        return self


class PublishedCounterpart(schema.SchemaModel):
    """The indicator as DfE publishes it, read from published_statistics."""
    dataset: schema.Text
    """Dataset in published_statistics (an ees schema's ``dataset``)."""
    measure: schema.Text | None = None
    """Measure column of the value (none: numerator / denominator in the indicator's unit, where the file
    gives the counts only)."""
    breakdowns: dict[str, str] | None = None
    """Breakdown filter of the value (and, by default, of its numerator and denominator)."""
    numerator: PublishedPart
    denominator: PublishedPart
    earlier: list[PublishedCounterpart] = []
    """The same figure in an earlier release's layout, used only where this dataset has none for the council
    and period (this dataset's figures are as revised by its later release, and win)."""


class Indicator(schema.SchemaModel):
    """One indicator of ``schemas/indicators/indicators.yaml`` (its header comment describes the fields)."""
    id: schema.Text
    title: schema.Text
    definition: schema.Text
    numerator: schema.Text
    """What the numerator counts."""
    denominator: schema.Text
    """What the denominator counts."""
    unit: Literal[tuple(UNITS)]
    """percent, rate_per_10k or ratio (UNITS: the scale of numerator / denominator)."""
    polarity: Literal[tuple(sorted(POLARITIES))]
    """higher_is_worse, lower_is_worse or context (no better direction: watch for sharp change)."""
    source_returns: Annotated[list[str], Field(min_length=1)]
    """Returns or datasets it is computed from."""
    source_relations: list[str] = []
    """Catalogue relations the child-level SQL reads."""
    child_level: bool
    """Computed from child-level returns (false: published figures only)."""
    coverage: list[str] = []
    """Relations that must hold a council's return for every return year the indicator reads."""
    needs_months: Annotated[int, Field(ge=1)] | None = None
    """Months of returns the definition reads, ending at the period end."""
    monthly: bool = False
    """Also computed per calendar month (event indicators only)."""
    reference: schema.Text
    """DfE publication table the definition follows."""
    lait_measure: schema.Text | None = None
    """Matching measure in DfE's LA Interactive Tool (LAIT); none where LAIT has no such measure."""
    published: PublishedCounterpart | None = None
    caveats: str | None = None

    @model_validator(mode="after")
    def _child_level(self):
        if self.child_level and not (self.coverage and self.needs_months):
            raise schema.invalid("child-level indicators declare coverage and needs_months", whole=True)
        return self


class IndicatorCatalogue(schema.SchemaModel):
    indicators: Annotated[list[Indicator], Field(min_length=1)]


@lru_cache(maxsize=None)
def _load(path: str) -> tuple[dict, ...]:
    """The catalogue's indicators as declared (mappings), validated by ``IndicatorCatalogue``
    (``schema.SchemaError`` naming the file and key path)."""
    data = schema.read_yaml(path)
    schema.parse(IndicatorCatalogue, data, path)
    seen = set()
    for i, item in enumerate(data["indicators"]):
        if item["id"] in seen:
            raise schema.SchemaError(f"{schema.shown(path)}: indicators[{i}] ({item['id']}): declared twice")
        seen.add(item["id"])
    return tuple(data["indicators"])


def catalogue(path: Path | None = None) -> list[dict]:
    """The declared indicators (schemas/indicators/indicators.yaml)."""
    return list(_load(str(path or CATALOGUE_FILE)))


def catalogue_frame(path: Path | None = None) -> pd.DataFrame:
    rows = []
    for i in catalogue(path):
        pub = i.get("published") or {}
        rows.append({
            "indicator": i["id"], "title": i["title"], "definition": i["definition"], "numerator": i["numerator"],
            "denominator": i["denominator"], "unit": i["unit"], "polarity": i["polarity"],
            "source_returns": list(i["source_returns"]), "source_relations": list(i.get("source_relations") or []),
            "child_level": bool(i["child_level"]), "needs_months": i.get("needs_months"),
            "reference": i["reference"], "lait_measure": i["lait_measure"],
            "published_dataset": pub.get("dataset"), "published_measure": pub.get("measure"),
            "published_breakdowns": json.dumps(pub["breakdowns"]) if pub.get("breakdowns") else None,
            "published_numerator": json.dumps(pub["numerator"]) if pub.get("numerator") else None,
            "published_denominator": json.dumps(pub["denominator"]) if pub.get("denominator") else None,
            "caveats": i.get("caveats"),
        })
    return pd.DataFrame(rows, columns=list(CATALOGUE_COLUMNS))


# ---------------------------------------------------------------- child level: shared tables -------

# Windows: for each child-level indicator and council, the period ends its returns cover.
WINDOWS_SQL = """
CREATE OR REPLACE TEMP TABLE _ind_windows AS
WITH coverage AS (
    -- return years in which every relation the indicator needs holds the council's return
    SELECT m.indicator, c.la_code, c.return_year
    FROM _ind_meta m JOIN _ind_coverage c USING (relation)
    GROUP BY ALL
    HAVING count(*) = any_value(m.n_relations)
),
runs AS (
    -- the first year of the unbroken run of returns ending at each year (gaps and islands)
    SELECT *, min(return_year) OVER (PARTITION BY indicator, la_code, return_year - rn) AS run_from
    FROM (SELECT *, row_number() OVER (PARTITION BY indicator, la_code ORDER BY return_year) AS rn FROM coverage)
),
period_ends AS (
    -- dfe_year ends on 31 March; rolling_12m at each of the return year's 12 month ends
    SELECT indicator, la_code, run_from, 'dfe_year' AS "window", make_date(return_year, 3, 31) AS period_end
    FROM runs
    UNION ALL
    SELECT indicator, la_code, run_from, 'rolling_12m',
           last_day(make_date(return_year - 1, 4, 1) + to_months(k::INTEGER))::DATE
    FROM runs, range(12) AS months(k)
    UNION ALL
    -- month: the calendar month to each month end, for event indicators declared monthly (the
    -- non-overlapping series early warning's SPC charts read)
    SELECT indicator, la_code, run_from, 'month',
           last_day(make_date(return_year - 1, 4, 1) + to_months(k::INTEGER))::DATE
    FROM runs, range(12) AS months(k)
    WHERE indicator IN (SELECT indicator FROM _ind_meta WHERE monthly)
)
SELECT p.indicator, p.la_code, p."window", p.period_end,
       (date_trunc('month', p.period_end)
        - CASE WHEN p."window" = 'month' THEN INTERVAL 0 MONTH ELSE INTERVAL 11 MONTH END)::DATE AS period_start
FROM period_ends p JOIN (SELECT DISTINCT indicator, needs_months FROM _ind_meta) m USING (indicator)
-- only where the returns cover every month the definition reads, back from the period end (a month
-- window reads 11 months fewer than the 12-month window its needs_months describes)
WHERE (date_trunc('month', p.period_end)
       - to_months((m.needs_months - 1 - CASE WHEN p."window" = 'month' THEN 11 ELSE 0 END)::INTEGER))::DATE
      >= make_date(p.run_from - 1, 4, 1)
"""

# CIN census tables, one row per referral / assessment / enquiry / plan across overlapping returns.
CIN_SQL = """
-- a referral whose episode was open at 31 March is sent again in the next return: it is one referral
CREATE OR REPLACE TEMP TABLE _ind_referrals AS
SELECT DISTINCT la_code, child_id, referral_date
FROM cin_episodes
WHERE child_id IS NOT NULL AND referral_date IS NOT NULL;

-- the latest return's view of each assessment and enquiry (a date unknown at one 31 March is known
-- at the next): arg_max_null keeps that row's value even where it is still empty
CREATE OR REPLACE TEMP TABLE _ind_assessments AS
SELECT la_code, child_id, start_date,
       arg_max_null(authorisation_date, (return_year, load_id, authorisation_date IS NOT NULL)) AS authorisation_date
FROM cin_assessments
WHERE child_id IS NOT NULL AND start_date IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE _ind_section47 AS
SELECT la_code, child_id, start_date,
       arg_max_null(icpc_date, (return_year, load_id, icpc_date IS NOT NULL)) AS icpc_date
FROM cin_section47
WHERE child_id IS NOT NULL AND start_date IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE _ind_cp_plans AS
SELECT la_code, child_id, start_date, end_date, previous_plans
FROM cin_cp_plans
WHERE child_id IS NOT NULL AND start_date IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY la_code, child_id, start_date
                           ORDER BY return_year DESC, load_id DESC, end_date IS NULL) = 1;
"""

# Event indicators: each event (a referral, an authorisation, an ICPC, a plan starting or ending) falls
# in one month and counts in every window holding that month, so they are counted per month first.
EVENTS_SQL = """
CREATE OR REPLACE TEMP TABLE _ind_events AS
WITH rereferral_12m AS (
    -- DfE C1: a referral is a re-referral when the child's previous referral to the same council was
    -- within 12 months (365 days) before it
    SELECT la_code, 'rereferral_12m' AS indicator, referral_date AS event_date,
           coalesce(referral_date - lag(referral_date) OVER (PARTITION BY la_code, child_id ORDER BY referral_date)
                    <= 365, false) AS hit
    FROM _ind_referrals
),
assessment_45wd AS (
    -- DfE C2: assessments completed (authorised) in the period; in time when authorised on or before the
    -- 45th working day after the start (working days in (start, authorisation], bank holidays excluded)
    SELECT a.la_code, 'assessment_45wd', a.authorisation_date,
           coalesce(e.workday_index - s.workday_index <= 45, false)
    FROM _ind_assessments a
    LEFT JOIN _ind_workdays s ON s.day = a.start_date
    LEFT JOIN _ind_workdays e ON e.day = a.authorisation_date
    WHERE a.authorisation_date IS NOT NULL
),
icpc_15wd AS (
    -- ICPCs held in the period; in time when on or before the 15th working day after the S47 start
    SELECT q.la_code, 'icpc_15wd', q.icpc_date,
           coalesce(e.workday_index - s.workday_index <= 15, false)
    FROM _ind_section47 q
    LEFT JOIN _ind_workdays s ON s.day = q.start_date
    LEFT JOIN _ind_workdays e ON e.day = q.icpc_date
    WHERE q.icpc_date IS NOT NULL
),
repeat_cp_plan AS (
    -- DfE D3: plans starting in the period for a child who has been the subject of a plan before
    SELECT la_code, 'repeat_cp_plan', start_date, coalesce(previous_plans, 0) > 0
    FROM _ind_cp_plans
),
cp_plan_ended_2y AS (
    -- plans ending in the period that had run for 2 years or more (to or past the second anniversary)
    SELECT la_code, 'cp_plan_ended_2y', end_date, end_date >= start_date + INTERVAL 2 YEAR
    FROM _ind_cp_plans
    WHERE end_date IS NOT NULL
),
events AS (
    SELECT * FROM rereferral_12m UNION ALL SELECT * FROM assessment_45wd UNION ALL SELECT * FROM icpc_15wd
    UNION ALL SELECT * FROM repeat_cp_plan UNION ALL SELECT * FROM cp_plan_ended_2y
)
SELECT la_code, indicator, date_trunc('month', event_date)::DATE AS month,
       count(*) FILTER (WHERE hit) AS hits, count(*) AS events
FROM events
WHERE event_date IS NOT NULL
GROUP BY ALL
"""

EVENT_RESULTS_SQL = """
SELECT w.la_code, w.indicator, w.period_end, w."window",
       coalesce(sum(e.hits), 0) AS numerator, coalesce(sum(e.events), 0) AS denominator
FROM _ind_windows w
LEFT JOIN _ind_events e
       ON e.la_code = w.la_code AND e.indicator = w.indicator AND e.month BETWEEN w.period_start AND w.period_end
WHERE w.indicator IN ('rereferral_12m', 'assessment_45wd', 'icpc_15wd', 'repeat_cp_plan', 'cp_plan_ended_2y')
GROUP BY ALL
"""

# SSDA903 episodes, one row per episode across overlapping returns, with the period of care and the
# placement each belongs to.
EPISODES_SQL = """
CREATE OR REPLACE TEMP TABLE _ind_episodes AS
WITH episodes AS (
    SELECT la_code, child_id, decom, dec, rne, ls, place, pl_post, urn
    FROM ssda903_episodes
    WHERE child_id IS NOT NULL AND decom IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY la_code, child_id, decom ORDER BY return_year DESC, load_id DESC) = 1
),
flagged AS (
    SELECT *,
        -- a period of care starts with reason S, or where the chain of episodes breaks
        (rne = 'S' OR lag(decom) OVER w IS NULL OR lag(dec) OVER w < decom) AS starts_period,
        -- temporary placements (T0-T4: holiday, hospital...) and the return to the same placement after
        -- one are not moves
        place IN ('T0', 'T1', 'T2', 'T3', 'T4') AS temporary,
        coalesce(lag(place) OVER w IN ('T0', 'T1', 'T2', 'T3', 'T4') AND place = lag(place, 2) OVER w
                 AND coalesce(urn, '') = coalesce(lag(urn, 2) OVER w, '')
                 AND coalesce(pl_post, '') = coalesce(lag(pl_post, 2) OVER w, ''), false) AS back_from_temporary
    FROM episodes
    WINDOW w AS (PARTITION BY la_code, child_id ORDER BY decom)
),
numbered AS (
    SELECT *,
        -- a new placement: a new period of care, or any episode other than a change of legal status only (L)
        starts_period OR (rne <> 'L' AND NOT temporary AND NOT back_from_temporary) AS starts_placement
    FROM flagged
),
ids AS (
    SELECT *,
        sum(starts_period::INTEGER) OVER w AS period_no,
        sum(starts_placement::INTEGER) OVER w AS placement_no
    FROM numbered
    WINDOW w AS (PARTITION BY la_code, child_id ORDER BY decom ROWS UNBOUNDED PRECEDING)
),
placements AS (
    SELECT la_code, child_id, period_no, placement_no, min(decom) AS placement_start
    FROM ids GROUP BY ALL
),
previous AS (
    SELECT *, lag(placement_start) OVER (PARTITION BY la_code, child_id, period_no ORDER BY placement_no)
              AS previous_placement_start
    FROM placements
)
SELECT i.la_code, i.child_id, i.decom, i.dec, i.rne, i.ls, i.place, i.starts_placement,
       min(i.decom) OVER (PARTITION BY i.la_code, i.child_id, i.period_no) AS care_start,
       p.placement_start,
       -- long-term stability: a child placed for adoption (A3-A6) counts the placement before it too
       CASE WHEN i.place IN ('A3', 'A4', 'A5', 'A6') THEN coalesce(p.previous_placement_start, p.placement_start)
            ELSE p.placement_start END AS stable_since
FROM ids i JOIN previous p USING (la_code, child_id, period_no, placement_no);

CREATE OR REPLACE TEMP TABLE _ind_dob AS
SELECT la_code, child_id, dob FROM ssda903_header
WHERE child_id IS NOT NULL AND dob IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY la_code, child_id ORDER BY return_year DESC, load_id DESC) = 1;

CREATE OR REPLACE TEMP TABLE _ind_missing AS
SELECT DISTINCT la_code, child_id, mis_start FROM ssda903_missing
WHERE child_id IS NOT NULL AND mis_start IS NOT NULL AND missing = 'M';

CREATE OR REPLACE TEMP TABLE _ind_sw AS
SELECT la_code, child_id, social_worker_id, sw_decom, sw_dec
FROM ssda903_sw_episodes
WHERE child_id IS NOT NULL AND sw_decom IS NOT NULL AND social_worker_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY la_code, child_id, social_worker_id, sw_decom
                           ORDER BY return_year DESC, load_id DESC) = 1;

-- the period ends (and window starts) each SSDA903 indicator needs, once per council
CREATE OR REPLACE TEMP TABLE _ind_periods AS
SELECT DISTINCT indicator, la_code, period_start, period_end FROM _ind_windows
WHERE indicator IN ('placement_stability_short', 'placement_stability_long', 'social_worker_changes',
                    'missing_from_care', 'cla_rate_per_10k');

-- children looked after at each period end: an episode open then (ceasing on the day is not open);
-- children on a series of short breaks (legal status V3, V4) are not counted as looked after
CREATE OR REPLACE TEMP TABLE _ind_cla_at_end AS
SELECT p.la_code, p.period_start, p.period_end, e.child_id,
       arg_max(e.care_start, e.decom) AS care_start, arg_max(e.stable_since, e.decom) AS stable_since
FROM (SELECT DISTINCT la_code, period_start, period_end FROM _ind_periods WHERE indicator <> 'missing_from_care') p
JOIN _ind_episodes e ON e.la_code = p.la_code AND e.decom <= p.period_end AND (e.dec IS NULL OR e.dec > p.period_end)
WHERE e.ls NOT IN ('V3', 'V4')
GROUP BY ALL;

-- children looked after at any time in the period (short breaks excluded)
CREATE OR REPLACE TEMP TABLE _ind_cla_in_period AS
SELECT DISTINCT p.la_code, p.period_start, p.period_end, e.child_id
FROM (SELECT la_code, period_start, period_end FROM _ind_periods WHERE indicator = 'missing_from_care') p
JOIN _ind_episodes e ON e.la_code = p.la_code AND e.decom <= p.period_end AND (e.dec IS NULL OR e.dec >= p.period_start)
WHERE e.ls NOT IN ('V3', 'V4');
"""

STATE_RESULTS_SQL = """
WITH placements_in_window AS (
    -- DfE placement stability: the placement held at the window start plus each new placement in it
    SELECT c.la_code, c.period_end, c.child_id,
           count(*) FILTER (WHERE e.decom <= c.period_start OR e.starts_placement) AS placements
    FROM _ind_cla_at_end c
    JOIN _ind_periods p ON p.la_code = c.la_code AND p.period_end = c.period_end
     AND p.indicator = 'placement_stability_short'
    JOIN _ind_episodes e ON e.la_code = c.la_code AND e.child_id = c.child_id
     AND e.decom <= c.period_end AND (e.dec IS NULL OR e.dec > c.period_start)
    GROUP BY ALL
),
placement_stability_short AS (
    SELECT la_code, period_end, count(*) FILTER (WHERE placements >= 3) AS numerator, count(*) AS denominator
    FROM placements_in_window GROUP BY ALL
),
placement_stability_long AS (
    -- under 16 at the period end, looked after continuously for 2.5 years; in the same placement 2 years
    SELECT c.la_code, c.period_end,
           count(*) FILTER (WHERE c.stable_since <= c.period_end - INTERVAL 2 YEAR), count(*)
    FROM _ind_cla_at_end c JOIN _ind_dob d USING (la_code, child_id)
    JOIN _ind_periods p ON p.la_code = c.la_code AND p.period_end = c.period_end
     AND p.indicator = 'placement_stability_long'
    WHERE d.dob + INTERVAL 16 YEAR > c.period_end AND c.care_start <= c.period_end - INTERVAL 30 MONTH
    GROUP BY ALL
),
social_workers_in_window AS (
    -- social workers are counted once per child, however often they come back
    SELECT c.la_code, c.period_end, c.child_id, count(DISTINCT s.social_worker_id) AS workers
    FROM _ind_cla_at_end c
    JOIN _ind_periods p ON p.la_code = c.la_code AND p.period_end = c.period_end
     AND p.indicator = 'social_worker_changes'
    LEFT JOIN _ind_sw s ON s.la_code = c.la_code AND s.child_id = c.child_id
     AND s.sw_decom <= c.period_end AND (s.sw_dec IS NULL OR s.sw_dec >= c.period_start)
    GROUP BY ALL
),
social_worker_changes AS (
    SELECT la_code, period_end, count(*) FILTER (WHERE workers >= 3), count(*)
    FROM social_workers_in_window GROUP BY ALL
),
went_missing AS (
    -- a missing incident (not 'away without authorisation') starting in the period
    SELECT c.la_code, c.period_end, c.child_id, count(m.mis_start) > 0 AS went_missing
    FROM _ind_cla_in_period c
    LEFT JOIN _ind_missing m ON m.la_code = c.la_code AND m.child_id = c.child_id
     AND m.mis_start BETWEEN c.period_start AND c.period_end
    GROUP BY ALL
),
missing_from_care AS (
    SELECT la_code, period_end, count(*) FILTER (WHERE went_missing), count(*)
    FROM went_missing GROUP BY ALL
),
population AS (
    SELECT old_la_code AS la_code, period_end, value AS population
    FROM published_statistics
    WHERE dataset = 'population_0_17' AND measure = 'population_estimate'
      AND geographic_level = 'Local authority' AND value IS NOT NULL
),
cla_count AS (
    SELECT la_code, period_end, count(*) AS cla FROM _ind_cla_at_end GROUP BY ALL
),
cla_rate_per_10k AS (
    -- the latest ONS mid-year estimate on or before the period end (mid-year Y-1 for 31 March Y)
    SELECT c.la_code, c.period_end, c.cla, p.population
    FROM cla_count c ASOF JOIN population p ON p.la_code = c.la_code AND p.period_end <= c.period_end
),
per_period AS (
    SELECT 'placement_stability_short' AS indicator, * FROM placement_stability_short
    UNION ALL SELECT 'placement_stability_long', * FROM placement_stability_long
    UNION ALL SELECT 'social_worker_changes', * FROM social_worker_changes
    UNION ALL SELECT 'missing_from_care', * FROM missing_from_care
    UNION ALL SELECT 'cla_rate_per_10k', * FROM cla_rate_per_10k
),
cp_plan_open_2y AS (
    -- DfE D5: plans open at the period end, by how long they have lasted
    SELECT w.la_code, 'cp_plan_open_2y', w.period_end, w."window",
           count(p.child_id) FILTER (WHERE p.start_date <= w.period_end - INTERVAL 2 YEAR), count(p.child_id)
    FROM _ind_windows w
    LEFT JOIN _ind_cp_plans p ON p.la_code = w.la_code AND p.start_date <= w.period_end
     AND (p.end_date IS NULL OR p.end_date > w.period_end)
    WHERE w.indicator = 'cp_plan_open_2y'
    GROUP BY ALL
)
-- each indicator's own windows (its coverage and look-back) pick their period ends
SELECT w.la_code, w.indicator, w.period_end, w."window", r.numerator, r.denominator
FROM _ind_windows w JOIN per_period r USING (la_code, indicator, period_end)
UNION ALL SELECT * FROM cp_plan_open_2y
"""


# ---------------------------------------------------------------- published --------------------------

def versions(dataset: str) -> dict | None:
    """The dataset's declared ``versions`` (``{breakdown, order}``; schemas/ees), None when it has none."""
    owner = schema.ees_collection_of(dataset)
    return (schema.collection(owner).spec.get("versions") or None) if owner else None


def _published_part(dataset: str, part: dict, breakdowns: dict | None) -> str:
    """One published figure per council and period: the measure (or the sum of the measures, when all
    are present) with the breakdown filter; where the file gives a period in more than one version
    (``versions``), the version first known (a later revision never replaces it)."""
    measures = [m.lower() for m in part.get("measures") or [part["measure"]]]  # the EES reader lower-cases names
    filters = part.get("breakdowns", breakdowns) or {}
    where = "".join(f" AND breakdowns[{literal(k)}] = {literal(v)}" for k, v in filters.items())
    first = ""
    v = versions(dataset)
    if v:   # rows of the version earliest in the declared order, per council, period and measure
        rank = f"array_position([{', '.join(literal(o) for o in v['order'])}], breakdowns[{literal(v['breakdown'])}])"
        first = f"\n        QUALIFY {rank} IS NOT DISTINCT FROM min({rank}) OVER (PARTITION BY old_la_code, time_period, measure)"
    return f"""
        SELECT la_code, time_period, any_value(period_end) AS period_end, max(published_on) AS published_on,
               CASE WHEN count(value) = {len(measures)} THEN sum(value) END AS value
        FROM (SELECT old_la_code AS la_code, * FROM published_statistics
              WHERE dataset = {literal(dataset)} AND geographic_level = 'Local authority' AND old_la_code IS NOT NULL
                AND measure IN ({', '.join(literal(m) for m in measures)}){where}{first})
        GROUP BY la_code, time_period"""


def published_sql(item: dict) -> str:
    """The indicator's published figures; with ``earlier`` layouts, a figure per council and period from the
    first counterpart that has one (the declared dataset first)."""
    pub = item["published"]
    if not pub.get("earlier"):
        return _counterpart_sql(item, pub)
    parts = [f"SELECT *, {k} AS _layout FROM ({_counterpart_sql(item, p)})"
             for k, p in enumerate([pub, *pub["earlier"]])]
    return f"""
        SELECT * EXCLUDE (_layout) FROM ({' UNION ALL '.join(parts)})
        QUALIFY row_number() OVER (PARTITION BY la_code, period_end ORDER BY _layout) = 1"""


def _counterpart_sql(item: dict, pub: dict) -> str:
    bd = pub.get("breakdowns")
    if pub.get("measure") is None:     # counts only: the value is computed from them
        return f"""
        SELECT n.la_code, {literal(item['id'])} AS indicator, n.period_end, 'dfe_year' AS "window",
               n.value AS numerator, d.value AS denominator, {UNITS[item['unit']]} * n.value / d.value AS value,
               'published' AS source, greatest(n.published_on, d.published_on) AS published_on
        FROM ({_published_part(pub['dataset'], pub['numerator'], bd)}) n
        JOIN ({_published_part(pub['dataset'], pub['denominator'], bd)}) d USING (la_code, time_period)
        WHERE n.value IS NOT NULL AND d.value > 0"""
    return f"""
        SELECT v.la_code, {literal(item['id'])} AS indicator, v.period_end, 'dfe_year' AS "window",
               n.value AS numerator, d.value AS denominator, v.value, 'published' AS source, v.published_on
        FROM ({_published_part(pub['dataset'], {'measure': pub['measure']}, bd)}) v
        LEFT JOIN ({_published_part(pub['dataset'], pub['numerator'], bd)}) n USING (la_code, time_period)
        LEFT JOIN ({_published_part(pub['dataset'], pub['denominator'], bd)}) d USING (la_code, time_period)
        WHERE v.value IS NOT NULL"""


# ---------------------------------------------------------------- build ------------------------------

def _typed_select(columns: dict) -> str:
    return ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, (t, _) in columns.items())


def _child_level(con, items: list[dict]) -> None:
    meta = pd.DataFrame([(i["id"], int(i["needs_months"]), rel, len(i["coverage"]), bool(i.get("monthly")))
                         for i in items for rel in i["coverage"]],
                        columns=["indicator", "needs_months", "relation", "n_relations", "monthly"])
    con.register("_ind_meta_df", meta)
    con.execute("CREATE OR REPLACE TEMP TABLE _ind_meta AS SELECT * FROM _ind_meta_df")
    con.unregister("_ind_meta_df")
    relations = sorted(set(meta["relation"]))
    con.execute("CREATE OR REPLACE TEMP TABLE _ind_coverage AS " + " UNION ".join(
        f"SELECT DISTINCT la_code, return_year, {literal(r)} AS relation FROM \"{r}\" WHERE la_code IS NOT NULL"
        for r in relations))
    calendar = working_day_calendar()
    con.register("_ind_workdays_df", calendar)
    con.execute("CREATE OR REPLACE TEMP TABLE _ind_workdays AS SELECT day::DATE AS day, workday_index FROM _ind_workdays_df")
    con.unregister("_ind_workdays_df")
    for script in (WINDOWS_SQL, CIN_SQL, EVENTS_SQL, EPISODES_SQL):
        con.execute(script)
    scale = " ".join(f"WHEN {literal(i['id'])} THEN {UNITS[i['unit']]}" for i in items)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ind_child_level AS
        SELECT la_code, indicator, period_end::DATE AS period_end, "window",
               numerator::DOUBLE AS numerator, denominator::DOUBLE AS denominator,
               CASE WHEN denominator > 0 THEN numerator / denominator * (CASE indicator {scale} END) END AS value,
               'child_level' AS source, CAST(NULL AS DATE) AS published_on
        FROM (SELECT * FROM ({EVENT_RESULTS_SQL}) UNION ALL SELECT * FROM ({STATE_RESULTS_SQL}))
        WHERE denominator IS NOT NULL AND indicator IN ({', '.join(literal(i['id']) for i in items)})""")


def _build(con) -> None:
    items = catalogue()
    _child_level(con, [i for i in items if i["child_level"]])
    published = [published_sql(i) for i in items if i.get("published")]
    con.execute(f"""
        CREATE OR REPLACE TABLE indicators AS
        SELECT {', '.join(f'"{c}"' for c in INDICATOR_COLUMNS)} FROM (
            SELECT * FROM _ind_child_level
            {''.join(f' UNION ALL ({sql})' for sql in published)})
        ORDER BY indicator, la_code, source, "window", period_end""")


RELATIONS = {  # documented in the catalogue's relations and column_dictionary (transforms/catalogue.py)
    "indicators": ("LA / indicator / window / period",
                   "Indicators per council and period: child-level (dfe_year, rolling_12m and, for event "
                   "indicators, month windows) and as published",
                   INDICATOR_COLUMNS),
    "indicator_catalogue": ("indicator", "What each indicator measures, its polarity, references and published "
                            "counterpart (schemas/indicators/indicators.yaml)", CATALOGUE_COLUMNS),
}


def build_indicators(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``indicators`` and ``indicator_catalogue`` in an open catalogue connection. An empty
    repository gives an empty, correctly typed ``indicators``; should the computation fail, the
    catalogue still builds (with ``indicators`` empty) and the error is logged."""
    try:
        _build(con)
    except duckdb.Error:
        log.exception("indicators could not be computed; the catalogue is built with an empty indicators table")
        con.execute(f"CREATE OR REPLACE TABLE indicators AS SELECT {_typed_select(INDICATOR_COLUMNS)} WHERE false")
    create_table_from_frame(con, "indicator_catalogue", catalogue_frame(), CATALOGUE_COLUMNS)
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name LIKE '\\_ind\\_%' ESCAPE '\\'").fetchall():
        con.execute(f'DROP TABLE "{name}"')
