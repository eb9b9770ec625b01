"""A region's analyst with published statistics only: every council ranked from what was public at each
month end, through `csreturns ingest` + `refresh` on small extracts of the real files (a few councils of
the real CSWW and C1 releases, cells made hostile where the case needs it) and a hand-made Ofsted list."""
import csv
from datetime import date

import duckdb
import pytest
from conftest import EES, SHARED, need

from transforms.cli import main

pytestmark = pytest.mark.slow   # one ingest + refresh of the extracts (~30 s)

CSWW = "csww_indicators_2017_to_2025.csv"
C1 = "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"
SN = SHARED / "reference" / "statistical_neighbours" / "sn_model_2025_wide.csv"
# twenty councils, both joint workforce returns and every council of the 2021 and 2023 reorganisations
WORKFORCE = {f"{n}" for n in [*range(201, 214), *range(301, 313)]} | {"314 / 318", "940 / 941", "928", "909", "942", "943"}
SUPPRESSED = {"302": "c", "303": "x", "304": "z", "305": "k", "306": "low", "307": "u"}   # their 2024 turnover
ONLY_C1 = "805"                  # Hartlepool: in the referrals file only
NEVER = "806"                    # Middlesbrough: in no file
OFSTED = """Local Authority,LA Code,Inspection Framework,Inspection start date,Publication Date,Overall Effectiveness
Barking and Dagenham,301,ILACS,08/05/2023,16/06/2023,Inadequate
"""


def extract(name, keep, edit=lambda row: row):
    with open(need(EES / name), encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = [edit(dict(r)) for r in rows if r["geographic_level"] == "National"
           or (r["geographic_level"] == "Local authority" and keep(r))]
    return list(rows[0]), out


def write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, header)
        w.writeheader()
        w.writerows(rows)


def suppress(row):
    if row["time_period"] == "2024" and row["old_la_code"] in SUPPRESSED:
        row["turnover_rate_fte"] = row["leavers_fte"] = SUPPRESSED[row["old_la_code"]]
    return row


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("published_only")
    landing, repo = root / "landing", root / "repository"
    write(landing / "published" / CSWW, *extract(CSWW, lambda r: r["old_la_code"] in WORKFORCE, suppress))
    write(landing / "published" / C1, *extract(C1, lambda r: r["old_la_code"] in WORKFORCE | {ONLY_C1}))
    (landing / "reference" / "statistical_neighbours").mkdir(parents=True)
    (landing / "reference" / "statistical_neighbours" / SN.name).write_bytes(need(SN).read_bytes())
    (landing / "reference" / "ofsted_judgements").mkdir(parents=True)
    (landing / "reference" / "ofsted_judgements" / "la_inspection_outcomes_2023.csv").write_text(OFSTED)
    assert main(["ingest", str(landing), "--repo", str(repo)]) == 0
    assert main(["refresh", "--repo", str(repo)]) == 0
    return repo


