"""Early warning, specified on hand-made series whose answers are known.

The XmR reference series alternates 22, 20, 22, 20, ... for its first 12 months: centre 21, every moving
range 2, so the upper limit is 21 + 2.66 x 2 = 26.32, the lower 15.68, and two sigma 21 +/- 3.5467.
Funnel expectations are worked out here from the formulas (arcsine-square-root scale), never by calling
the function under test.
"""
from __future__ import annotations

import math
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from transforms.analytics.early_warning import (
    COLUMNS,
    build_early_warning,
    early_warning_frame,
    funnel,
    pchart,
    signals_as_of,
    xmr,
)

START = pd.Timestamp("2022-01-31")
CATALOGUE = pd.DataFrame({
    "indicator": ["rereferral_12m", "assessment_45wd", "cla_rate_per_10k"],
    "title": ["Re-referrals", "Assessments in 45 days", "Children looked after per 10,000"],
    "unit": ["percent", "percent", "rate_per_10k"],
    "polarity": ["higher_is_worse", "lower_is_worse", "context"],
})


def month(i: int) -> pd.Timestamp:
    """Month i of the series (1 = January 2022), as a month end."""
    return START + pd.offsets.MonthEnd(i - 1)


def baseline(n: int = 12) -> list[float]:
    return [22.0 if i % 2 == 0 else 20.0 for i in range(n)]      # month 1 = 22, month 2 = 20, ...


def frame(values, indicator="rereferral_12m", la="301") -> pd.DataFrame:
    """A council's monthly series (window month, what SPC reads), month 1 onwards (denominator 1000, so
    value = numerator / 10)."""
    return pd.DataFrame({
        "la_code": la, "indicator": indicator, "period_end": [month(i + 1) for i in range(len(values))],
        "window": "month", "numerator": [v * 10 for v in values], "denominator": 1000.0,
        "value": list(values), "source": "child_level"})


def both(values, la="301") -> pd.DataFrame:
    """The monthly series and the same values as rolling 12-month windows (what funnels read)."""
    f = frame(values, la=la)
    return pd.concat([f, f.assign(window="rolling_12m")], ignore_index=True)


def at(values, i, indicator="rereferral_12m") -> pd.DataFrame:
    return signals_as_of(frame(values, indicator), CATALOGUE, month(i).date())


# ---------------------------------------------------------------- xmr ----------------------------------------

def test_xmr_limits_are_baseline_mean_plus_minus_2_66_mean_moving_range():
    chart = xmr(baseline(12) + [21.0] * 6)
    assert chart["centre"].iloc[0] == pytest.approx(21.0)
    assert chart["upper"].iloc[0] == pytest.approx(21 + 2.66 * 2)
    assert chart["lower"].iloc[0] == pytest.approx(21 - 2.66 * 2)
    assert chart["upper_2sigma"].iloc[0] == pytest.approx(21 + 2 / 3 * 2.66 * 2)


def test_xmr_baseline_is_the_first_12_points_only():
    """Later points, however wild, do not move the limits."""
    chart = xmr(baseline(12) + [90.0, 10.0, 95.0])
    assert chart["centre"].iloc[-1] == pytest.approx(21.0)
    assert chart["upper"].iloc[-1] == pytest.approx(26.32)


def test_xmr_screens_moving_ranges_of_3_267_times_the_mean():
    """One spike in the baseline gives two moving ranges of 30: mean MR (2 x 9 + 30 x 2) / 11 = 7.09,
    D4 x 7.09 = 23.2 < 30, so both are dropped and the mean MR is 2 again, as NHSRplotthedots does."""
    series = baseline(12)
    series[5] = 50.0                           # neighbours 22 and 22: moving ranges 28 and 28
    mrs = np.abs(np.diff(series))
    assert 3.267 * mrs.mean() < 28              # the spike's moving ranges are screened out
    kept = mrs[mrs < 3.267 * mrs.mean()]
    chart = xmr(series)
    assert chart["upper"].iloc[0] == pytest.approx(np.mean(series) + 2.66 * kept.mean())
    assert kept.mean() == pytest.approx(2.0)


