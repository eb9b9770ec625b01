"""Indicators: each definition checked on small hand-written returns, with the expected value worked out
by hand here; then against the synthetic returns (recomputed in pandas from the raw files) and against
DfE's published figures.

Child histories are written once, as a case-management system holds them, and cut into yearly returns
the way councils send them: a return for year Y holds what was open at any time from 1 April Y-1 to
31 March Y, with dates after 31 March Y not yet known. So an episode open at 31 March is sent twice.
"""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date

import duckdb
import pandas as pd
import pytest
from conftest import EES, SHARED, put

from transforms import schema, workdays
from transforms.catalogue.build import publish
from transforms.run import ingest
from transforms.store.repository import Repository
from transforms.synthetic import common
from transforms.synthetic import generator as synthetic


def d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def year_span(year: int) -> tuple[date, date]:
    return date(year - 1, 4, 1), date(year, 3, 31)


def known(value: str | None, year: int) -> str:
    """A date as the return for `year` holds it: blank if it has not happened by 31 March."""
    return value if value and d(value) <= year_span(year)[1] else ""


def overlaps(start: str, end: str | None, year: int) -> bool:
    ys, ye = year_span(year)
    return d(start) <= ye and (end is None or d(end) >= ys)


def uk(value: str) -> str:
    return f"{value[8:10]}/{value[5:7]}/{value[:4]}" if value else ""


# ---------------------------------------------------------------- CIN census returns ---------------

def cin_return(la: str, year: int, children: dict) -> str:
    """A CIN census message: each child's CIN episodes open at some time in the year.

    children: {child_id: [episode, ...]}, an episode a dict with referral, closure and optional
    assessments [(start, authorised)], s47 [(start, icpc)], cp_plans [(start, end, previous_plans)]."""
    out = []
    for child, episodes in children.items():
        blocks = []
        for ep in episodes:
            if not overlaps(ep["referral"], ep.get("closure"), year):
                continue
            closure = known(ep.get("closure"), year)
            parts = [f"<CINreferralDate>{ep['referral']}</CINreferralDate><ReferralSource>1A</ReferralSource>"
                     f"<PrimaryNeedCode>N1</PrimaryNeedCode><CINclosureDate>{closure}</CINclosureDate>"
                     f"<ReasonForClosure>{'RC8' if closure else ''}</ReasonForClosure><ReferralNFA>false</ReferralNFA>"]
            for start, authorised in ep.get("assessments", []):
                if d(start) <= year_span(year)[1]:
                    parts.append(f"<Assessments><AssessmentActualStartDate>{start}</AssessmentActualStartDate>"
                                 f"<AssessmentAuthorisationDate>{known(authorised, year)}</AssessmentAuthorisationDate>"
                                 "</Assessments>")
            for start, icpc in ep.get("s47", []):
                if d(start) <= year_span(year)[1]:
                    parts.append(f"<Section47><S47ActualStartDate>{start}</S47ActualStartDate>"
                                 f"<DateOfInitialCPC>{known(icpc, year)}</DateOfInitialCPC>"
                                 "<ICPCnotRequired>false</ICPCnotRequired></Section47>")
            for start, end, previous in ep.get("cp_plans", []):
                if overlaps(start, end, year):
                    parts.append(f"<ChildProtectionPlans><CPPstartDate>{start}</CPPstartDate>"
                                 f"<CPPendDate>{known(end, year)}</CPPendDate>"
                                 "<InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse>"
                                 "<LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse>"
                                 f"<NumberOfPreviousCPP>{previous}</NumberOfPreviousCPP></ChildProtectionPlans>")
            blocks.append("<CINdetails>" + "".join(parts) + "</CINdetails>")
        if blocks:
            sex = "<Sex>F</Sex>" if year >= 2025 else "<GenderCurrent>2</GenderCurrent>"
            out.append(f"<Child><ChildIdentifiers><LAchildID>{child}</LAchildID>"
                       f"<PersonBirthDate>2015-06-01</PersonBirthDate>{sex}</ChildIdentifiers>"
                       "<ChildCharacteristics><Ethnicity>WBRI</Ethnicity></ChildCharacteristics>"
                       + "".join(blocks) + "</Child>")
    return ("<?xml version='1.0' encoding='utf-8'?>\n<Message><Header><CollectionDetails><Collection>CIN</Collection>"
            f"<Year>{year}</Year><ReferenceDate>{year}-03-31</ReferenceDate></CollectionDetails>"
            f"<Source><SourceLevel>L</SourceLevel><LEA>{la}</LEA></Source></Header><Children>"
            + "".join(out) + "</Children></Message>\n")


def referral(on: str, closed: str | None, **more) -> dict:
    return dict(referral=on, closure=closed, **more)


# ---------------------------------------------------------------- SSDA903 returns ------------------

def episode(decom: str, rne: str, place: str, dec: str | None = None, rec: str = "X1", ls: str = "C2",
            urn: str = "SC100001", postcode: str = "AB1") -> dict:
    return dict(decom=decom, rne=rne, place=place, dec=dec, rec=rec, ls=ls, urn=urn, postcode=postcode)


