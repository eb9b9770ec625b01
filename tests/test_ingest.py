"""Ingest end to end: every file recorded, every row loaded or quarantined, resubmissions replace."""
import csv

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import EES, SAMPLES, need, put

from transforms.catalogue.build import publish
from transforms.ingest.landing import identify
from transforms.ingest.stages import load_stage, read_stage, validate_stage
from transforms.run import ingest
from transforms.store.repository import Repository

HEADER = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n"
EPISODES = "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\n"


def sql(repo_root, query):
    with duckdb.connect(str(repo_root / "csreturns.duckdb"), read_only=True) as con:
        return con.sql(query).fetchall()


def csv_rows(path):
    with open(path, encoding="utf-8-sig") as fh:
        return sum(1 for row in csv.reader(fh) if any(cell.strip() for cell in row)) - 1


@pytest.fixture(scope="module")
def samples_ingested(tmp_path_factory):
    """The public SSDA903 CSV and XML samples and CIN census samples, ingested once for several tests."""
    base = tmp_path_factory.mktemp("samples")
    landing, repo_root = base / "landing", base / "repository"
    for f in need(SAMPLES / "ssda903").glob("*.csv"):
        put(landing, f"301/ssda903/year=2018/{f.name}", f)
    put(landing, "302/ssda903/year=2018/fake_903.xml", SAMPLES / "ssda903" / "fake_903.xml")
    put(landing, "201/cin/CIN_Census_2024.xml", SAMPLES / "cin_census" / "CIN_Census_2024.xml")
    put(landing, "975/cin/fake_CIN_data.xml", SAMPLES / "cin_census" / "fake_CIN_data.xml")
    rows = ingest(landing, repo_root)
    return landing, repo_root, {r["relpath"]: r for r in rows}


def test_every_sample_file_is_recorded_in_the_ledger(samples_ingested):
    landing, repo_root, rows = samples_ingested
    files = {p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file()}
    assert set(r[0] for r in sql(repo_root, "SELECT relpath FROM load_ledger")) == files


def test_ssda903_csv_row_counts_match_the_source_files(samples_ingested):
    landing, repo_root, rows = samples_ingested
    for path in (landing / "301/ssda903/year=2018").glob("*.csv"):
        row = rows[path.relative_to(landing).as_posix()]
        assert row["rows_in"] == csv_rows(path), path.name
    loaded = dict(sql(repo_root, "SELECT 'episodes', count(*) FROM ssda903_episodes WHERE la_code = '301'"))
    assert loaded["episodes"] == csv_rows(landing / "301/ssda903/year=2018/episodes.csv")


def test_every_file_reconciles_rows_in_with_loaded_plus_quarantined(samples_ingested):
    _, repo_root, _ = samples_ingested
    assert sql(repo_root, "SELECT count(*) FROM load_ledger WHERE rows_in <> rows_loaded + rows_quarantined") == [(0,)]
    # and the repository holds exactly what the ledger says was loaded
    per_load = sql(repo_root, """
        WITH held AS (
          SELECT load_id, count(*) n FROM ssda903_episodes GROUP BY ALL UNION ALL
          SELECT load_id, count(*) FROM ssda903_header GROUP BY ALL UNION ALL
          SELECT load_id, count(*) FROM ssda903_reviews GROUP BY ALL)
        SELECT l.relpath, l.rows_loaded, sum(h.n) FROM held h JOIN load_ledger l USING (load_id)
        WHERE l.format = 'csv' GROUP BY ALL""")
    assert per_load and all(loaded == held for _, loaded, held in per_load)


def test_ssda903_xml_rows_count_the_children_and_episodes_in_the_file(samples_ingested):
    landing, repo_root, rows = samples_ingested
    text = (landing / "302/ssda903/year=2018/fake_903.xml").read_text()
    assert sql(repo_root, "SELECT count(*) FROM ssda903_episodes WHERE la_code = '302'")[0][0] + \
        sql(repo_root, "SELECT count(*) FROM quarantine WHERE la_code = '302' AND table_name = 'ssda903_episodes'")[0][0] \
        == text.count("<EPISODE>")
    assert sql(repo_root, "SELECT count(*) FROM ssda903_header WHERE la_code = '302'")[0][0] == text.count("<HEADER>")