def test_stable_noisy_series_gives_no_special_cause():
    rng = np.random.default_rng(7)
    values = 21 + np.where(np.arange(36) % 2, 1, -1) * np.abs(rng.normal(0, 0.7, 36)) + 0.01
    # crosses the centre every month, never near the limits, never 7 rises or falls
    chart = xmr(values)
    assert not chart["special_cause"].any()
    assert all(at(values, i).empty for i in range(1, 37))


def test_fewer_than_12_points_give_trial_limits_and_no_signal():
    values = baseline(10) + [80.0]              # an enormous spike at point 11
    chart = xmr(values)
    assert chart["trial"].all()
    assert not chart["special_cause"].any()
    assert at(values, 11).empty


def test_twelfth_point_is_no_longer_trial():
    chart = xmr(baseline(12))
    assert chart["trial"].tolist() == [True] * 11 + [False]


# ---------------------------------------------------------------- SPC signals ----------------------------------

def test_point_far_above_the_limits_signals_that_month():
    values = baseline(18) + [40.0]              # month 19: 40 > 26.32
    sig = at(values, 19)
    beyond = sig[sig["method"] == "spc_point_beyond_limits"]
    assert len(beyond) == 1
    row = beyond.iloc[0]
    assert row["value"] == 40.0 and row["expected"] == pytest.approx(21.0)
    assert row["upper"] == pytest.approx(26.32, abs=0.2)   # 3 sigma, to the nearest event of 1,000
    assert row["since"] == month(19).date() and row["as_of"] == month(19).date()
    assert row["direction"] == "concern" and row["severity"] == 1          # one point: worth watching
    assert row["explanation"].startswith("Re-referrals rose to 40.0% (expected 21.0%); above the upper limit")
    assert "since 2023-07" in row["explanation"]          # month 19 = July 2023
    assert at(values, 18).empty                 # the month before: nothing


def test_step_change_after_month_18_is_a_run_from_the_7th_point_after_it():
    """Months 1-18 alternate 22/20 (month 18 = 20, below the centre of 21); from month 19 the series
    alternates 23/24: above the centre, inside two sigma (24.55), never 7 rises in a row."""
    values = baseline(18) + [23.0, 24.0] * 6
    for i in range(19, 25):                      # 1st to 6th point after the step: no run yet
        assert "spc_run" not in set(at(values, i)["method"]), i
    sig = at(values, 25)
    assert list(sig["method"]) == ["spc_run"]
    row = sig.iloc[0]
    assert row["since"] == month(19).date() and row["direction"] == "concern" and row["severity"] == 1
    assert at(values, 30).iloc[0]["since"] == month(19).date()   # the run keeps its start


def test_step_for_a_lower_is_worse_indicator_is_an_improvement():
    values = baseline(18) + [23.0, 24.0] * 6
    assert at(values, 25, "assessment_45wd").iloc[0]["direction"] == "improvement"


def falling() -> list[float]:
    """12 baseline months then 7 strictly falling points, 21.3 down to 20.7 in steps of 0.1 (months 13-19):
    they cross the centre (21.0 at month 16 breaks any run) and stay inside two sigma, so only the trend
    rule can fire."""
    return baseline(12) + [round(21.3 - 0.1 * k, 1) for k in range(7)]


def test_seven_falling_points_are_a_trend_from_the_first_of_them():
    sig = at(falling(), 19)
    trend = sig[sig["method"] == "spc_trend"]
    assert len(trend) == 1
    # month 12 (20.0) -> month 13 (21.9) rises, so the 7 falling points are months 13-19
    assert trend.iloc[0]["since"] == month(13).date()
    assert "spc_trend" not in set(at(falling(), 18)["method"])     # six points only