def ssda903_return(year: int, children: dict) -> str:
    """An SSDA903 XML return: episodes, missing incidents and social worker episodes in the year.

    children: {child_id: dict(dob=, episodes=[episode(...)], missing=[(kind, start)], social_workers=[(id, start, end)])}"""
    ys, ye = year_span(year)
    out = []
    for child, c in children.items():
        eps = [e for e in c["episodes"] if overlaps(e["decom"], e["dec"], year)]
        if not eps:
            continue
        sex = "F" if year >= 2025 else "2"
        header = [f"<CHILDID>{child}</CHILDID><SEX>{sex}</SEX><DOB>{uk(c['dob'])}</DOB><ETHNIC>WBRI</ETHNIC><UPN />"]
        for kind, start in c.get("missing", []):
            if ys <= d(start) <= ye:
                header.append(f"<AMISSING><MISSING>{kind}</MISSING><MIS_START>{uk(start)}</MIS_START>"
                              f"<MIS_END>{uk(start)}</MIS_END></AMISSING>")
        if year >= 2024:  # social worker episodes are collected from 2023/24
            for worker, start, end in c.get("social_workers", []):
                if overlaps(start, end, year):
                    header.append(f"<SW_EPISODE><SW_ID>{worker}</SW_ID><SW_DECOM>{uk(start)}</SW_DECOM>"
                                  f"<SW_DEC>{uk(known(end, year))}</SW_DEC><SW_REASON>MANAGE</SW_REASON></SW_EPISODE>")
        episodes = []
        for e in eps:
            dec = known(e["dec"], year)
            episodes.append(
                f"<EPISODE><DECOM>{uk(e['decom'])}</DECOM><RNE>{e['rne']}</RNE><LS>{e['ls']}</LS><CIN>N1</CIN>"
                f"<PL>{e['place']}</PL><PL_POST>{e['postcode']}</PL_POST><HOME_POST>ZZ9</HOME_POST>"
                f"<URN>{e['urn']}</URN><PLACE_PROVIDER>PR1</PLACE_PROVIDER><DEC>{uk(dec)}</DEC>"
                f"<REC>{e['rec'] if dec else ''}</REC><REASON_PLACE_CHANGE /></EPISODE>")
        out.append("<CHILD><HEADER>" + "".join(header) + "</HEADER>" + "".join(episodes) + "</CHILD>")
    return "<?xml version='1.0' encoding='utf-8'?>\n<EXPSSDA903>" + "".join(out) + "</EXPSSDA903>\n"


# ---------------------------------------------------------------- the hand-written councils --------

# 301: re-referrals over two returns (dfe_year 2025 is 1 April 2024 - 31 March 2025)
REREFERRALS = {
    "A": [referral("2024-06-01", "2024-07-01"), referral("2024-12-18", "2025-01-20")],  # 200 days apart
    "B": [referral("2023-05-01", "2023-09-01"), referral("2024-07-15", "2024-08-01")],  # 441 days: not
    "C": [referral("2024-01-10", "2024-02-20"), referral("2024-11-20", "2024-12-01")],  # 315 days, first only in 2024's return
    "D": [referral("2023-06-01", "2023-07-01"), referral("2024-05-31", "2024-06-10")],  # 365 days (2024 is leap)
    "E": [referral("2023-06-01", "2023-07-01"), referral("2024-06-01", "2024-06-10")],  # 366 days: not
    "F": [referral("2024-03-01", "2024-05-10"), referral("2024-09-01", "2024-09-20")],  # first sent in both returns
}
# 302: three returns, for windows ending mid-year
ROLLING = {
    "J": [referral("2023-09-15", "2023-09-25"), referral("2023-10-01", "2023-10-20")],  # 16 days apart
    "K": [referral("2024-09-30", "2024-09-30"), referral("2024-10-01", "2024-10-15")],  # 1 day apart
    "L": [referral("2022-11-01", "2022-11-20"), referral("2023-11-30", "2023-12-10")],  # 394 days: not
    "M": [referral("2023-05-01", "2023-05-20")],
}
# 305: timeliness in working days, and a CP plan sent in two returns
TIMELINESS = {
    # started Monday 27 March 2023; the 45th working day after is Monday 5 June, skipping Good Friday
    # (7 April), Easter Monday (10 April), the early May bank holiday (1 May), the coronation (8 May)
    # and the spring bank holiday (29 May): 4 working days in March, 18 in April, 20 in May, 3 in June
    "G": [referral("2023-03-20", "2023-06-20", assessments=[("2023-03-27", "2023-06-05")])],
    "H": [referral("2023-03-20", "2023-06-20", assessments=[("2023-03-27", "2023-06-06")])],   # 46th
    "I": [referral("2024-03-10", "2024-05-01", assessments=[("2024-03-12", "2024-04-22")])],   # open at 31 March 2024
    # S47 started Monday 11 December 2023: 9 working days to 22 December, 27-29 December (3) after
    # Christmas and Boxing Day, 2-4 January (3) after New Year's Day: the 15th is Thursday 4 January
    "J": [referral("2023-12-08", "2024-02-01", s47=[("2023-12-11", "2024-01-04")])],
    "K": [referral("2023-12-08", "2024-02-01", s47=[("2023-12-11", "2024-01-05")])],          # 16th
    "L": [referral("2023-12-01", "2024-07-05", cp_plans=[("2024-02-01", "2024-06-30", 1)])],  # in both returns
    "M": [referral("2024-05-01", None, cp_plans=[("2024-05-10", None, 0)])],
}

