"""Scenario councils with a known truth (transforms/scenarios.py), and early warning judged against it.

The fast tests fix what a scenario is: stable councils keep their level, deteriorating ones decline aspect
by aspect from a known onset, and the truth is written beside the landing area. The slow test runs a small
fixed scenario through the real pipeline (files -> GX -> repository -> catalogue -> early_warning) and checks
that the deteriorating council, and only it, is warned, on an indicator the truth says moves, in the months
after the move starts.
"""
from __future__ import annotations

import dataclasses
from datetime import date

import duckdb
import numpy as np
import pytest

from transforms.run import ingest
from transforms.store.repository import Repository
from transforms.synthetic import scenarios
from transforms.synthetic.generator import _d

DAY = 1.0


def test_stable_council_keeps_its_practice_level_in_every_aspect():
    stable = [c for c in scenarios.make_councils(10, seed=2) if not c.deteriorating][0]
    times = np.array([_d("2021-01-01"), _d("2023-06-15"), _d("2025-03-31")])
    for aspect in scenarios.STAGES:
        assert np.allclose(stable.practice_for(aspect, times), stable.practice)


def test_deteriorating_council_declines_aspect_by_aspect_from_its_onset():
    c = scenarios.make_councils(4, seed=1, onsets={code: "2023-01" for code in
                                                   [x.code for x in scenarios.make_councils(4, seed=1)][:1]})[0]
    assert c.deteriorating
    onset = _d("2023-01-01")
    before, one_month_in = onset - DAY, onset + 31
    for aspect in scenarios.STAGES:
        assert c.practice_for(aspect, before) == pytest.approx(c.practice)
    # a month in, the workforce (stage 0) has started to slip; assessments (stage 2) have not yet
    assert c.practice_for("social_workers", one_month_in) < c.practice
    assert c.practice_for("assessment", one_month_in) == pytest.approx(c.practice)
    # once every ramp is complete each aspect has lost the full decline
    done = onset + (max(scenarios.STAGES.values()) + c.ramp_months + 1) * scenarios.MONTH
    for aspect in scenarios.STAGES:
        assert c.practice_for(aspect, done) == pytest.approx(c.practice - c.decline)


def test_councils_range_from_small_to_large_and_deteriorating_ones_are_spread_across_sizes():
    councils = scenarios.make_councils(40, deteriorating=0.4, seed=0)
    sizes = np.array([c.cla for c in councils])
    assert sizes.min() == 30 and sizes.max() == 1500 and 300 < np.median(sizes) < 500
    det = sorted(c.cla for c in councils if c.deteriorating)
    assert len(det) == 16
    assert det[0] < np.quantile(sizes, 0.25) and det[-1] > np.quantile(sizes, 0.75)


def test_truth_is_written_beside_the_landing_area_with_each_indicator_month(tmp_path):
    councils = scenarios.make_councils(3, seed=4, scale=0.3, onsets={})
    code = councils[0].code
    councils = scenarios.make_councils(3, seed=4, scale=0.3, onsets={code: "2023-10"})
    landing = tmp_path / "landing"
    scenarios.generate_scenario(landing, councils, years=(2024,), error_rate=0)
    assert not [p for p in landing.rglob("*truth*")]                 # ingestion never sees it
    truth = scenarios.read_truth(landing)
    rows = {(r["la_code"], r["indicator"]): r for r in truth["councils"]}
    assert rows[(code, "social_worker_changes")]["moves_from"] == "2023-10-01"
    assert rows[(code, "assessment_45wd")]["moves_from"] == "2023-12-01"
    assert rows[(code, "placement_stability_short")]["moves_from"] == "2024-04-01"
    stable = {r["la_code"] for r in truth["councils"] if r["status"] == "stable"}
    assert stable == {c.code for c in councils} - {code}
    assert scenarios.truth_paths(landing)[1].read_text().startswith("la_code,")


# ---------------------------------------------------------------- through the pipeline ------------------

YEARS = (2022, 2023, 2024)
ONSET = "2022-10"


@pytest.fixture(scope="module")
def scenario_catalogue(tmp_path_factory):
    """Three councils, three return years: one of ~700 children looked after deteriorating from October
    2022, two stable ones (~250 and ~500)."""
    root = tmp_path_factory.mktemp("scenario")
    base = scenarios.make_councils(3, seed=7, onsets={})
    sizes = {base[0].code: 700.0, base[1].code: 250.0, base[2].code: 500.0}
    councils = scenarios.make_councils(3, seed=7, onsets={base[0].code: ONSET}, decline=(3.0, 3.0))
    councils = [dataclasses.replace(c, cla=sizes[c.code], ramp_months=6.0) for c in councils]
    landing = root / "landing"
    scenarios.generate_scenario(landing, councils, years=YEARS, seed=7, error_rate=0)
    ingest(landing, root / "repository")
    con = duckdb.connect(str(Repository(root / "repository").catalogue_path), read_only=True)
    yield con, scenarios.read_truth(landing), base[0].code
    con.close()


@pytest.mark.slow
def test_only_the_deteriorating_council_is_warned_on_a_moving_indicator_after_the_move(scenario_catalogue):
    con, truth, deteriorating = scenario_catalogue
    warnings = con.execute("""
        SELECT la_code, indicator, min(as_of) AS first_warning FROM early_warning
        WHERE direction = 'concern' AND severity >= 2 AND method LIKE 'spc_%'
        GROUP BY ALL ORDER BY first_warning""").fetchall()
    assert {la for la, _, _ in warnings} == {deteriorating}
    moves = {r["indicator"]: date.fromisoformat(r["moves_from"]) for r in truth["councils"]
             if r["la_code"] == deteriorating}
    first = min(f for _, _, f in warnings)
    at_first = {indicator for _, indicator, f in warnings if f == first}
    assert at_first <= set(moves) and "assessment_45wd" in at_first
    # not before assessments start to slip (December 2022), and within 9 months of it: a year before the
    # annual publication that would show the decline (2023-24, published November 2024)
    assert moves["assessment_45wd"] <= first < date(2023, 10, 1)