def test_falling_series_is_concern_when_lower_is_worse_and_improvement_when_higher_is_worse():
    worse = at(falling(), 19, "assessment_45wd")
    better = at(falling(), 19, "rereferral_12m")
    assert set(worse["direction"]) == {"concern"} and "spc_trend" in set(worse["method"])
    assert set(better["direction"]) == {"improvement"} and "spc_trend" in set(better["method"])


def test_context_indicator_change_either_way_is_a_concern():
    up = at(baseline(18) + [40.0], 19, "cla_rate_per_10k")
    down = at(baseline(18) + [2.0], 19, "cla_rate_per_10k")
    assert list(up["direction"]) == ["concern"] and list(down["direction"]) == ["concern"]


def test_a_point_on_the_centre_breaks_a_run():
    values = baseline(18) + [23.0, 24.0, 23.0, 21.0, 24.0, 23.0, 24.0, 23.0]   # month 22 on the centre
    assert "spc_run" not in set(at(values, 25)["method"])
    assert "spc_run" not in set(at(values, 26)["method"])     # 23-26: only 4 since the break


def test_two_of_three_beyond_two_sigma_on_the_same_side():
    """Two sigma is 24.55, three 26.32: 25 and 25.5 are in the band; the point between them (21.5) is on
    the same side of the centre."""
    values = baseline(18) + [25.0, 21.5, 25.5]
    sig = at(values, 21)
    assert list(sig["method"]) == ["spc_two_of_three"]
    assert sig.iloc[0]["since"] == month(19).date()
    assert at(values, 20).empty
    # the middle point below the centre: not all three on one side, no signal
    assert at(baseline(18) + [25.0, 20.5, 25.5], 21).empty


def test_event_indicator_is_charted_on_its_monthly_series_not_its_rolling_windows():
    """The rolling windows drift upwards for seven months in a row (as overlapping windows do); the months
    themselves are noise around 21 %: no trend, no run."""
    monthly = frame(baseline(20))
    rolling = frame([21.0 + 0.1 * i for i in range(20)]).assign(window="rolling_12m")
    sig = signals_as_of(pd.concat([monthly, rolling]), CATALOGUE, month(20).date())
    assert not sig["method"].str.startswith("spc_").any()
    assert "spc_trend" in set(signals_as_of(frame([21.0 + 0.1 * i for i in range(20)]), CATALOGUE,
                                            month(20).date())["method"])          # the same values as months


def test_a_month_with_few_events_gets_wider_limits_than_a_busy_one():
    """p'-chart: 30 % in a month of 40 referrals is chance for a council whose baseline is 21 % of 1,000 a
    month; 30 % of 1,000 is not."""
    def council(n_last):
        f = frame(baseline(18) + [30.0])
        f.loc[f.index[-1], ["numerator", "denominator"]] = [0.3 * n_last, n_last]
        return signals_as_of(f, CATALOGUE, month(19).date())
    small, busy = council(40.0), council(1000.0)
    assert "spc_point_beyond_limits" not in set(small["method"])
    row = busy[busy["method"] == "spc_point_beyond_limits"].iloc[0]
    assert row["upper"] == pytest.approx(26.32, abs=0.2)
    assert small.empty or (small["upper"] > 30.0).all()


def test_state_indicator_rolling_series_signals_only_beyond_its_limits():
    """Placement stability has no monthly form: its rolling 12-month series (200 children) creeping up
    for months is not a run or a trend, but a value far outside the baseline's binomial spread is."""
    cat = pd.concat([CATALOGUE, pd.DataFrame({"indicator": ["placement_stability_short"], "title": ["3+ placements"],
                                              "unit": ["percent"], "polarity": ["higher_is_worse"]})])
    creep = [10.0] * 12 + [10.5 + 0.5 * i for i in range(9)]             # 10 % -> 14.5 %, 9 rises
    f = frame(creep, "placement_stability_short").assign(window="rolling_12m", denominator=200.0)
    f["numerator"] = f["value"] * 2
    assert signals_as_of(f, cat, month(21).date()).empty                   # inside 10 % +/- 3 x 3.0 points (two samples of 200)
    jump = f.copy()
    jump.loc[jump.index[-1], ["value", "numerator"]] = [25.0, 50.0]
    sig = signals_as_of(jump, cat, month(21).date())
    assert list(sig["method"]) == ["spc_point_beyond_limits"] and list(sig["direction"]) == ["concern"]