# 303: children looked after, two returns (2024, 2025)
LOOKED_AFTER = {
    "P": dict(dob="2012-05-01",  # three placements in 2024-25, three social workers (one came back), went missing
              episodes=[episode("2024-01-10", "S", "U4", "2024-06-01", urn="SC1"),
                        episode("2024-06-01", "P", "U5", "2024-11-01", urn="SC2"),
                        episode("2024-11-01", "B", "K2", urn="SC3")],
              missing=[("M", "2024-07-01")],
              social_workers=[("SW1", "2024-01-10", "2024-05-01"), ("SW2", "2024-05-01", "2024-09-01"),
                              ("SW1", "2024-09-01", "2024-12-01"), ("SW3", "2024-12-01", None)]),
    "Q": dict(dob="2010-03-01",  # a change of legal status only is not a new placement; 'away' is not missing
              episodes=[episode("2023-05-01", "S", "U4", "2024-05-01", urn="SC4"),
                        episode("2024-05-01", "L", "U4", "2024-08-01", ls="C1", urn="SC4"),
                        episode("2024-08-01", "P", "U6", ls="C1", urn="SC5")],
              missing=[("A", "2024-10-01")], social_workers=[("SW4", "2023-05-01", None)]),
    "R": dict(dob="2014-02-01",  # a series of short breaks (V3): not counted as looked after
              episodes=[episode("2024-02-01", "S", "U4", ls="V3", urn="SC6")], missing=[("M", "2024-06-01")]),
    "S": dict(dob="2009-07-01",  # three placements but left care before 31 March 2025
              episodes=[episode("2024-04-15", "S", "U4", "2024-07-01", urn="SC7"),
                        episode("2024-07-01", "P", "K2", "2024-10-01", urn="SC8"),
                        episode("2024-10-01", "P", "U4", "2025-02-01", rec="E13", urn="SC9")],
              missing=[("M", "2024-12-01")]),
    "T": dict(dob="2011-09-01",  # a fortnight's holiday placement (T1) and back: one placement
              episodes=[episode("2024-05-01", "S", "U4", "2024-08-01", urn="SC10", postcode="CD1"),
                        episode("2024-08-01", "P", "T1", "2024-08-15", urn="", postcode="EF2"),
                        episode("2024-08-15", "P", "U4", urn="SC10", postcode="CD1")],
              social_workers=[("SW5", "2024-05-01", "2024-06-01"), ("SW6", "2024-06-01", "2025-01-01"),
                              ("SW7", "2025-01-01", None)]),
    "D": dict(dob="2013-01-01",  # open at 31 March 2024 in the 2024 return; the 2025 return says it ended
              episodes=[episode("2023-10-01", "S", "U4", "2024-05-15", rec="E4A", urn="SC11")]),
}
# 304: long-term stability, three returns (2023-2025); 31 March 2025 minus 2.5 years is 30 September 2022
LONG_TERM = {
    "U": dict(dob="2012-05-01", episodes=[episode("2021-06-01", "S", "U4", urn="SC20")]),
    "V": dict(dob="2014-01-01", episodes=[episode("2021-06-01", "S", "U4", "2023-09-01", urn="SC21"),
                                         episode("2023-09-01", "P", "U6", urn="SC22")]),       # moved 19 months ago
    "W": dict(dob="2015-03-01", episodes=[episode("2022-01-01", "S", "U4", "2022-06-01", urn="SC23"),
                                         episode("2022-06-01", "L", "U4", ls="C1", urn="SC23")]),  # same carer
    "X": dict(dob="2008-02-01", episodes=[episode("2020-01-01", "S", "U4", urn="SC24")]),        # 17: over 16
    "Y": dict(dob="2016-04-01", episodes=[episode("2023-01-01", "S", "U4", urn="SC25")]),        # 2 years 3 months
    "Z": dict(dob="2019-08-01", episodes=[episode("2021-06-01", "S", "U4", "2024-10-01", urn="SC26"),
                                         episode("2024-10-01", "P", "A5", urn="SC27")]),       # placed for adoption
    # in care since 2019, but the returns held start in April 2022: only the 2021 placement is visible
    "AA": dict(dob="2013-06-01", episodes=[episode("2019-01-01", "S", "U4", "2021-12-01", urn="SC28"),
                                          episode("2021-12-01", "P", "U6", urn="SC29")]),
}


