"""The shared landing-area cases (../shared/cases/<case>/expected.md), each ingested as a council's landing
area would be and checked with SQL against the repository, in the numbers expected.md gives.

Each case is copied (odd names and links kept) into a temporary folder, its ``make_input.sh`` run where it has
one, and ingested once per test session; the tests then read the ledger, quarantine and tables of that run.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT, SHARED, need

from transforms.run import ingest

CASES = SHARED / "cases"
_RUNS: dict[str, tuple[Path, Path, list[dict]]] = {}


def _writable(folder: Path) -> None:
    for base, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            p = Path(base) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
    folder.chmod(folder.stat().st_mode | stat.S_IWUSR)


def prepare(name: str, where: Path) -> Path:
    """A copy of case ``name`` under ``where``, with its generated input made (make_input.sh)."""
    source = need(CASES / name)
    case = where / name
    shutil.copytree(source, case, symlinks=True)
    _writable(case)
    if (case / "make_input.sh").exists():
        subprocess.run(["sh", str(case / "make_input.sh"), str(case)], check=True, timeout=120)
    return case


def run_case(name: str, tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """(case folder, repository, ledger rows) of the case, ingested once per session."""
    if name not in _RUNS:
        case = prepare(name, tmp_path_factory.mktemp("case"))
        repo = case / "repo"
        rows = ingest(case / "landing", repo)
        _RUNS[name] = (case, repo, rows)
    return _RUNS[name]


def sql(repo: Path, query: str, *params) -> list[tuple]:
    with duckdb.connect(str(repo / "csreturns.duckdb"), read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def ledger(repo: Path) -> dict[str, tuple]:
    """relpath -> (status, rows_in, rows_loaded, rows_quarantined, reason)."""
    return {r[0]: r[1:] for r in sql(repo, "SELECT relpath, status, rows_in, rows_loaded, rows_quarantined, reason "
                                           "FROM load_ledger")}


def counts(repo: Path, relpath: str) -> tuple:
    status, rows_in, loaded, quarantined, _ = ledger(repo)[relpath]
    return status, rows_in, loaded, quarantined


def all_text(repo: Path) -> str:
    """Every reason and quarantine message of the run, for checks that nothing raw is in them."""
    reasons = [r[0] or "" for r in sql(repo, "SELECT reason FROM load_ledger")]
    messages = [r[0] or "" for r in sql(repo, "SELECT message FROM quarantine")]
    return "\n".join(reasons + messages)


@pytest.fixture
def case(request, tmp_path_factory):
    return run_case(request.param, tmp_path_factory)


def cases(*names):
    return pytest.mark.parametrize("case", names, indirect=True)


@cases("trailing-decimal-codes")
def test_codes_exported_through_a_float_load_as_their_codes(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/header.csv") == ("loaded", 3, 3, 0)
    assert sql(repo, "SELECT source_row, sex, mother FROM ssda903_header ORDER BY 1") == [
        (2, "2", "1"), (3, "1", "0"), (4, "2", None)]


@cases("childid-normalisation")
def test_ids_differing_by_spaces_case_or_a_float_tail_link_to_one_child(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/header.csv") == ("loaded", 3, 3, 0)
    assert counts(repo, "301/year=2024/episodes.csv") == ("loaded", 3, 3, 0)
    assert sql(repo, "SELECT count(*) FROM ssda903_episodes e JOIN ssda903_header h "
                     "USING (la_code, return_year, child_id)") == [(3,)]
    assert sql(repo, "SELECT count(DISTINCT child_id) FROM ssda903_episodes") == [(3,)]


@cases("empty-files")
def test_empty_files_are_refused_as_empty_and_do_not_stop_the_others(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/header.csv") == ("loaded", 2, 2, 0)
    assert sql(repo, "SELECT count(*) FROM ssda903_header") == [(2,)]
    book = ledger(repo)
    assert book["301/year=2024/episodes.csv"][:4] == ("rejected", 0, 0, 0)
    assert book["301/year=2024/episodes.csv"][4] == "empty file: 0 bytes"
    assert book["301/year=2024/missing.csv"][:4] == ("rejected", 0, 0, 0)
    assert book["301/year=2024/missing.csv"][4].startswith("file holds only blank lines")


@cases("blank-rows-before-header")
def test_blank_and_comma_only_lines_above_the_header_are_skipped_keeping_line_numbers(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/episodes.csv") == ("loaded", 2, 2, 0)
    assert counts(repo, "301/year=2024/header.csv") == ("loaded", 2, 2, 0)
    assert sql(repo, "SELECT source_row FROM ssda903_episodes ORDER BY 1") == [(3,), (4,)]
    assert sql(repo, "SELECT source_row FROM ssda903_header ORDER BY 1") == [(3,), (4,)]


@cases("lowercase-codes")
def test_codes_typed_in_lower_case_load_upper_cased(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/episodes.csv") == ("loaded", 2, 2, 0)
    assert counts(repo, "301/year=2024/header.csv") == ("loaded", 2, 2, 0)
    assert sql(repo, "SELECT rne, ls, cin, place, place_provider FROM ssda903_episodes WHERE source_row = 2") == [
        ("S", "C2", "N1", "U1", "PR1")]
    assert sql(repo, "SELECT ethnic FROM ssda903_header WHERE source_row = 2") == [("WBRI",)]


@cases("utf16-csv")
def test_a_utf16_csv_with_a_byte_order_mark_is_decoded(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/header.csv") == ("loaded", 2, 2, 0)
    assert sql(repo, "SELECT source_row, sex, ethnic FROM ssda903_header ORDER BY 1") == [
        (2, "1", "WBRI"), (3, "2", "WBRI")]
    assert "\x00" not in all_text(repo)


@cases("cin-header-variants")
def test_cin_census_with_a_namespace_or_without_collection_element_loads(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/cin_namespaced.xml") == ("loaded", 5, 5, 0)
    assert counts(repo, "302/year=2024/cin_no_collection.xml") == ("loaded", 5, 5, 0)
    assert sql(repo, "SELECT la_code, count(*) FROM cin_assessment_factors GROUP BY 1 ORDER BY 1") == [
        ("301", 2), ("302", 2)]


@cases("postcode-spacing")
def test_postcodes_in_any_spacing_keep_their_district_and_outward_codes_stay(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/episodes.csv") == ("loaded", 4, 4, 0)
    assert sql(repo, "SELECT source_row, home_post, pl_post FROM ssda903_episodes ORDER BY 1") == [
        (2, "EG19", "EG19"), (3, "EG19", "EG19"), (4, "EG19", "EG19"), (5, "J1", "J1")]
    assert not sql(repo, "SELECT 1 FROM ssda903_episodes WHERE length(home_post) > 4 OR length(pl_post) > 4")


@cases("hostile-xml-deep-and-doctype")
def test_deep_nesting_and_a_doctype_after_a_long_comment_are_refused_with_rows_counted(case):
    _, repo, _ = case
    book = ledger(repo)
    deep = book["301/year=2024/cin_deep.xml"]
    assert deep[0] == "rejected" and deep[2] == 0 and deep[1] >= 2 and deep[1] == deep[3]
    assert "nesting depth" in deep[4]
    for relpath, children in (("302/year=2024/cin_late_doctype.xml", 2), ("303/year=2024/cin_late_xxe.xml", 1)):
        status, rows_in, loaded, quarantined, reason = book[relpath]
        assert (status, loaded) == ("rejected", 0) and rows_in >= children and rows_in == quarantined
        assert "DOCTYPE" in reason
    assert sql(repo, "SELECT count(*) FROM cin_children") == [(0,)]
    text = all_text(repo)
    assert "AAAAAAAAAA" not in text
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    assert not hostname or hostname not in text


@pytest.mark.slow
@cases("hostile-csv-50mb-field")
def test_one_50mb_cell_is_quarantined_and_the_rest_of_the_file_loads(case):
    _, repo, _ = case
    assert counts(repo, "301/year=2024/episodes.csv") == ("partly_loaded", 2, 1, 1)
    rows = sql(repo, "SELECT source_row, field, length(message) FROM quarantine WHERE rule <> 'file_rejected'")
    assert len(rows) == 1 and rows[0][0] == 2 and "URN" in rows[0][1] and rows[0][2] < 1000
    assert sql(repo, "SELECT source_row, urn FROM ssda903_episodes") == [(3, "1234567")]
    assert not sql(repo, "SELECT 1 FROM quarantine WHERE message LIKE '%7777777777%'")


@cases("hostile-odd-filenames")
def test_odd_file_names_are_recorded_under_their_exact_names_and_loaded(case, tmp_path):
    folder, repo, _ = case
    names = ["301/year=2024/\u00e9pisodes \u202evsc.csv", "301/year=2024/..\\..\\..\\header.csv",
             "301/year=2024/revi\news.csv"]
    for name in names:
        assert counts(repo, name) == ("loaded", 1, 1, 0), name
    for table in ("ssda903_episodes", "ssda903_header", "ssda903_reviews"):
        assert sql(repo, f"SELECT count(*) FROM {table}") == [(1,)]
    assert sorted(p.name for p in folder.iterdir()) == ["expected.md", "landing", "make_input.sh", "repo", "src"]
    out = tmp_path / "errors"
    result = subprocess.run([sys.executable, "-m", "transforms.cli", "errors", "--repo", str(repo), "--la", "301",
                             "--collection", "ssda903", "--year", "2024", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert any(out.iterdir())


@cases("hostile-symlink-outside")
def test_links_out_of_the_landing_area_are_recorded_and_never_read(case):
    _, repo, _ = case
    book = ledger(repo)
    for name in ("episodes.csv", "header.csv", "reviews.csv"):
        status, _, loaded, _, reason = book[f"301/year=2024/{name}"]
        assert (status, loaded) == ("rejected", 0) and "symbolic link" in reason
    assert "dangling" in book["301/year=2024/reviews.csv"][4]
    assert sql(repo, "SELECT count(*) FROM ssda903_episodes") == [(0,)]
    assert sql(repo, "SELECT count(*) FROM ssda903_header") == [(0,)]
    text = all_text(repo) + "\n".join(str(r) for r in sql(repo, "SELECT raw FROM quarantine"))
    assert "SECRET" not in text and "H40001" not in text and "api_token" not in text
