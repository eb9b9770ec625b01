"""Published figures and Ofsted's judgements give every council a risk score at every month end, using only
what was public then (transforms/analytics/standing.py, council_risk.py)."""
from datetime import date

import duckdb
import pandas as pd
import pytest
from conftest import EES, SHARED

from transforms.analytics import council_risk, standing

TURNOVER_PUBLISHED = {2021: date(2022, 2, 28), 2022: date(2023, 2, 28), 2023: date(2024, 2, 29)}


def real_turnover() -> pd.DataFrame:
    """Every council's published social worker turnover (FTE), 2021-2023, from the real CSWW file."""
    raw = pd.read_csv(EES / "csww_indicators_2017_to_2025.csv", dtype=str)
    raw = raw[(raw["geographic_level"] == "Local authority") & raw["time_period"].isin(["2021", "2022", "2023"])]
    value = pd.to_numeric(raw["turnover_rate_fte"], errors="coerce")      # c, x, z ... -> missing
    leavers = pd.to_numeric(raw["leavers_fte"], errors="coerce")
    year = raw["time_period"].astype(int)
    return pd.DataFrame({
        "la_code": raw["old_la_code"], "indicator": "turnover_rate_fte",
        "period_end": pd.to_datetime(raw["time_period"] + "-09-30"), "window": "dfe_year",
        "numerator": leavers, "denominator": leavers / value * 100, "value": value, "source": "published",
        "published_on": pd.to_datetime(year.map(TURNOVER_PUBLISHED))})


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.register("frame", real_turnover())
    c.execute("CREATE TABLE indicators AS SELECT * FROM frame")
    sn = pd.read_csv(SHARED / "reference" / "statistical_neighbours" / "sn_model_2025_wide.csv", dtype=str,
                     encoding="utf-8-sig")
    c.register("long", pd.concat([sn[["old_la_code", f"SN_{k}"]].set_axis(["la_code", "neighbour_code"], axis=1).assign(rank=k)
                      for k in range(1, 11)]))
    c.execute("CREATE TABLE statistical_neighbours AS SELECT *, 2025 AS return_year FROM long")
    c.register("judged", pd.DataFrame([("330", "Birmingham", date(2018, 11, 20), "3"),   # real ILACS outcomes
                                       ("928", "Northamptonshire", date(2019, 8, 30), "4")],
                                      columns=["la_code", "la_name", "publication_date", "overall_effectiveness"]))
    c.execute("CREATE TABLE ofsted_judgements AS SELECT * FROM judged")
    c.execute("""CREATE TABLE early_warning (la_code VARCHAR, indicator VARCHAR, as_of DATE, method VARCHAR,
                 severity INTEGER, direction VARCHAR, explanation VARCHAR)""")
    council_risk.build_council_risk(c)
    yield c
    c.close()


def risk(con, la, as_of):
    return con.execute("SELECT score, coverage, f_workforce_instability, f_ofsted_history, top_reasons "
                       "FROM council_risk WHERE la_code = ? AND as_of = ?", [la, as_of]).fetchall()


def test_no_council_has_a_row_before_anything_about_it_was_published(con):
    first = con.execute("SELECT min(as_of) FROM council_risk WHERE f_workforce_instability IS NOT NULL").fetchone()[0]
    assert first == date(2022, 2, 28)
    assert risk(con, "301", date(2022, 1, 31)) == []


def test_every_council_with_a_published_figure_is_ranked_at_every_month_end_after(con):
    n = con.execute("SELECT count(DISTINCT la_code) FROM council_risk WHERE as_of = '2024-02-29'").fetchone()[0]
    assert n >= 150
    ranks = con.execute("SELECT min(rank), max(rank) FROM council_risk WHERE as_of = '2024-02-29'").fetchone()
    assert ranks[0] == 1 and ranks[1] <= n


def test_a_joint_workforce_return_is_credited_to_each_member_council(con):
    kingston, richmond = risk(con, "314", date(2023, 3, 31)), risk(con, "318", date(2023, 3, 31))
    assert kingston[0][2] is not None and richmond[0][2] is not None
    m = standing.read_metrics(con)
    figures = m[m["la_code"].isin(["314", "318"])].pivot_table(index="year", columns="la_code", values="value")
    assert len(figures) == 3 and (figures["314"] == figures["318"]).all()