SYNTHETIC_YEARS = (2024, 2025)
SCALE = 0.2
PUBLISHED_FILES = ("c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv",
                   "d3_cpps_subsequent_plan_2013_to_2025.csv", "d5_cpps_at31march_by_duration_2013_to_2025.csv",
                   "la_cla_placement_stability.csv", "cla_number_and_rate_per_10k_children.csv",
                   "csww_indicators_2017_to_2025.csv", "b1_children_in_need_2013_to_2025.csv",
                   "csww_headline_measures_2017_to_2022.csv", "la_cla_swcount.csv",
                   "la_cla_during_year_new_placements.csv", "la_cla_school_moves.csv",
                   "la_conviction_health_outcome_cla.csv", "absence_la.csv", "ks2_la.csv")
# Hartlepool, Birmingham, Kent: their published rows; Kingston, whose 2017-2022 workforce figures only the
# older CSWW layout gives under its own code (the later file has the joint return '314 / 318')
SOME_LAS = {"805", "330", "886", "314"}


def read_ees(name: str) -> list[dict]:
    with open(EES / name, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One landing ingested once (files of a collection and year are validated together, so this is
    much quicker than a repository per test): the hand-written councils, three synthetic councils' CIN
    census returns, and a few councils' rows of the published files."""
    base = tmp_path_factory.mktemp("indicators")
    landing, repo_root = base / "landing", base / "repository"
    for year in (2024, 2025):
        put(landing, f"301/cin/CIN_Census_{year}.xml", cin_return("301", year, REREFERRALS))
        put(landing, f"305/cin/CIN_Census_{year}.xml", cin_return("305", year, TIMELINESS))
        put(landing, f"303/ssda903/year={year}/ssda903_{year}.xml", ssda903_return(year, LOOKED_AFTER))
    for year in (2023, 2024, 2025):
        put(landing, f"302/cin/CIN_Census_{year}.xml", cin_return("302", year, ROLLING))
        put(landing, f"304/ssda903/year={year}/ssda903_{year}.xml", ssda903_return(year, LONG_TERM))
    generated = base / "synthetic"
    summary = synthetic.generate_landing(generated, n_las=3, years=SYNTHETIC_YEARS, scale=SCALE, seed=11, error_rate=0,
                                           linked_returns=False)
    assert not set(summary["las"]) & {"301", "302", "303", "304", "305"}
    for path in generated.glob("*/cin_census/*.xml"):
        put(landing, path.relative_to(generated).as_posix(), path)
    if EES.exists():
        for name in PUBLISHED_FILES:
            rows = read_ees(name)
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(r for r in rows if r["old_la_code"] in SOME_LAS or r["geographic_level"] == "National")
            put(landing, f"published/{name}", text.getvalue())
    rows = ingest(landing, repo_root)
    assert {r["status"] for r in rows} == {"loaded"}, [(r["relpath"], r["status"], r["reason"]) for r in rows]
    con = duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True)
    yield dict(query=lambda sql, *args: con.execute(sql, list(args)).fetchall(), synthetic=generated,
               las=summary["las"])
    con.close()


@pytest.fixture(scope="module")
def hand(repo):
    return repo["query"]


def value(hand, la, indicator, period_end, window="dfe_year"):
    rows = hand("""SELECT numerator, denominator, value FROM indicators WHERE source = 'child_level'
                   AND la_code = ? AND indicator = ? AND period_end = ? AND "window" = ?""",
                la, indicator, d(period_end), window)
    assert len(rows) <= 1
    return rows[0] if rows else None


# ---------------------------------------------------------------- working days ---------------------

def test_bank_holidays_are_the_english_ones_including_moves_and_one_off_days():
    as_text = lambda y: [str(x) for x in workdays.holidays_in(y)]
    assert as_text(2020) == ["2020-01-01", "2020-04-10", "2020-04-13", "2020-05-08", "2020-05-25",
                             "2020-08-31", "2020-12-25", "2020-12-28"]      # VE day moved; Boxing Day on a Saturday
    assert as_text(2022) == ["2022-01-03", "2022-04-15", "2022-04-18", "2022-05-02", "2022-06-02",
                             "2022-06-03", "2022-08-29", "2022-09-19", "2022-12-26", "2022-12-27"]
    assert as_text(2023) == ["2023-01-02", "2023-04-07", "2023-04-10", "2023-05-01", "2023-05-08",
                             "2023-05-29", "2023-08-28", "2023-12-25", "2023-12-26"]
    assert as_text(2012)[3:6] == ["2012-05-07", "2012-06-04", "2012-06-05"]  # Diamond Jubilee
    assert "2011-04-29" in as_text(2011)
    assert as_text(2021)[-2:] == ["2021-12-27", "2021-12-28"]                # Christmas on a Saturday
    assert as_text(2026) == ["2026-01-01", "2026-04-03", "2026-04-06", "2026-05-04", "2026-05-25",
                             "2026-08-31", "2026-12-25", "2026-12-28"]