def test_cin_census_samples_flatten_with_counts_matching_the_xml(samples_ingested):
    landing, repo_root, rows = samples_ingested
    text = (landing / "975/cin/fake_CIN_data.xml").read_text()
    episodes = sql(repo_root, "SELECT count(*) FROM cin_episodes WHERE la_code = '975'")[0][0]
    quarantined = sql(repo_root, "SELECT count(*) FROM quarantine WHERE la_code='975' AND table_name='cin_episodes'")[0][0]
    assert episodes + quarantined == text.count("<CINdetails>")
    assert sql(repo_root, "SELECT count(*) FROM cin_children WHERE la_code = '975'")[0][0] + sql(
        repo_root, "SELECT count(*) FROM quarantine WHERE la_code='975' AND table_name='cin_children'")[0][0] == text.count("<Child>")


def test_dates_are_typed_as_dates(samples_ingested):
    _, repo_root, _ = samples_ingested
    types = dict(sql(repo_root, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'ssda903_episodes'"))
    assert types["decom"] == "DATE" and types["dec"] == "DATE" and types["return_year"] == "INTEGER"
    assert sql(repo_root, "SELECT min(decom) FROM ssda903_episodes WHERE la_code = '301'")[0][0].year == 2015


def test_identifiers_are_pseudonymised_and_dates_of_birth_kept_to_the_month(samples_ingested):
    landing, repo_root, _ = samples_ingested
    first = next(csv.DictReader(open(landing / "301/ssda903/year=2018/header.csv", encoding="utf-8-sig")))
    children = [r[0] for r in sql(repo_root, "SELECT child_id FROM ssda903_header")]
    assert first["CHILD"] not in children and all(len(c) == 20 for c in children)
    assert sql(repo_root, "SELECT count(*) FROM ssda903_header WHERE day(dob) <> 1") == [(0,)]
    assert sql(repo_root, "SELECT count(*) FROM ssda903_header WHERE upn LIKE '%" + first["UPN"] + "%'") == [(0,)]


def test_a_child_keeps_one_pseudonym_across_tables(samples_ingested):
    _, repo_root, _ = samples_ingested
    linked = sql(repo_root, """SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM ssda903_header h WHERE h.child_id = e.child_id)),
                                      count(*) FILTER (WHERE EXISTS (SELECT 1 FROM quarantine q
                                                       WHERE q.table_name = 'ssda903_header' AND q.raw['CHILD'] = e.child_id)),
                                      count(*)
                               FROM ssda903_episodes e WHERE la_code = '301'""")
    in_header, header_quarantined, episodes = linked[0]
    assert in_header + header_quarantined == episodes and header_quarantined < 5


def test_a_table_not_collected_that_year_is_rejected_whole_with_its_reason(samples_ingested):
    _, _, rows = samples_ingested
    row = rows["301/ssda903/year=2018/sw_episodes.csv"]
    assert row["status"] == "rejected" and "collected from 2024" in row["reason"]
    assert row["rows_quarantined"] == row["rows_in"] == 1


def test_a_bad_value_is_quarantined_naming_file_row_field_and_value(landing, repo_root):
    put(landing, "301/year=2025/header.csv", HEADER + "C1,M,01/05/2012,WBRI,,,\nC2,1,02/06/2013,WBRI,,,\nC3,F,31/02/2014,WBRI,,,\n")
    [row] = ingest(landing, repo_root)
    assert (row["status"], row["rows_in"], row["rows_loaded"], row["rows_quarantined"]) == ("partly_loaded", 3, 1, 2)
    found = sql(repo_root, """SELECT l.relpath, q.source_row, q.field, q.rule, q.message FROM quarantine q
                              JOIN load_ledger l USING (load_id) ORDER BY source_row""")
    assert found[0][:4] == ("301/year=2025/header.csv", 3, "SEX", "code_list")
    assert "'1' is not a valid code for 2025" in found[0][4]
    assert found[1][:4] == ("301/year=2025/header.csv", 4, "DOB", "date")
    assert "31/02/2014" not in found[1][4] and "10 characters" in found[1][4]  # a date of birth is never quoted


def test_the_same_sex_code_is_valid_in_2024(landing, repo_root):
    put(landing, "301/year=2024/header.csv", HEADER + "C2,1,02/06/2013,WBRI,,,\n")
    assert ingest(landing, repo_root)[0]["status"] == "loaded"


def test_a_file_without_a_required_column_is_rejected_whole(landing, repo_root):
    put(landing, "301/year=2024/episodes.csv", EPISODES.replace(",LS", "") + "C1,01/04/2023,S,N1,U1,PR1,,,,,,\n" * 3)
    [row] = ingest(landing, repo_root)
    assert (row["status"], row["rows_in"], row["rows_quarantined"]) == ("rejected", 3, 3)
    assert "LS" in row["reason"]
    assert sql(repo_root, "SELECT rule, source_row FROM quarantine") == [("file_rejected", None)]
    assert sql(repo_root, "SELECT count(*) FROM ssda903_episodes") == [(0,)]


def test_same_bytes_twice_is_a_duplicate_that_changes_nothing(landing, repo_root):
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\n")
    ingest(landing, repo_root)
    before = sql(repo_root, "SELECT load_id, child_id FROM ssda903_header")
    [again] = ingest(landing, repo_root)
    assert again["status"] == "duplicate" and again["duplicate_of"] == before[0][0]
    assert sql(repo_root, "SELECT load_id, child_id FROM ssda903_header") == before
    assert sql(repo_root, "SELECT status FROM load_ledger ORDER BY load_id") == [("loaded",), ("duplicate",)]


def test_a_resubmission_replaces_the_earlier_rows_for_that_la_table_and_year(landing, repo_root):
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\nC2,2,01/05/2013,WBRI,,,\n")
    put(landing, "302/year=2024/header.csv", HEADER + "D1,1,01/05/2012,WBRI,,,\n")
    first = {r["la_code"]: r for r in ingest(landing, repo_root)}
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\nC2,2,01/05/2013,WBRI,,,\nC3,2,01/05/2014,WBRI,,,\n")
    rows = {r["la_code"]: r for r in ingest(landing, repo_root, only_new=True)}
    assert list(rows) == ["301"] and rows["301"]["replaces"] == [first["301"]["load_id"]]
    assert sql(repo_root, "SELECT la_code, count(*), min(load_id) = max(load_id) FROM ssda903_header GROUP BY 1 ORDER BY 1") == [
        ("301", 3, True), ("302", 1, True)]


def test_a_load_whose_rows_a_resubmission_replaced_reads_as_superseded_naming_that_load(landing, repo_root):
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\nC2,2,01/05/2013,WBRI,,,\n")
    [first] = ingest(landing, repo_root)
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\n")
    [second] = ingest(landing, repo_root, only_new=True)
    assert sql(repo_root, "SELECT load_id, status, superseded_by FROM load_ledger ORDER BY load_id") == [
        (first["load_id"], "superseded", second["load_id"]), (second["load_id"], "loaded", None)]
    assert Repository(repo_root).ledger()["status"].tolist() == ["superseded", "loaded"]


def test_rows_loaded_over_the_loads_not_superseded_are_the_rows_the_repository_holds(landing, repo_root):
    """Per council, collection and year, after resubmissions of a CSV table and of a whole XML return."""
    episodes = need(SAMPLES / "ssda903" / "episodes.csv").read_text().splitlines(keepends=True)
    put(landing, "301/ssda903/year=2018/episodes.csv", "".join(episodes))
    put(landing, "301/ssda903/year=2018/header.csv", SAMPLES / "ssda903" / "header.csv")
    cin = need(SAMPLES / "cin_census" / "CIN_Census_2024.xml")
    put(landing, "201/cin/a_CIN_Census_2024.xml", cin)
    ingest(landing, repo_root)
    put(landing, "301/ssda903/year=2018/episodes.csv", "".join(episodes[:len(episodes) // 2]))
    put(landing, "201/cin/b_CIN_Census_2024_resubmitted.xml", cin.read_text().replace("DfEX0000001", "DfEX0000009"))
    ingest(landing, repo_root, only_new=True)
    publish(Repository(repo_root))

    repo = Repository(repo_root)
    held: dict[tuple, int] = {}
    for rel, path in repo.snapshot().partitions.items():
        parts = dict(p.split("=", 1) for p in rel.split("/"))
        key = (parts["collection"], parts["la_code"], int(parts["return_year"]))
        held[key] = held.get(key, 0) + pq.read_metadata(path).num_rows
    ledger = repo.ledger()
    assert (ledger["status"] == "superseded").sum() == 2
    current = ledger[ledger["status"] != "superseded"]
    assert current.groupby(["collection", "la_code", "return_year"])["rows_loaded"].sum().to_dict() == held
    assert dict(((c, la, y), n) for c, la, y, n in sql(repo_root, """
        SELECT collection, la_code, return_year, sum(rows_loaded) FROM load_ledger
        WHERE status <> 'superseded' GROUP BY ALL""")) == held


def test_a_crash_after_staging_leaves_the_old_data_and_is_finished_by_the_next_writer(landing, repo_root, monkeypatch):
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\n")
    ingest(landing, repo_root)
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\nC2,1,01/05/2012,WBRI,,,\n")
    repo = Repository(repo_root)
    state = validate_stage(repo, read_stage(repo, identify(landing / "301/year=2024/header.csv", landing)))

    def crash(entry):
        raise SystemExit("power cut after the journal was written")
    monkeypatch.setattr(repo, "_apply", crash)
    with pytest.raises(SystemExit):
        load_stage(repo, state)
    assert sql(repo_root, "SELECT count(*) FROM ssda903_header") == [(1,)]  # old data intact
    monkeypatch.undo()
    publish(Repository(repo_root))  # any next writer replays the journal
    assert sql(repo_root, "SELECT count(*) FROM ssda903_header") == [(2,)]
    assert sql(repo_root, "SELECT count(*) FROM load_ledger") == [(2,)]


def test_partitions_are_laid_out_by_collection_table_la_and_year(landing, repo_root):
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\n")
    ingest(landing, repo_root)
    files = [p.relative_to(repo_root / "parquet").as_posix() for p in (repo_root / "parquet").rglob("*.parquet")]
    assert files == ["collection=ssda903/table=header/la_code=301/return_year=2024/data.parquet"]
    meta = pq.read_schema(repo_root / "parquet" / files[0]).metadata
    assert meta[b"csreturns.load_id"].startswith(b"20")


def test_gx_results_are_kept_per_file(landing, repo_root):
    put(landing, "301/year=2024/header.csv", HEADER + "C1,1,01/05/2012,WBRI,,,\n")
    [row] = ingest(landing, repo_root)
    result = (repo_root / "validations" / row["load_id"] / "header.json").read_text()
    assert '"success": true' in result and "expect_column_values_to_be_in_set" in result


def test_gx_results_kept_in_the_repository_hold_no_values_from_the_return(landing, repo_root):
    """A duplicated child id or a bad date of birth fails an expectation; GX would list those raw values."""
    put(landing, "301/year=2025/header.csv",
        HEADER + "RAWID77,M,01/05/2012,WBRI,,,\nRAWID77,F,02/06/2013,WBRI,,,\nRAWID78,F,31/02/2014,WBRI,,,\n")
    [row] = ingest(landing, repo_root)
    result = (repo_root / "validations" / row["load_id"] / "header.json").read_text()
    assert '"success": false' in result
    assert "RAWID7" not in result and "31/02/2014" not in result


def test_published_ees_files_load_in_long_form_with_suppression_symbols(landing, repo_root):
    for f in ("c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv", "csww_indicators_2017_to_2025.csv",
              "la_care_leavers_activity.csv"):
        put(landing, f"published/{f}", need(EES / f))
    rows = ingest(landing, repo_root)
    assert {r["status"] for r in rows} == {"loaded"}
    assert all(r["rows_in"] == csv_rows(EES / r["relpath"].split("/")[-1]) for r in rows)
    value = sql(repo_root, """SELECT value FROM published_statistics WHERE dataset = 'c1_referrals'
                              AND geographic_level = 'National' AND time_period = '2025' AND measure = 'rereferral_percent'""")
    assert value == [(22.6,)]
    symbols = dict(sql(repo_root, "SELECT value_symbol, count(*) FROM published_statistics WHERE value_symbol IS NOT NULL GROUP BY 1"))
    assert symbols and set(symbols) <= {"c", "z", "x", "k", "low", "u", ":"}
    assert sql(repo_root, "SELECT count(*) FROM published_statistics WHERE value IS NULL AND value_symbol IS NULL") == [(0,)]
    breakdown = sql(repo_root, """SELECT DISTINCT breakdowns['care_leaver_age'] FROM published_statistics
                                  WHERE dataset = 'care_leavers_activity' ORDER BY 1""")
    assert ("17 to 18 years",) in breakdown
    published_on = sql(repo_root, """SELECT DISTINCT period_end, published_on FROM published_statistics
                                     WHERE dataset = 'csww_indicators' AND time_period = '2024'""")
    assert [(str(a), str(b)) for a, b in published_on] == [("2024-09-30", "2025-02-28")]


def test_the_catalogue_documents_every_relation(samples_ingested):
    _, repo_root, _ = samples_ingested
    relations = {r[0] for r in sql(repo_root, "SELECT relation FROM relations")}
    required = {"ssda903_header", "ssda903_episodes", "ssda903_reviews", "ssda903_uasc", "ssda903_oc2", "ssda903_oc3",
                "ssda903_ad1", "ssda903_placed_adoption", "ssda903_prev_perm", "ssda903_missing",
                "ssda903_sw_episodes", "ssda903_dolo", "cin_children", "cin_disabilities", "cin_episodes",
                "cin_assessments", "cin_assessment_factors", "cin_plans", "cin_section47", "cin_cp_plans",
                "cin_cp_reviews", "published_statistics", "load_ledger", "quarantine"}
    assert required <= relations
    tables = {r[0] for r in sql(repo_root, "SELECT table_name FROM information_schema.tables")}
    assert required <= tables
    undocumented = sql(repo_root, """SELECT c.table_name, c.column_name FROM information_schema.columns c
        WHERE c.table_name IN (SELECT relation FROM relations) AND NOT EXISTS (
          SELECT 1 FROM column_dictionary d WHERE d.relation = c.table_name AND d.column_name = c.column_name)""")
    assert undocumented == []
    assert all(sql(repo_root, f"SELECT count(*) FROM {r} WHERE la_code IS NULL OR return_year IS NULL OR load_id IS NULL")
               == [(0,)] for r in required if r.startswith(("ssda903_", "cin_")))


@pytest.mark.slow
def test_two_writers_at_once_are_serialised_and_both_land(tmp_path, repo_root):
    """Two ingests (say, two Airflow workers) into one repository: the writer lock keeps the catalogue
    and partitions consistent, and nothing from either is lost."""
    import subprocess
    import sys

    for la in ("301", "302"):
        rows = "".join(f"{la}C{i},1,01/05/2012,WBRI,,,\n" for i in range(200))
        put(tmp_path / f"landing_{la}", f"{la}/year=2024/header.csv", HEADER + rows)
    procs = [subprocess.Popen([sys.executable, "-m", "transforms.cli", "ingest", str(tmp_path / f"landing_{la}"),
                               "--repo", str(repo_root), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for la in ("301", "302")]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-2000:]
    assert sql(repo_root, "SELECT la_code, count(*) FROM ssda903_header GROUP BY 1 ORDER BY 1") == [("301", 200), ("302", 200)]
    assert sql(repo_root, "SELECT count(*), sum(rows_loaded) FROM load_ledger") == [(2, 400)]
