"""council_risk weighs live concerns towards workforce instability; `csreturns warn` says them plainly."""
import re
from datetime import date

import duckdb
import pandas as pd
import pytest

from transforms.analytics.council_risk import SHRINK, build_council_risk
from transforms.cli import main

MONTHS = [date(2025, 1, 31), date(2025, 2, 28)]


@pytest.fixture
def catalogue_file(tmp_path):
    """A catalogue with three councils' indicators and a hand-written set of live signals."""
    path = tmp_path / "csreturns.duckdb"
    con = duckdb.connect(str(path))
    indicators = pd.DataFrame([(la, "rereferral_12m", m, "rolling_12m", 1.0, 5.0, 20.0, "child_level")
                               for la in ("301", "302", "303") for m in MONTHS],
                              columns=["la_code", "indicator", "period_end", "window", "numerator", "denominator",
                                       "value", "source"])
    con.register("indicators_df", indicators)
    con.execute("CREATE TABLE indicators AS SELECT * FROM indicators_df")
    signals = pd.DataFrame([
        # 301: an agency-rate concern (workforce: weight 3) of severity 2 -> 6 points
        ("301", "agency_rate_fte", MONTHS[1], "funnel_england", 2, "concern", "Agency rate rose to 31% (England 18%)"),
        # 302: a re-referral warning (weight 2) of severity 2 from two rules, counted once -> 4 points; a lone
        #      special cause on missing from care (severity 1: worth watching) is not scored
        ("302", "rereferral_12m", MONTHS[1], "spc_run", 2, "concern", "Re-referrals above average for 7 months"),
        ("302", "rereferral_12m", MONTHS[1], "spc_trend", 2, "concern", "Re-referrals rising for 7 months"),
        ("302", "missing_from_care", MONTHS[1], "spc_point_beyond_limits", 1, "concern", "Missing from care rose to 14%"),
        # 303: an improvement never adds to the score
        ("303", "assessment_45wd", MONTHS[1], "spc_run", 3, "improvement", "Assessments faster"),
    ], columns=["la_code", "indicator", "as_of", "method", "severity", "direction", "explanation"])
    con.register("signals_df", signals)
    con.execute("CREATE TABLE early_warning AS SELECT * FROM signals_df")
    build_council_risk(con)
    con.close()
    return path


def rows(path, sql):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_workforce_concerns_outweigh_others_of_the_same_severity(catalogue_file):
    ranked = rows(catalogue_file, "SELECT la_code, score, rank FROM council_risk WHERE as_of = '2025-02-28' ORDER BY rank, la_code")
    # live warnings only: points / 4 (6 -> 1.5, 4 -> 1.0), over its one factor's weight + England's share
    assert ranked == [("301", pytest.approx(1.5 / (1 + SHRINK)), 1), ("302", pytest.approx(1 / (1 + SHRINK)), 2),
                      ("303", 0.0, 3)]


def test_one_indicator_counts_once_at_its_strongest_signal(catalogue_file):
    [(score, reasons)] = rows(catalogue_file, "SELECT score, top_reasons FROM council_risk WHERE la_code = '302' AND as_of = '2025-02-28'")
    assert score == pytest.approx(1 / (1 + SHRINK)) and len(reasons) == 1 and reasons[0].startswith("Re-referrals")


def test_a_lone_special_cause_is_worth_watching_but_not_scored(catalogue_file):
    [(reasons,)] = rows(catalogue_file, "SELECT top_reasons FROM council_risk WHERE la_code = '302' AND as_of = '2025-02-28'")
    assert "Missing from care rose to 14%" not in reasons


def test_every_council_has_a_row_for_every_month_end(catalogue_file):
    assert rows(catalogue_file, "SELECT count(*), count(DISTINCT la_code), count(DISTINCT as_of) FROM council_risk") == [(6, 3, 2)]
    assert rows(catalogue_file, "SELECT max(score) FROM council_risk WHERE as_of = '2025-01-31'") == [(0.0,)]