def test_working_days_count_from_the_day_after_the_start():
    assert workdays.working_days_between("2024-06-07", "2024-06-07") == 0
    assert workdays.working_days_between("2024-06-07", "2024-06-10") == 1   # Friday to Monday
    assert workdays.working_days_between("2024-06-08", "2024-06-10") == 1   # a Saturday start
    assert workdays.working_days_between("2023-03-27", "2023-06-05") == 45  # see TIMELINESS
    got = workdays.working_days_between(pd.Series(["2023-12-11", "2023-12-11", None]),
                                        ["2024-01-04", "2024-01-05", "2024-01-05"])
    assert got[:2].tolist() == [15, 16] and pd.isna(got[2])


def test_the_synthetic_returns_use_the_same_bank_holidays():
    assert common._bank_holidays().tolist() == workdays.bank_holidays(1990, 2060).tolist()


# ---------------------------------------------------------------- CIN indicators ------------------

def test_a_referral_within_365_days_of_the_previous_one_is_a_rereferral(hand):
    # referrals in 2024-25: A 1 Jun, A 18 Dec, B 15 Jul, C 20 Nov, D 31 May, E 1 Jun, F 1 Sep = 7;
    # re-referrals: A (200 days), C (315), D (365), F (184) = 4; B (441) and E (366) are not
    assert value(hand, "301", "rereferral_12m", "2025-03-31") == (4, 7, pytest.approx(100 * 4 / 7))


def test_rereferrals_need_the_year_before_the_window(hand):
    # 2023-24's referrals could follow referrals from 2022-23, a year no return here covers
    assert value(hand, "301", "rereferral_12m", "2024-03-31") is None
    assert value(hand, "302", "rereferral_12m", "2023-03-31") is None
    assert value(hand, "302", "rereferral_12m", "2023-12-31", "rolling_12m") is None


def test_a_rolling_window_ending_mid_year_counts_only_its_own_twelve_months(hand):
    # 1 Oct 2023 - 30 Sep 2024: J 1 Oct (16 days after J 15 Sep), L 30 Nov (394 days: not), K 30 Sep
    assert value(hand, "302", "rereferral_12m", "2024-09-30", "rolling_12m") == (1, 3, pytest.approx(100 / 3))
    # the DfE years either side: M, J, J, L in 2023-24 (one re-referral), K, K in 2024-25 (one)
    assert value(hand, "302", "rereferral_12m", "2024-03-31") == (1, 4, 25.0)
    assert value(hand, "302", "rereferral_12m", "2025-03-31") == (1, 2, 50.0)
    # and the rolling window ending 31 March is the DfE year
    assert value(hand, "302", "rereferral_12m", "2025-03-31", "rolling_12m") == (1, 2, 50.0)


def test_an_assessment_authorised_on_the_45th_working_day_is_in_time_but_not_on_the_46th(hand):
    # G and H authorised in 2023-24; I was still open on 31 March 2024, so it counts in 2024-25
    assert value(hand, "305", "assessment_45wd", "2024-03-31") == (1, 2, 50.0)
    # I: 12 March to 22 April 2024 is 27 working days (Good Friday 29 March, Easter Monday 1 April)
    assert value(hand, "305", "assessment_45wd", "2025-03-31") == (1, 1, 100.0)


def test_an_icpc_on_the_15th_working_day_after_the_s47_start_is_in_time_across_christmas(hand):
    assert value(hand, "305", "icpc_15wd", "2024-03-31") == (1, 2, 50.0)


def test_a_plan_sent_in_two_overlapping_returns_counts_once(hand):
    # 1 Sep 2023 - 31 Aug 2024: L's plan (a second plan, started 1 Feb 2024, in both returns) and M's
    assert value(hand, "305", "repeat_cp_plan", "2024-08-31", "rolling_12m") == (1, 2, 50.0)
    # L's plan ended on 30 June 2024 after five months; it is no longer open on 31 March 2025
    assert value(hand, "305", "cp_plan_ended_2y", "2025-03-31") == (0, 1, 0.0)
    assert value(hand, "305", "cp_plan_open_2y", "2025-03-31") == (0, 1, 0.0)


# ---------------------------------------------------------------- SSDA903 indicators --------------

def test_short_term_placement_stability_counts_moves_not_status_changes_or_holidays(hand):
    # looked after on 31 March 2025: P, Q, T (R is on short breaks, S and D have left care)
    # placements in 2024-25: P 3 (U4, U5, K2); Q 2 (U4, the legal-status change, U6); T 1 (holiday and back)
    assert value(hand, "303", "placement_stability_short", "2025-03-31") == (1, 3, pytest.approx(100 / 3))


def test_an_episode_ended_in_a_later_return_is_not_still_open(hand):
    # on 30 June 2024: P, Q, S, T; D's episode was open in the 2024 return but ended on 15 May 2024
    assert value(hand, "303", "placement_stability_short", "2024-06-30", "rolling_12m") == (0, 4, 0.0)