def test_an_abolished_council_has_no_row_after_its_last_day_and_its_successors_inherit_its_judgement(con):
    assert con.execute("SELECT count(*) FROM council_risk WHERE la_code = '928' AND as_of > '2021-03-31'"
                       ).fetchone()[0] == 0
    [(_, _, _, ofsted, reasons)] = risk(con, "941", date(2021, 4, 30)) or [(None,) * 5]
    assert ofsted is not None and ofsted > 0
    assert any("Inadequate (published August 2019)" in r for r in reasons)


def test_a_council_created_by_reorganisation_has_no_row_or_warning_before_its_first_day(con):
    # North and West Northamptonshire from 1 April 2021, Cumberland and Westmorland and Furness from 1 April
    # 2023: until then Northamptonshire and Cumbria are ranked, each area once
    for table in ("council_risk", "early_warning"):
        early = con.execute(f"""SELECT la_code, min(as_of) FROM {table} WHERE la_code IN ('940', '941', '942', '943')
                                GROUP BY ALL ORDER BY 1""").fetchall()
        assert early and all(first >= (date(2021, 4, 1) if la < "942" else date(2023, 4, 1)) for la, first in early)
    assert risk(con, "928", date(2020, 1, 31)) and not risk(con, "941", date(2020, 1, 31))
    ranked = con.execute("SELECT as_of, count(*), max(rank) FROM council_risk GROUP BY ALL").fetchall()
    assert all(n <= 153 and top <= n for _, n, top in ranked)


def test_a_judgement_counts_only_from_its_publication_date(con):
    assert risk(con, "330", date(2018, 10, 31)) == []
    [(score, coverage, _, ofsted, _)] = risk(con, "330", date(2018, 11, 30))
    # Requires improvement = 1 point, at Ofsted history's weight, over that weight plus England's share
    w = standing.FACTOR_WEIGHTS["Ofsted history"]
    assert coverage == 1 and ofsted == pytest.approx(w / (w + council_risk.SHRINK)) and score == pytest.approx(ofsted)


def test_the_explanation_names_the_level_neighbours_england_and_two_year_change():
    levels = standing.standing(standing._credit_joint(
        real_turnover().rename(columns={"indicator": "metric", "published_on": "known_from"})
        .assign(year=lambda f: f["period_end"].dt.year).dropna(subset=["value"])), {})
    text = levels[(levels["la_code"] == "330") & (levels["year"] == 2023)]["explanation"].iloc[0]
    assert text.startswith("social worker turnover ") and "(2023)" in text and "England" in text
    assert "in two years" in text


def test_suppressed_figures_are_missing_not_zero(con):
    frame = real_turnover()
    suppressed = frame[frame["value"].isna()]
    assert len(suppressed)                          # the real file suppresses some councils' turnover
    held = standing.read_metrics(con)
    held = held[held["metric"] == "turnover_rate_fte"]
    gone = suppressed.assign(year=suppressed["period_end"].dt.year)[["la_code", "year"]]
    assert gone.merge(held, on=["la_code", "year"]).empty


def test_a_council_known_on_one_factor_is_shrunk_towards_england():
    factors = pd.DataFrame([("301", pd.Timestamp("2024-03-31"), "workforce instability", 2.0, ["turnover up"]),
                            ("302", pd.Timestamp("2024-03-31"), "workforce instability", 2.0, ["turnover up"]),
                            ("302", pd.Timestamp("2024-03-31"), "repeat work", 2.0, ["re-referrals up"])],
                           columns=["la_code", "as_of", "factor", "value", "reasons"])
    out = council_risk.combine(factors).set_index("la_code")
    w, r, shrink = (standing.FACTOR_WEIGHTS["workforce instability"], standing.FACTOR_WEIGHTS["repeat work"],
                    council_risk.SHRINK)
    assert out.loc["301", "score"] == pytest.approx(2 * w / (w + shrink)) and out.loc["301", "score"] < 2
    assert out.loc["302", "score"] == pytest.approx(2 * (w + r) / (w + r + shrink))
    assert out.loc["302", "f_repeat_work"] + out.loc["302", "f_workforce_instability"] == pytest.approx(
        out.loc["302", "score"])
    assert (out.loc["302", "rank"], out.loc["301", "rank"]) == (1, 2) and out.loc["302", "coverage"] == 2