def test_limits_crossed_twice_in_three_months_is_a_warning_once_is_not():
    once = at(baseline(18) + [40.0], 19)
    twice = at(baseline(18) + [40.0, 22.0, 40.0], 21)
    assert set(once["severity"]) == {1}
    beyond = twice[twice["method"] == "spc_point_beyond_limits"].iloc[0]
    assert beyond["severity"] == 2 and beyond["direction"] == "concern"
    # on the other side, it corroborates nothing
    assert set(at(baseline(18) + [2.0, 22.0, 40.0], 21)["severity"]) == {1}


def test_a_run_with_a_point_beyond_the_limits_is_a_warning():
    """Seven months above the centre, the seventh beyond the upper limit: two rules agree."""
    sig = at(baseline(18) + [23.0, 24.0] * 3 + [40.0], 25)
    assert set(sig["method"]) == {"spc_run", "spc_point_beyond_limits"}
    assert set(sig["severity"]) == {2}


def test_pchart_of_rare_events_does_not_take_six_in_sixty_for_a_special_cause():
    """3 % of plans end after 2 years; a month with 6 of 60 is a 1-in-80 month under the binomial, not the
    3.2-sigma outlier the normal approximation makes it. 12 of 60 is a special cause."""
    num = [2, 1, 2, 2, 1, 3, 2, 1, 2, 2, 1, 2] * 2
    chart = pchart(num + [6], [60] * 25)
    assert chart["beyond_limits"].iloc[-1] == 0 and chart["z"].iloc[-1] < 3
    assert pchart(num + [12], [60] * 25)["beyond_limits"].iloc[-1] == 1


def test_a_baseline_with_fewer_than_ten_events_raises_nothing():
    """4 events in the first year: the centre is too uncertain to judge later months against."""
    num = [0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1] * 2 + [12]
    chart = pchart(num, [15] * 25)
    assert not chart[["beyond_limits", "run", "trend", "two_of_three"]].to_numpy().any()


def test_stale_series_stops_signalling():
    """A spike in month 19 with no later data is not reported as live a year later."""
    values = baseline(18) + [40.0]
    assert signals_as_of(frame(values), CATALOGUE, month(30).date()).empty


# ---------------------------------------------------------------- no look-ahead -----------------------------

def test_spike_in_a_later_month_never_appears_in_an_earlier_as_of():
    values = baseline(24) + [60.0] + baseline(6)          # spike at month 25
    full = frame(values)
    for i in range(12, 25):
        early = signals_as_of(full, CATALOGUE, month(i).date())
        cut = signals_as_of(full[full["period_end"] <= month(i)], CATALOGUE, month(i).date())
        pd.testing.assert_frame_equal(early, cut)
        assert not (early["value"] == 60.0).any()
    assert (signals_as_of(full, CATALOGUE, month(25).date())["value"] == 60.0).any()


# ---------------------------------------------------------------- funnel -------------------------------------

def arcsine_limits(p0: float, n: float, z: float = 3.09, extra_var: float = 0.0) -> tuple[float, float]:
    t, sd = math.asin(math.sqrt(p0)), math.sqrt(1 / (4 * n) + extra_var)
    return math.sin(max(t - z * sd, 0)) ** 2, math.sin(min(t + z * sd, math.pi / 2)) ** 2