def test_social_workers_are_counted_once_per_child(hand):
    # P had SW1, SW2, SW1 again, SW3 (3 social workers); Q 1; T 3
    assert value(hand, "303", "social_worker_changes", "2025-03-31") == (2, 3, pytest.approx(200 / 3))


def test_missing_from_care_counts_children_looked_after_in_the_year_who_went_missing(hand):
    # looked after at some time in 2024-25: P, Q, S, T, D (not R); missing: P and S (Q was 'away')
    assert value(hand, "303", "missing_from_care", "2025-03-31") == (2, 5, 40.0)


def test_long_term_stability_for_under_16s_looked_after_two_and_a_half_years(hand):
    # under 16 and looked after since 30 September 2022 or earlier: U, V, W, Z, AA (X is 17, Y since 2023)
    # in the same placement since 31 March 2023 or earlier: U; W (a legal-status change is no move);
    # Z (placed for adoption: the foster placement before counts); AA; not V (moved September 2023)
    assert value(hand, "304", "placement_stability_long", "2025-03-31") == (4, 5, 80.0)
    # 31 March 2024 would need returns back to September 2021
    assert value(hand, "304", "placement_stability_long", "2024-03-31") is None


# ---------------------------------------------------------------- the catalogue -------------------

def test_every_indicator_is_documented_with_its_polarity_and_lait_measure(hand):
    rows = hand("SELECT indicator, unit, polarity, lait_measure, published_dataset FROM indicator_catalogue")
    ids = {r[0] for r in rows}
    assert {"rereferral_12m", "assessment_45wd", "icpc_15wd", "repeat_cp_plan", "cp_plan_ended_2y",
            "placement_stability_short", "placement_stability_long", "missing_from_care",
            "social_worker_changes", "turnover_rate_fte", "agency_rate_fte", "vacancy_rate_fte",
            "caseload_fte"} <= ids
    assert all(r[1] in {"percent", "rate_per_10k", "ratio"} and
               r[2] in {"higher_is_worse", "lower_is_worse", "context"} for r in rows)
    lait = SHARED / "reference" / "lait" / "lait_data_dictionary.csv"
    if lait.exists():
        measures = {row["Measure"] for row in csv.DictReader(open(lait, encoding="utf-8-sig"))}
        assert {r[3] for r in rows if r[3]} <= measures
    assert {r[4] for r in rows if r[4]} <= set(schema.collection("published").spec["datasets"])
    assert hand("SELECT count(*) FROM relations WHERE relation IN ('indicators', 'indicator_catalogue')") == [(2,)]


def test_an_empty_repository_has_an_empty_typed_indicators_table(tmp_path):
    path = publish(Repository(tmp_path / "empty"))
    with duckdb.connect(str(path), read_only=True) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'indicators'").fetchall())
        assert types == {"la_code": "VARCHAR", "indicator": "VARCHAR", "period_end": "DATE", "window": "VARCHAR",
                         "numerator": "DOUBLE", "denominator": "DOUBLE", "value": "DOUBLE", "source": "VARCHAR",
                         "published_on": "DATE"}
        assert con.execute("SELECT count(*) FROM indicators").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM indicator_catalogue").fetchone()[0] >= 13


# ---------------------------------------------------------------- synthetic returns ---------------

def test_synthetic_rereferral_rates_match_a_recount_from_the_raw_files(repo):
    referrals = []
    for path in repo["synthetic"].glob("*/cin_census/*.xml"):
        root = ET.parse(path).getroot()
        la = root.findtext("Header/Source/LEA")
        for child in root.iter("Child"):
            cid = child.findtext("ChildIdentifiers/LAchildID")
            referrals += [(la, cid, r.text) for r in child.iter("CINreferralDate")]
    df = pd.DataFrame(referrals, columns=["la", "child", "date"]).drop_duplicates()  # returns overlap
    df["date"] = pd.to_datetime(df["date"])
    df = df.sort_values(["la", "child", "date"])
    df["gap"] = df.groupby(["la", "child"])["date"].diff().dt.days
    in_year = df[(df["date"] >= "2024-04-01") & (df["date"] <= "2025-03-31")]
    expected = (in_year.assign(re=in_year["gap"] <= 365).groupby("la")["re"].mean() * 100).to_dict()
    got = dict(repo["query"]("""SELECT la_code, value FROM indicators WHERE indicator = 'rereferral_12m'
                                AND source = 'child_level' AND "window" = 'dfe_year' AND period_end = DATE '2025-03-31'
                                AND la_code IN (SELECT unnest(?))""", repo["las"]))
    assert set(got) == set(repo["las"]) == set(expected)
    assert got == pytest.approx(expected)


# ---------------------------------------------------------------- published figures ---------------