def test_a_published_figure_outside_englands_range_warns_in_words_once_it_is_public(con):
    rows = con.execute("SELECT la_code, as_of, method, severity, direction, explanation FROM early_warning "
                       "WHERE method = 'published_level' AND direction = 'concern'").df()
    assert len(rows) and (rows["severity"] == 2).all()
    assert rows["as_of"].min().date() == date(2022, 2, 28)      # the 2021 census, published February 2022
    assert rows["explanation"].str.startswith("Social worker turnover ").all()
    assert rows["explanation"].str.contains("England .*outside England's range .*judged by level and change").all()


def test_published_warnings_are_shown_but_not_scored_twice(con):
    """The published figures reach the score through their standing; their warnings in early_warning do not
    also count as live child-level warnings."""
    assert con.execute("SELECT count(*) FROM council_risk WHERE f_live_warnings IS NOT NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM early_warning WHERE method LIKE 'published%'").fetchone()[0] > 0


def test_an_unusual_change_alone_is_worth_watching_and_with_an_outlying_level_is_a_warning():
    known = pd.DataFrame({
        "la_code": ["301", "302"], "metric": "turnover_rate_fte", "as_of": pd.Timestamp("2024-02-29"),
        "value": [30.0, 16.0], "england": 15.0, "period_end": pd.Timestamp("2023-09-30"),
        "z_england": [4.0, 0.5], "fz": [4.0, 0.5], "z_change": [3.5, 3.5],
        "explanation": ["social worker turnover 30.0% (2023)", "social worker turnover 16.0% (2023)"]})
    out = standing.signals_at(known).set_index(["la_code", "method"])
    assert out.loc[("301", "published_level"), "severity"] == 2
    assert out.loc[("301", "published_change"), "severity"] == 2
    assert out.loc[("302", "published_change"), "severity"] == 1
    assert ("302", "published_level") not in out.index
    assert (out["direction"] == "concern").all()


def test_spend_per_child_counts_from_the_december_after_its_financial_year():
    """RO3 2024-25 (return year 2025): net current expenditure over the services, not their "of which"
    parts, per child aged 0-17, public from 31 December 2025."""
    c = duckdb.connect()
    c.execute("""CREATE TABLE spend_ro3 AS SELECT * FROM (VALUES
                 (2025, '886', 'Children looked after', 'Net Current Expenditure', 300000.0),
                 (2025, '886', 'Children looked after of which residential care', 'Net Current Expenditure', 200000.0),
                 (2025, '886', 'Safeguarding children and young people''s services', 'Net Current Expenditure', 100000.0))
                 t(return_year, la_code, service, line, value)""")
    c.execute("""CREATE TABLE published_statistics AS SELECT * FROM (VALUES
                 ('population_0_17', 'Local authority', '886', DATE '2024-06-30', 350000.0, 'population_estimate',
                  DATE '2025-06-30'))
                 t(dataset, geographic_level, old_la_code, period_end, value, measure, published_on)""")
    [row] = standing.read_metrics(c).itertuples()
    assert (row.metric, row.year, row.known_from) == ("csc_spend_per_child", 2025, pd.Timestamp("2025-12-31"))
    assert row.value == pytest.approx(1000 * 400000 / 350000)          # pounds thousands -> pounds per child