def test_small_council_slightly_high_is_inside_while_a_large_one_is_outside():
    """40 councils at exactly 20 % (400 of 2,000) plus a small (100) and a large (4,000) council both at 23 %."""
    num = [400.0] * 40 + [23.0, 920.0]
    den = [2000.0] * 40 + [100.0, 4000.0]
    p0 = sum(num) / sum(den)
    out = funnel(num, den)
    assert out["p0"].iloc[0] == pytest.approx(p0)
    assert out["phi"].iloc[0] <= 1                       # the winsorised z-scores are not over-dispersed
    small, large = out.iloc[40], out.iloc[41]
    assert (small["lower"], small["upper"]) == pytest.approx(arcsine_limits(p0, 100))
    assert (large["lower"], large["upper"]) == pytest.approx(arcsine_limits(p0, 4000))
    assert not small["outside"] and large["outside"] and large["side"] == 1
    # and close to the textbook normal approximation p0 +/- 3.09 sqrt(p0 (1 - p0) / n) for the large one
    assert large["upper"] == pytest.approx(p0 + 3.09 * math.sqrt(p0 * (1 - p0) / 4000), abs=1e-3)


def dispersed() -> tuple[list[float], list[float]]:
    props = np.linspace(0.10, 0.40, 30)                  # far more spread than chance at n = 1,000
    den = [1000.0] * 30
    return list(props * 1000), den


def test_over_dispersion_widens_the_limits():
    num, den = dispersed()
    out = funnel(num, den)
    p0 = sum(num) / sum(den)
    z = np.array([(math.asin(math.sqrt(a / b)) - math.asin(math.sqrt(p0))) * 2 * math.sqrt(b)
                  for a, b in zip(num, den)])
    lo, hi = np.quantile(z, [0.1, 0.9])                  # R's default (type 7) quantiles
    phi = np.mean(np.clip(z, lo, hi) ** 2)
    w = np.array([4 * b for b in den])
    tau2 = (30 * phi - 29) / (w.sum() - (w ** 2).sum() / w.sum())
    assert phi > 1 and out["phi"].iloc[0] == pytest.approx(phi)
    assert out["tau2"].iloc[0] == pytest.approx(tau2)
    plain = arcsine_limits(p0, 1000)
    assert (out["lower"].iloc[0], out["upper"].iloc[0]) == pytest.approx(arcsine_limits(p0, 1000, extra_var=tau2))
    assert out["upper"].iloc[0] > plain[1] and out["lower"].iloc[0] < plain[0]
    unadjusted = funnel(num, den, method="none")
    assert unadjusted["outside"].sum() > out["outside"].sum()
    multiplicative = funnel(num, den, method="multiplicative")
    t, sd = math.asin(math.sqrt(p0)), math.sqrt(phi / 4000)
    assert multiplicative["upper"].iloc[0] == pytest.approx(math.sin(t + 3.09 * sd) ** 2)


def england(p_by_la: dict[str, float], n: float = 1000.0, period=None, source="child_level",
            window="rolling_12m", indicator="rereferral_12m") -> pd.DataFrame:
    period = period or month(12)
    return pd.DataFrame({
        "la_code": list(p_by_la), "indicator": indicator, "period_end": period, "window": window,
        "numerator": [p * n for p in p_by_la.values()], "denominator": n,
        "value": [100 * p for p in p_by_la.values()], "source": source})


def test_funnel_england_signal_in_signals_as_of():
    las = {f"{300 + i}": 0.20 for i in range(20)} | {"399": 0.35}
    sig = signals_as_of(england(las), CATALOGUE, month(12).date())
    assert list(sig["method"]) == ["funnel_england"] and list(sig["la_code"]) == ["399"]
    row = sig.iloc[0]
    p0 = (20 * 200 + 350) / 21000
    assert row["expected"] == pytest.approx(100 * p0)
    assert row["value"] == pytest.approx(35.0) and row["direction"] == "concern" and row["severity"] == 2
    assert row["since"] == month(12).date()