# indicator -> (file, measure column, breakdown filter), read straight from DfE's files
PUBLISHED = {
    "rereferral_12m": (PUBLISHED_FILES[0], "rereferral_percent", {}),
    "repeat_cp_plan": (PUBLISHED_FILES[1], "CPP_subsequent_percent", {}),
    "cp_plan_open_2y": (PUBLISHED_FILES[2], "2_years_or_more_percent", {}),
    "placement_stability_short": (PUBLISHED_FILES[3], "children_percent",
                                  {"cla_group": "CLA on 31 March",
                                   "placement_stability": "With 3 or more placements during the year"}),
    "placement_stability_long": (PUBLISHED_FILES[3], "children_percent",
                                 {"cla_group": "Children looked after continuously for at least 2.5 years on 31 March aged under 16 years",
                                  "placement_stability": "Living with the same carer for at least 2 years"}),
    "cla_rate_per_10k": (PUBLISHED_FILES[4], "rate_per_10000",
                         {"population_type": "Children looked after on 31 March each year"}),
    "turnover_rate_fte": (PUBLISHED_FILES[5], "turnover_rate_fte", {}),
    "agency_rate_fte": (PUBLISHED_FILES[5], "agency_rate_fte", {}),
    "vacancy_rate_fte": (PUBLISHED_FILES[5], "vacancy_rate_fte", {}),
    "caseload_fte": (PUBLISHED_FILES[5], "caseload_fte", {}),
}


def test_published_indicators_equal_the_published_files(repo):
    if not EES.exists():
        pytest.skip(f"{EES} is not here (tests read the published statistics from ../shared)")
    got = {(i, la, str(p)): (v, n, dn) for i, la, p, v, n, dn in repo["query"](
        """SELECT indicator, la_code, period_end, value, numerator, denominator FROM indicators
           WHERE source = 'published' AND "window" = 'dfe_year'""")}
    checked = set()
    for indicator, (name, measure, breakdown) in PUBLISHED.items():
        for row in read_ees(name):
            if row["geographic_level"] != "Local authority" or row["old_la_code"] not in SOME_LAS:
                continue
            if any(row[k] != v for k, v in breakdown.items()):
                continue
            try:
                expected = float(row[measure])
            except ValueError:
                continue  # suppressed (c, x, z ...): nothing published to compare
            period_end = f"{row['time_period']}-09-30" if name.startswith("csww") else f"{row['time_period']}-03-31"
            assert got[(indicator, row["old_la_code"], period_end)][0] == pytest.approx(expected), (indicator, row)
            checked.add(indicator)
    assert checked == set(PUBLISHED)
    # the numerator and denominator come with the value: agency FTE over agency plus employed FTE
    kent = next(r for r in read_ees(PUBLISHED_FILES[5]) if r["old_la_code"] == "886" and r["time_period"] == "2024")
    assert got[("agency_rate_fte", "886", "2024-09-30")][1:] == pytest.approx(
        (float(kent["agency_fte"]), float(kent["agency_fte"]) + float(kent["inpost_fte"])))
    # repeat plans: CPP_subsequent of CPP_start
    d3 = next(r for r in read_ees(PUBLISHED_FILES[1]) if r["old_la_code"] == "805" and r["time_period"] == "2025")
    assert got[("repeat_cp_plan", "805", "2025-03-31")][1:] == (float(d3["CPP_subsequent"]), float(d3["CPP_start"]))


# published-only indicators: indicator -> (file, measure column, breakdown filter, period end after the year)
PUBLISHED_ONLY = {
    "social_worker_changes": (PUBLISHED_FILES[8], "percentage",
                              {"cla_group": "CLA on 31 March", "sw_stability": "3 or more social workers during the year"},
                              "-03-31"),
    "placements_distant": (PUBLISHED_FILES[9], "children_percent",
                           {"characteristic": "Location of new placements during the year",
                            "breakdown": "Placed outside LA boundary more than 20 miles from home"}, "-03-31"),
    "school_moves_midyear": (PUBLISHED_FILES[10], "percentage",
                             {"cla_group": "CLA on 31 March", "move_measure": "Mid-year moves",
                              "school_stability": "With one or more mid-year moves during the year"}, "-03-31"),
    "health_assessment": (PUBLISHED_FILES[11], "children_percent",
                          {"characteristic": "Health assessments: Children looked after all ages",
                           "breakdown": "Had their annual health assessment"}, "-03-31"),
    "convictions_cla": (PUBLISHED_FILES[11], "children_percent",
                        {"characteristic": "Convictions: Children looked after Ages 10 to 17 years",
                         "breakdown": "Convicted or subject to youth cautions, or youth conditional cautions during the year"},
                        "-03-31"),
    "absence_cin": (PUBLISHED_FILES[12], "pt_overall",
                    {"social_care_group": "CINO at 31 March", "phase_type_grouping": "Total"}, "-07-31"),
    "ks2_rwm_cin": (PUBLISHED_FILES[13], "pt_rwm_met_expected_standard", {"social_care_group": "CINO at 31 March"},
                    "-08-31"),
    "absence_cla": (PUBLISHED_FILES[12], "pt_overall",
                    {"social_care_group": "CLA 12 months at 31 March", "phase_type_grouping": "Total"}, "-07-31"),
    "ks2_rwm_cla": (PUBLISHED_FILES[13], "pt_rwm_met_expected_standard",
                    {"social_care_group": "CLA 12 months at 31 March"}, "-08-31"),
}


