"""Child-level indicators agree with the published figures for the same council and year.

DfE publishes each council's referrals, re-referrals and repeat child protection plans from the CIN
census the council sent. Here the test plays DfE: it reads the raw XML returns of three synthetic
councils with nothing but the standard library, counts referrals, re-referrals and plans by the
published definitions (C1, D3), rounds counts to the nearest 10 as DfE does, and writes the result as an
EES file. Both the returns and that file go through the whole pipeline; the indicators computed from
the child-level rows must then agree with the published ones within the rounding DfE applies:
percentages to 0.05 points (one decimal place), counts to 5 (nearest 10).
"""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import date, timedelta

import duckdb
import pytest
from conftest import put

from transforms.run import ingest
from transforms.synthetic import generator as synthetic

YEAR = 2025
START, END = date(YEAR - 1, 4, 1), date(YEAR, 3, 31)
EES_KEYS = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
            "region_name", "old_la_code", "new_la_code", "la_name"]


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _returns(folder):
    """(la, child element) for every child in every CIN census return under ``folder``."""
    for path in sorted(folder.glob("*/cin_census/*.xml")):
        root = ET.parse(path).getroot()
        la = root.findtext("Header/Source/LEA")
        for child in root.iter("Child"):
            yield la, child


def published_c1_and_d3(folder) -> dict[str, dict]:
    """What DfE would publish for each council for the year to 31 March 2025."""
    referrals = defaultdict(set)   # (la, child) -> referral dates, across overlapping returns
    plans = {}                     # (la, child, start) -> number of previous plans
    for la, child in _returns(folder):
        cid = child.findtext("ChildIdentifiers/LAchildID")
        for cin in child.iter("CINdetails"):
            referrals[la, cid].add(_day(cin.findtext("CINreferralDate")))
            for plan in cin.iter("ChildProtectionPlans"):
                start = _day(plan.findtext("CPPstartDate"))
                plans[la, cid, start] = int(plan.findtext("NumberOfPreviousCPP") or 0)
    out = defaultdict(lambda: dict(referral_count=0, rereferral_count=0, cpp_start=0, cpp_subsequent=0))
    for (la, _), dates in referrals.items():
        ordered = sorted(dates)
        for previous, current in zip([None, *ordered], ordered):
            if START <= current <= END:
                out[la]["referral_count"] += 1
                out[la]["rereferral_count"] += previous is not None and current - previous <= timedelta(days=365)
    for (la, _, start), previous_plans in plans.items():
        if START <= start <= END:
            out[la]["cpp_start"] += 1
            out[la]["cpp_subsequent"] += previous_plans > 0
    return dict(out)


def _ees(rows: list[dict], measures: list[str]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EES_KEYS + measures, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _round10(n: int) -> int:
    return int(10 * round(n / 10))


def write_publication(landing, truth: dict[str, dict]) -> None:
    c1, d3 = [], []
    for la, t in sorted(truth.items()):
        key = dict(time_period=str(YEAR), time_identifier="Reporting year", geographic_level="Local authority",
                   country_code="E92000001", country_name="England", region_code="", region_name="",
                   old_la_code=la, new_la_code="", la_name=f"Council {la}")
        c1.append({**key, "referral_count": _round10(t["referral_count"]),
                   "rereferral_count": _round10(t["rereferral_count"]),
                   "rereferral_percent": f"{100 * t['rereferral_count'] / t['referral_count']:.1f}"})
        d3.append({**key, "cpp_start": _round10(t["cpp_start"]), "cpp_subsequent": _round10(t["cpp_subsequent"]),
                   "cpp_subsequent_percent": f"{100 * t['cpp_subsequent'] / t['cpp_start']:.1f}"})
    put(landing, "published/c1_children_in_need_referrals_synthetic.csv",
        _ees(c1, ["referral_count", "rereferral_count", "rereferral_percent"]))
    put(landing, "published/d3_cpps_subsequent_plan_synthetic.csv",
        _ees(d3, ["cpp_start", "cpp_subsequent", "cpp_subsequent_percent"]))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    base = tmp_path_factory.mktemp("agreement")
    landing = base / "landing"
    summary = synthetic.generate_landing(landing, n_las=3, years=(YEAR - 1, YEAR), scale=0.3, seed=23,
                                         error_rate=0, linked_returns=False)
    for path in landing.glob("*/ssda903"):   # only the CIN census is compared here
        for f in sorted(path.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        path.rmdir()
    truth = published_c1_and_d3(landing)
    assert set(truth) == set(summary["las"])
    write_publication(landing, truth)
    rows = ingest(landing, base / "repository")
    assert {r["status"] for r in rows} == {"loaded"}, [(r["relpath"], r["reason"]) for r in rows]
    con = duckdb.connect(str(base / "repository" / "csreturns.duckdb"), read_only=True)
    found = con.execute("""
        SELECT indicator, la_code, source, value, numerator, denominator FROM indicators
        WHERE "window" = 'dfe_year' AND period_end = ? AND indicator IN ('rereferral_12m', 'repeat_cp_plan')""",
                        [END]).fetchall()
    con.close()
    return truth, {(i, la, src): (v, n, d) for i, la, src, v, n, d in found}


@pytest.mark.parametrize("indicator", ["rereferral_12m", "repeat_cp_plan"])
def test_child_level_and_published_values_agree_within_dfe_rounding(both, indicator):
    truth, got = both
    for la in truth:
        child_level, published = got[(indicator, la, "child_level")], got[(indicator, la, "published")]
        assert child_level[0] == pytest.approx(published[0], abs=0.05), (la, child_level, published)
        assert child_level[1] == pytest.approx(published[1], abs=5)
        assert child_level[2] == pytest.approx(published[2], abs=5)


def test_the_councils_compared_are_not_trivial(both):
    """Agreement means something only with real numbers of referrals and plans behind it."""
    truth, _ = both
    assert all(t["referral_count"] >= 100 and t["cpp_start"] >= 10 for t in truth.values()), truth
    assert any(t["rereferral_count"] > 0 and t["cpp_subsequent"] > 0 for t in truth.values())