def test_funnel_explanation_names_its_centre_as_the_councils_held_not_england():
    las = {f"{300 + i}": 0.20 for i in range(20)} | {"399": 0.35}
    text = signals_as_of(england(las), CATALOGUE, month(12).date()).iloc[0]["explanation"]
    assert "the 21 councils in this repository 20.7%" in text
    assert "England" not in text


def test_published_figure_is_not_used_before_it_was_published():
    las = {f"{300 + i}": 0.20 for i in range(20)} | {"399": 0.35}
    pub = england(las, period=pd.Timestamp("2022-03-31"), source="published", window="dfe_year")
    # no publication date in the frame: period end + the published collection's declared lag (12 months)
    assert signals_as_of(pub, CATALOGUE, date(2023, 3, 30)).empty
    assert list(signals_as_of(pub, CATALOGUE, date(2023, 3, 31))["la_code"]) == ["399"]
    dated = pub.assign(published_on=pd.Timestamp("2023-01-15"))
    assert signals_as_of(dated, CATALOGUE, date(2022, 12, 31)).empty
    assert not signals_as_of(dated, CATALOGUE, date(2023, 1, 31)).empty


def test_own_history_and_england_agreeing_raise_severity_to_3():
    others = pd.concat([both(baseline(19), la=f"{300 + i}") for i in range(20)])
    spiking = both(baseline(18) + [40.0], la="399")
    sig = signals_as_of(pd.concat([others, spiking]), CATALOGUE, month(19).date())
    assert set(sig["la_code"]) == {"399"}
    assert set(sig["method"]) == {"spc_point_beyond_limits", "funnel_england"}
    severity = dict(zip(sig["method"], sig["severity"]))
    assert severity == {"spc_point_beyond_limits": 2, "funnel_england": 3}     # each corroborated by the other


# ---------------------------------------------------------------- build --------------------------------------

def test_build_early_warning_matches_signals_as_of_at_every_month_end():
    ind = pd.concat([frame(baseline(18) + [23.0, 24.0] * 6, la="301"), frame(baseline(18) + [40.0], la="302")])
    con = duckdb.connect()
    con.register("ind_df", ind)
    con.execute("CREATE TABLE indicators AS SELECT la_code, indicator, period_end::DATE AS period_end, \"window\", "
                "numerator, denominator, value, source FROM ind_df")
    con.register("cat_df", CATALOGUE)
    con.execute("CREATE TABLE indicator_catalogue AS SELECT * FROM cat_df")
    build_early_warning(con)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'early_warning' ORDER BY ordinal_position").fetchall())
    assert types == {c: t for c, (t, _) in COLUMNS.items()}
    table = con.execute("SELECT * FROM early_warning").df()
    assert len(table) > 0 and set(pd.to_datetime(table["as_of"])) <= {month(i) for i in range(1, 31)}
    for i in (19, 25, 30):
        want = signals_as_of(ind, CATALOGUE, month(i).date())
        got = table[pd.to_datetime(table["as_of"]) == month(i)]
        assert sorted(zip(got["la_code"], got["method"])) == sorted(zip(want["la_code"], want["method"]))
    assert len(early_warning_frame(ind, CATALOGUE)) == len(table)


def test_empty_input_gives_an_empty_typed_table():
    con = duckdb.connect()
    con.execute("CREATE TABLE indicators (la_code VARCHAR, indicator VARCHAR, period_end DATE, \"window\" VARCHAR, "
                "numerator DOUBLE, denominator DOUBLE, value DOUBLE, source VARCHAR)")
    con.register("cat_df", CATALOGUE)
    con.execute("CREATE TABLE indicator_catalogue AS SELECT * FROM cat_df")
    build_early_warning(con)
    assert con.execute("SELECT count(*) FROM early_warning").fetchone() == (0,)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'early_warning'").fetchall())
    assert types == {c: t for c, (t, _) in COLUMNS.items()}
    assert list(signals_as_of(pd.DataFrame(), CATALOGUE, date(2024, 1, 31)).columns) == list(COLUMNS)