def test_a_council_whose_count_is_suppressed_leaves_the_others_their_funnel():
    """Small councils are shrunk towards England by their funnel; one council without published counts
    is judged by a robust z alone, and never warns on its level without its counts."""
    frame = real_turnover()
    year = frame[frame["period_end"].dt.year == 2023].dropna(subset=["value"]).copy()
    metrics = year.rename(columns={"indicator": "metric", "published_on": "known_from"}).assign(year=2023)
    whole = standing.standing(metrics, {}).set_index("la_code")
    gap = metrics.copy()
    gap.loc[gap["la_code"] == "201", ["numerator", "denominator"]] = float("nan")   # City of London's counts
    holed = standing.standing(gap, {}).set_index("la_code")
    others = whole.index.drop("201")
    assert holed.loc[others, "fz"].notna().all()
    assert holed.loc[others, "z_england"].to_numpy() == pytest.approx(whole.loc[others, "z_england"].to_numpy(), abs=0.05)
    assert pd.isna(holed.loc["201", "fz"]) and pd.notna(holed.loc["201", "z_england"])
    known = holed.reset_index().assign(as_of=pd.Timestamp("2024-03-31"), z_england=lambda f: f["z_england"] * 0 + 9)
    warned = standing.signals_at(known)
    assert "201" not in set(warned.loc[warned["method"] == "published_level", "la_code"])


def test_the_explanation_places_the_council_among_its_neighbours_in_words():
    frame = real_turnover()
    metrics = frame[frame["period_end"].dt.year == 2023].dropna(subset=["value"]).rename(
        columns={"indicator": "metric", "published_on": "known_from"}).assign(year=2023)
    by_value = metrics.sort_values("value")["la_code"].tolist()
    low, mid, high = by_value[0], by_value[len(by_value) // 2], by_value[-1]
    levels = standing.standing(metrics, {low: [mid, high], mid: [low, high], high: [low, mid]}).set_index("la_code")
    assert ", the lowest of 3 with its neighbours" in levels.loc[low, "explanation"]
    assert ", 2nd highest of 3 with its neighbours" in levels.loc[mid, "explanation"]
    assert ", the highest of 3 with its neighbours" in levels.loc[high, "explanation"]


def test_a_judgement_listed_under_a_council_created_later_belongs_to_the_council_inspected_then():
    # Ofsted's SIF list gives Dorset county's May 2016 judgement the code of the Dorset created in 2019
    c = duckdb.connect()
    c.execute("""CREATE TABLE ofsted_judgements AS SELECT * FROM (VALUES
                 ('838', 'Dorset', DATE '2016-05-23', '3'), ('838', 'Dorset', DATE '2021-09-10', '2'))
                 t(la_code, la_name, publication_date, overall_effectiveness)""")
    c.execute("""CREATE TABLE early_warning (la_code VARCHAR, indicator VARCHAR, as_of DATE, method VARCHAR,
                 severity INTEGER, direction VARCHAR, explanation VARCHAR)""")
    c.execute("""CREATE TABLE indicators (la_code VARCHAR, indicator VARCHAR, period_end DATE, "window" VARCHAR,
                 numerator DOUBLE, denominator DOUBLE, value DOUBLE, source VARCHAR, published_on DATE)""")
    assert standing.read_judgements(c)["la_code"].tolist() == ["835", "838"]
    council_risk.build_council_risk(c)
    assert risk(c, "835", date(2016, 5, 31))[0][3] > 0
    assert risk(c, "838", date(2019, 4, 30))[0][3] > 0 and risk(c, "838", date(2021, 9, 30))[0][3] == 0
    c.close()


def test_a_tiny_councils_standing_among_neighbours_is_shrunk_by_how_little_its_figure_rests_on():
    """Isles of Scilly-sized workforces (2 FTE) make 100 % from one person: the same turnover figure
    counts for much less against the neighbours when it rests on 2 FTE than on 500."""
    frame = real_turnover()
    year = frame[frame["period_end"].dt.year == 2023].dropna(subset=["value", "denominator"]).copy()
    metrics = year.rename(columns={"indicator": "metric", "published_on": "known_from"}).assign(year=2023)
    small, large, *others = sorted(metrics["la_code"].unique())[:12]
    for la, n in ((small, 2.0), (large, 500.0)):
        metrics.loc[metrics["la_code"] == la, ["value", "numerator", "denominator"]] = [50.0, n / 2, n]
    levels = standing.standing(metrics, {small: others, large: others}).set_index("la_code")
    assert levels.loc[large, "z_neighbours"] > 1.0
    assert 0 < levels.loc[small, "z_neighbours"] < 0.25 * levels.loc[large, "z_neighbours"]