def test_published_only_indicators_equal_the_published_files(repo):
    if not EES.exists():
        pytest.skip(f"{EES} is not here (tests read the published statistics from ../shared)")
    got = {(i, la, str(p)): v for i, la, p, v in repo["query"](
        """SELECT indicator, la_code, period_end, value FROM indicators WHERE source = 'published'""")}
    checked = set()
    for indicator, (name, measure, breakdown, end) in PUBLISHED_ONLY.items():
        for row in read_ees(name):
            if row["geographic_level"] != "Local authority" or row["old_la_code"] not in SOME_LAS \
                    or any(row[k] != v for k, v in breakdown.items()):
                continue
            period = row["time_period"]                               # 2024, or an academic year 201819
            key = (indicator, row["old_la_code"], f"{period[:2] + period[-2:] if len(period) == 6 else period}{end}")
            try:
                expected = float(row[measure])
            except ValueError:
                assert key not in got                                 # suppressed: missing, not zero
                continue
            assert got[key] == pytest.approx(expected), key
            checked.add(indicator)
    assert checked == set(PUBLISHED_ONLY)


def test_a_figure_published_as_counts_only_is_computed_from_them(hand):
    """B1 gives children awaiting assessment as a count: the share of children in need at 31 March."""
    if not EES.exists():
        pytest.skip(f"{EES} is not here (tests read the published statistics from ../shared)")
    b1 = next(r for r in read_ees(PUBLISHED_FILES[6]) if r["old_la_code"] == "886" and r["time_period"] == "2025")
    n, d_ = float(b1["awaiting_assessment"]), float(b1["At31_episodes"])
    assert hand("""SELECT numerator, denominator, value FROM indicators WHERE indicator = 'awaiting_assessment'
                   AND la_code = '886' AND period_end = DATE '2025-03-31'""") == [(n, d_, pytest.approx(100 * n / d_))]


def test_an_older_layout_fills_only_where_the_later_file_has_no_figure(hand):
    """CSWW 2017-2022 (columns ending `_%`) beside CSWW 2017-2025: the later, revised figure wins."""
    if not EES.exists():
        pytest.skip(f"{EES} is not here (tests read the published statistics from ../shared)")
    def one(la, indicator, period_end):
        return hand("SELECT value FROM indicators WHERE source = 'published' AND la_code = ? AND indicator = ? "
                    "AND period_end = ?", la, indicator, d(period_end))
    later = next(r for r in read_ees(PUBLISHED_FILES[5]) if r["old_la_code"] == "886" and r["time_period"] == "2017")
    older = next(r for r in read_ees(PUBLISHED_FILES[7]) if r["old_la_code"] == "886" and r["time_period"] == "2017")
    assert later["caseload_fte"] != older["caseload_fte"]           # revised between the two releases
    assert one("886", "caseload_fte", "2017-09-30") == [(pytest.approx(float(later["caseload_fte"])),)]
    kingston = next(r for r in read_ees(PUBLISHED_FILES[7]) if r["old_la_code"] == "314" and r["time_period"] == "2019")
    assert one("314", "turnover_rate_fte", "2019-09-30") == [(pytest.approx(float(kingston["turnover_rate_fte_%"])),)]


def test_a_month_window_counts_only_the_referrals_of_that_calendar_month(hand):
    """Early warning charts the monthly series: each point independent of the next, unlike rolling windows."""
    # October 2024: K's referral on 1 October, one day after the one on 30 September
    assert value(hand, "302", "rereferral_12m", "2024-10-31", "month") == (1, 1, 100.0)
    # September 2024: K's first referral, with none in the year before it
    assert value(hand, "302", "rereferral_12m", "2024-09-30", "month") == (0, 1, 0.0)
    # November 2023: L's second referral, 394 days after the first
    assert value(hand, "302", "rereferral_12m", "2023-11-30", "month") == (0, 1, 0.0)


def test_published_figures_carry_the_date_they_became_public(hand):
    """So early warning at a month end uses a published figure only once it was out (schemas/ees/*.yaml)."""
    if not EES.exists():
        pytest.skip(f"{EES} is not here (tests read the published statistics from ../shared)")
    found = dict(hand("""SELECT indicator, any_value(published_on) FROM indicators WHERE source = 'published'
                         AND la_code = '886' AND period_end IN (DATE '2024-03-31', DATE '2024-09-30') GROUP BY ALL"""))
    assert found["rereferral_12m"] == date(2024, 11, 30)    # CIN census year to March: out by late autumn
    assert found["agency_rate_fte"] == date(2025, 2, 28)    # workforce census at 30 September: out in February
    assert hand("SELECT count(*) FROM indicators WHERE source = 'child_level' AND published_on IS NOT NULL") == [(0,)]