def sql(repo, query, *params):
    with duckdb.connect(str(repo / "csreturns.duckdb"), read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def test_suppressed_cells_are_missing_with_their_symbol_never_zero(repo):
    held = dict(sql(repo, """SELECT old_la_code, value_symbol FROM published_statistics WHERE dataset = 'csww_indicators'
                             AND measure = 'turnover_rate_fte' AND time_period = '2024' AND value IS NULL"""))
    assert held == SUPPRESSED
    assert sql(repo, """SELECT count(*) FROM indicators WHERE indicator = 'turnover_rate_fte' AND source = 'published'
                        AND year(period_end) = 2024 AND la_code IN ?""", list(SUPPRESSED)) == [(0,)]
    # their other figures still count: each keeps a workforce factor from agency, vacancies and caseload
    assert sql(repo, """SELECT count(DISTINCT la_code) FROM council_risk WHERE as_of = '2025-03-31'
                        AND f_workforce_instability IS NOT NULL AND la_code IN ?""", list(SUPPRESSED)) == [(6,)]


def test_a_council_in_one_dataset_only_is_scored_from_it_with_its_coverage(repo):
    [(coverage, workforce, repeat, rank, n)] = sql(repo, """
        SELECT coverage, f_workforce_instability, f_repeat_work, rank,
               (SELECT count(*) FROM council_risk WHERE as_of = '2025-11-30')
        FROM council_risk WHERE la_code = ? AND as_of = '2025-11-30'""", ONLY_C1)
    assert (coverage, workforce) == (1, None) and repeat is not None and 1 <= rank <= n


def test_a_council_with_no_figure_has_no_row_and_none_before_its_first_figure_is_public(repo):
    assert sql(repo, "SELECT count(*) FROM council_risk WHERE la_code = ?", NEVER) == [(0,)]
    first_c1 = sql(repo, """SELECT min(published_on) FROM published_statistics WHERE dataset = 'c1_referrals'
                            AND old_la_code = ?""", ONLY_C1)[0][0]
    assert sql(repo, "SELECT min(as_of) FROM council_risk WHERE la_code = ?", ONLY_C1)[0][0] >= first_c1


def test_joint_workforce_returns_are_credited_to_each_member(repo):
    got = sql(repo, """SELECT la_code, f_workforce_instability IS NOT NULL FROM council_risk
                       WHERE as_of = '2025-03-31' AND la_code IN ('314', '318', '940', '941') ORDER BY 1""")
    assert got == [("314", True), ("318", True), ("940", True), ("941", True)]


def test_reorganised_councils_are_ranked_only_while_they_exist_and_their_series_continue(repo):
    spans = {la: (a, b) for la, a, b in sql(repo, """SELECT la_code, min(as_of), max(as_of) FROM council_risk
                                                      WHERE la_code IN ('928', '940', '909', '942') GROUP BY 1""")}
    assert spans["928"][1] <= date(2021, 3, 31) < spans["940"][0]
    assert spans["909"][1] <= date(2023, 3, 31) < spans["942"][0]
    # Cumberland's first workforce figures (September 2023) are set against Cumbria's two years before
    [(text,)] = sql(repo, """SELECT list_filter(standing, lambda s: s LIKE '%turnover%')[1] FROM council_risk
                             WHERE la_code = '942' AND as_of = '2024-02-29'""")
    assert "(2023)" in text and "in two years" in text


def test_a_figure_counts_only_from_its_release(repo):
    # the workforce census at 30 September 2024 was published on 28 February 2025 (schemas/ees: 5 months)
    def years(as_of):
        return {s[s.index("(") + 1:s.index(")")] for (ss,) in sql(repo, """SELECT standing FROM council_risk
                WHERE as_of = ?""", as_of) for s in ss if "turnover" in s}
    assert "2024" not in years(date(2025, 1, 31)) and "2024" in years(date(2025, 2, 28))


def test_an_ofsted_judgement_counts_only_from_its_publication_date(repo):
    def ofsted(as_of):
        return sql(repo, "SELECT f_ofsted_history FROM council_risk WHERE la_code = '301' AND as_of = ?", as_of)
    assert ofsted(date(2023, 5, 31)) == [(None,)] and ofsted(date(2023, 6, 30))[0][0] > 0


def test_warn_and_the_report_for_a_published_only_council(repo, capsys, tmp_path):
    main(["warn", "--repo", str(repo), "--la", ONLY_C1])
    out = capsys.readouterr().out
    assert f"Risk of council {ONLY_C1} at " in out and "(1 factor)" in out
    main(["report", "--repo", str(repo), "--out", str(tmp_path / "report")])
    page = (tmp_path / "report" / "councils" / f"{ONLY_C1}.html").read_text(encoding="utf-8")
    assert "Hartlepool" in page and "re-referrals within 12 months" in page and "from 1 factor" in page


KS2_HEADER = ("time_period,time_identifier,geographic_level,country_code,country_name,region_code,region_name,"
              "old_la_code,la_name,new_la_code,social_care_group,version,t_rwm_eligible_pupils,"
              "t_rwm_met_expected_standard,pt_rwm_met_expected_standard\n")


def ks2_row(la, version, met, eligible=40):
    return (f"202324,Academic year,Local authority,E92000001,England,E12000001,North East,{la},Council {la},,"
            f"CLA 12 months at 31 March,{version},{eligible},{met},{100 * met / eligible:.0f}\n")


def test_a_year_given_in_two_versions_keeps_the_first_known_and_the_warning_says_so(tmp_path):
    from transforms.analytics import standing
    from transforms.run import ingest

    landing, repo = tmp_path / "landing", tmp_path / "repository"
    (landing / "published").mkdir(parents=True)
    (landing / "published" / "ks2_la.csv").write_text(
        KS2_HEADER + ks2_row("805", "Final", 10) + ks2_row("805", "Revised", 12) + ks2_row("806", "Revised", 14))
    ingest(landing, repo)
    assert sql(repo, """SELECT la_code, numerator, value FROM indicators WHERE indicator = 'ks2_rwm_cla'
                        AND source = 'published' ORDER BY la_code""") == [("805", 10.0, 25.0), ("806", 14.0, 35.0)]
    assert standing.vintages()["ks2_rwm_cla"] == "earliest version the file holds"
    assert standing.vintages()["turnover_rate_fte"] == "as revised"
