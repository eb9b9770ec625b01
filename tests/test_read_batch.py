"""A batch's files are parsed in parallel processes with the same results as one after another."""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES, need, pending_verdicts, put

from transforms import settings
from transforms.ingest import stages
from transforms.ingest.landing import discover
from transforms.ingest.stages import read_batch
from transforms.store.repository import Repository


@pytest.fixture
def batch(tmp_path, monkeypatch):
    """Councils' XML returns of every kind, a CSV table, a broken XML file and an undated one."""
    landing = tmp_path / "landing"
    put(landing, "201/cin/CIN_Census_2024.xml", need(SAMPLES / "cin_census" / "CIN_Census_2024.xml"))
    put(landing, "975/cin/fake_CIN_data.xml", SAMPLES / "cin_census" / "fake_CIN_data.xml")
    put(landing, "302/ssda903/year=2018/fake_903.xml", SAMPLES / "ssda903" / "fake_903.xml")
    put(landing, "301/csww/year=2022/social_work_workforce_2022.xml", SAMPLES / "csww" / "social_work_workforce_2022.xml")
    put(landing, "201/sen2/year=2025/sen2_sample_2025.xml", SAMPLES / "sen2" / "sen2_sample_2025.xml")
    put(landing, "301/ssda903/year=2018/header.csv", SAMPLES / "ssda903" / "header.csv")
    text = (SAMPLES / "cin_census" / "CIN_Census_2024.xml").read_text(encoding="utf-8")
    put(landing, "202/cin/year=2024/CIN_cut.xml", text[: len(text) * 2 // 3])
    put(landing, "303/ssda903/episodes.csv", "CHILD,DECOM\n")
    monkeypatch.setattr(stages, "PARALLEL_MIN_BYTES", 0)   # the samples are small: use the workers all the same
    return discover(landing)


def staged(repo_root, files):
    """Per file: its problem, rows, meta and every raw table's rows, as read."""
    out = {}
    for landed in files:
        tables = {name: pq.read_table(path).to_pylist() for name, path in landed.raw.items()}
        out[landed.arrival.relpath] = (landed.problem, landed.duplicate_of, landed.rows_in, landed.meta, tables)
    return out


def test_files_read_by_two_worker_processes_are_staged_as_read_one_after_another(batch, tmp_path):
    one = read_batch(Repository(tmp_path / "one"), batch, workers=1)
    two = read_batch(Repository(tmp_path / "two"), batch, workers=2)
    assert [f.arrival.relpath for f in two] == [a.relpath for a in batch]
    assert staged(tmp_path / "two", two) == staged(tmp_path / "one", one)
    assert sum(1 for f in two if f.problem) == 2 and sum(1 for f in two if f.raw) == len(batch) - 2


def test_staging_of_a_parallel_read_belongs_to_the_reading_process(batch, tmp_path):
    repo = Repository(tmp_path / "repo")
    files = read_batch(repo, batch, workers=2)
    owners = {json.loads((repo.staging_dir(f.load_id) / ".owner").read_text())["pid"] for f in files if f.raw}
    assert owners == {os.getpid()}     # a worker's exit does not make the staging look orphaned


def test_load_ids_are_given_out_in_the_order_of_the_batch(batch, tmp_path):
    files = read_batch(Repository(tmp_path / "repo"), batch, workers=2)
    assert [f.load_id for f in files] == sorted(f.load_id for f in files)


def test_read_workers_default_to_the_cores_this_process_may_use_and_one_keeps_reading_in_process(monkeypatch):
    monkeypatch.setenv("CSRETURNS_READ_WORKERS", "")
    assert settings.current().read_processes == len(os.sched_getaffinity(0))
    monkeypatch.setenv("CSRETURNS_READ_WORKERS", "1")
    assert settings.current().read_processes == 1
    monkeypatch.setenv("CSRETURNS_READ_WORKERS", "-2")
    with pytest.raises(settings.SettingsError, match="CSRETURNS_READ_WORKERS"):
        settings.current()


def test_tables_are_staged_canonical_by_the_read_workers_and_counted_once(tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "PARALLEL_MIN_BYTES", 0)
    landing = tmp_path / "landing"
    put(landing, "301/ssda903/year=2018/header.csv",
        "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n 1001.0 ,2.0,27/03/2008,wrom,,,\nB2,1,09/09/2011,REFU,,,\n")
    put(landing, "302/ssda903/year=2018/header.csv", SAMPLES / "ssda903" / "header.csv")
    files = read_batch(Repository(tmp_path / "repo"), discover(landing), workers=2)
    odd = next(f for f in files if f.arrival.la_code == "301")
    staged = pq.read_table(odd.raw["header"])
    assert staged.schema.metadata[stages.NORMALISED_KEY] == b"1"
    assert staged.column("CHILD").to_pylist() == ["1001", "B2"] and staged.column("ETHNIC").to_pylist() == ["WROM", "REFU"]
    assert odd.normalised == {"CHILD: id": 1, "SEX: code": 1, "ETHNIC: code": 1}
    spec = stages.schema.collection("ssda903").table("header", 2018)
    assert stages.staged_table(odd, "header", spec).equals(staged) and odd.normalised["CHILD: id"] == 1
    raw = tmp_path / "raw.parquet"          # a table staged raw (before this change) is normalised by validate
    pq.write_table(staged.replace_schema_metadata(None).set_column(1, "CHILD", pa.array([" 1001.0 ", "B2"])), raw)
    odd.raw["header"], odd.normalised = str(raw), {}
    assert stages.staged_table(odd, "header", spec).column("CHILD").to_pylist() == ["1001", "B2"]
    assert odd.normalised == {"CHILD: id": 1}


def test_the_dfe_rules_run_in_a_kept_read_worker_with_the_same_verdicts_as_in_process(batch, tmp_path, caplog):
    """After a parallel read the process keeps its read workers; the rules on the returns as received run
    in one of them while GX checks the batch, and find what they find in the validating process."""
    results = {}
    for name, workers in (("in_process", 1), ("worker", 2)):
        stages._drop_read_pool()
        repo = Repository(tmp_path / name)
        files = read_batch(repo, batch, workers=workers)
        assert (stages._kept_pool() is not None) == (workers > 1)
        stages.validate_batch(repo, files)
        results[name] = pending_verdicts(tmp_path / name)
    stages._drop_read_pool()
    assert "worker process failed" not in caplog.text
    assert results["worker"] == results["in_process"]
    assert sum(len(v) for v in results["worker"].values()) > 0   # the samples do break rules


def test_a_validation_that_fails_raises_without_running_the_dfe_rules_first(batch, tmp_path, monkeypatch):
    """An error in GX's run (say, the engine failing) reaches the caller at once: the rules, whose verdicts
    would only be staged for a load that will not happen, are not run in its way."""
    stages._drop_read_pool()
    repo = Repository(tmp_path / "repo")
    files = read_batch(repo, batch, workers=1)
    ran = []
    monkeypatch.setattr(stages, "_rules_as_received", lambda *a: ran.append(a) or ([], None))

    def engine_fails(*args, **kwargs):
        raise RuntimeError("GX could not evaluate expect_column_values_to_be_in_set on CIN")

    monkeypatch.setattr(stages, "split", engine_fails)
    with pytest.raises(RuntimeError, match="GX could not evaluate"):
        stages.validate_batch(repo, files)
    assert ran == []