def test_warn_prints_live_concerns_worst_first(catalogue_file, capsys):
    assert main(["warn", "--repo", str(catalogue_file.parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Live concerns at 2025-02-28 for all councils: 3 indicator(s)"
    assert f"301 (risk rank 1, score {1.5 / (1 + SHRINK):+.2f}) Agency rate rose to 31% (England 18%)" in out[2]
    assert not any("Assessments faster" in line for line in out)


def test_warn_for_one_council(catalogue_file, capsys):
    main(["warn", "--repo", str(catalogue_file.parent), "--la", "302", "--as-of", "2025-02-28"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("council 302: 2 indicator(s)") and all(" 302 " in line for line in out[2:])


def test_warn_explains_its_severity_markers_once(catalogue_file, capsys):
    main(["warn", "--repo", str(catalogue_file.parent)])
    out = capsys.readouterr().out
    assert out.count("watch: one special cause") == 1 and out.count("[!  ]") == 2    # the legend, 302's watch
    assert re.search(r"\[!  \] 302 \(risk rank 2, score \+\d\.\d\d\) Missing from care rose to 14%", out)


def test_warn_lists_each_indicator_of_a_council_once_naming_every_method_that_signals_it(catalogue_file, capsys):
    main(["warn", "--repo", str(catalogue_file.parent), "--la", "302"])
    concerns = [line for line in capsys.readouterr().out.splitlines() if "Re-referrals" in line and "[!! ]" in line]
    assert len(concerns) == 1 and concerns[0].endswith("[spc_run, spc_trend]")


@pytest.mark.parametrize("as_of", ["2025-02-15", "2025-02-27", "15/02/2025"])
def test_warn_refuses_an_as_of_that_is_not_a_month_end_and_names_the_month_ends(catalogue_file, capsys, as_of):
    assert main(["warn", "--repo", str(catalogue_file.parent), "--as-of", as_of]) == 2
    err = capsys.readouterr().err
    assert as_of in err and ("2025-01-31 or 2025-02-28" in err or "not a date" in err)


def test_warn_for_a_council_with_no_signals_and_no_score_says_so(catalogue_file, capsys):
    assert main(["warn", "--repo", str(catalogue_file.parent), "--la", "999"]) == 0
    out = capsys.readouterr().out
    assert "council 999: 0 indicator(s)" in out and "No risk score for council 999 at 2025-02-28" in out


def test_warn_ranks_a_council_with_no_score_yet_without_failing(catalogue_file, capsys):
    with duckdb.connect(str(catalogue_file)) as con:
        con.execute("INSERT INTO council_risk (la_code, as_of) VALUES ('304', DATE '2025-02-28')")
    assert main(["warn", "--repo", str(catalogue_file.parent)]) == 0
    assert "304 no risk score yet" in capsys.readouterr().out


def test_warn_reads_a_month_end_not_scored_as_the_latest_month_end_scored_before_it(catalogue_file, capsys):
    main(["warn", "--repo", str(catalogue_file.parent), "--la", "302", "--as-of", "2025-03-31"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Live concerns at 2025-02-28 for council 302: 2 indicator(s)"
    main(["warn", "--repo", str(catalogue_file.parent), "--as-of", "2024-12-31"])
    assert capsys.readouterr().out.startswith("no early-warning signals and no risk scores")


@pytest.mark.parametrize("la,why", [
    ("909", "Cumbria was abolished on 2023-03-31; its area is scored under 942 (Cumberland), 943 (Westmorland and Furness)"),
    ("999", "no council has this DfE code"),
    ("330", "nothing about Birmingham is held"),
])
def test_warn_for_a_council_without_a_score_says_why(catalogue_file, capsys, la, why):
    main(["warn", "--repo", str(catalogue_file.parent), "--la", la])
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"No risk score for council {la} at 2025-02-28: {why}")
