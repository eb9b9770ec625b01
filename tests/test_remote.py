"""Remote landing areas against real servers on loopback: an SFTP server (asyncssh) and S3 (moto's server mode),
reached through Airflow connections set by environment variable and the providers' hooks."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time

import pytest
from conftest import ROOT, SAMPLES, need, put

services = pytest.mark.services

HEADER_CSV = ("CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n"
              "566910,2,27/03/2008,WROM,D051910639385,,\n"
              "384923,2,09/09/2011,REFU,L034811502612,,\n"
              "102639,2,18/10/2010,WBRI,A051910639386,,\n")
UASC_CSV = "CHILD,SEX,DOB,DUC\n102639,2,18/10/2010,13/10/2028\n"
EPISODES_2018 = SAMPLES / "ssda903" / "episodes.csv"
SFTP_CLIENTS: list[str] = []  # the SSH client of each session the test server accepted (paramiko or AsyncSSH)


# -- servers --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory):
    """An SFTP server on 127.0.0.1 (random port) serving a temporary folder, key authentication only, with
    the Airflow connection ``csreturns_sftp`` pinned to its host key."""
    asyncssh = pytest.importorskip("asyncssh", reason="asyncssh is not installed (pip install -e .[test])")
    pytest.importorskip("airflow.providers.sftp", reason="apache-airflow-providers-sftp is not installed")
    root = tmp_path_factory.mktemp("sftp-root")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    class RecordingServer(asyncssh.SSHServer):
        def connection_made(self, conn):
            self.conn = conn

        def auth_completed(self):
            SFTP_CLIENTS.append(self.conn.get_extra_info("client_version"))

    async def serve():
        state["server"] = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], server_factory=RecordingServer,
            authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()), allow_scp=False)
        state["port"] = state["server"].sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(30), "the SFTP server did not start"
    conn = {"conn_type": "sftp", "host": "127.0.0.1", "port": state["port"], "login": "council",
            "extra": {"private_key": client_key.export_private_key("openssh").decode(),
                      "host_key": " ".join(host_key.export_public_key().decode().split()[:2]), "look_for_keys": False}}
    os.environ["AIRFLOW_CONN_CSRETURNS_SFTP"] = json.dumps(conn)
    yield root
    os.environ.pop("AIRFLOW_CONN_CSRETURNS_SFTP", None)

    async def stop():
        state["server"].close()
        await state["server"].wait_closed()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 in server mode on 127.0.0.1 (random port) and the Airflow connection ``csreturns_s3``."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[test])")
    pytest.importorskip("airflow.providers.amazon", reason="apache-airflow-providers-amazon is not installed")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    conn = {"conn_type": "aws", "login": "csreturns-test", "password": "csreturns-test-secret",
            "extra": {"endpoint_url": endpoint, "region_name": "eu-west-2"}}
    os.environ["AIRFLOW_CONN_CSRETURNS_S3"] = json.dumps(conn)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # nothing may look for an instance role off loopback
    yield endpoint
    os.environ.pop("AIRFLOW_CONN_CSRETURNS_S3", None)
    server.stop()


def _s3_client():
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id="csreturns_s3").get_conn()


@pytest.fixture
def bucket(s3_server, request):
    """A fresh bucket per test."""
    name = f"csreturns-{abs(hash(request.node.name)) % 10**8}"
    client = _s3_client()
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)


def _sftp_source(sftp_server, tmp_path, **kw):
    from transforms.orchestration.remote import Source

    outbox = sftp_server / tmp_path.name
    outbox.mkdir()
    return Source(name="county_sftp", conn_id="csreturns_sftp", path=f"/{tmp_path.name}", settle_seconds=0, **kw), outbox


def _upload(outbox, relpath, content):
    target = outbox / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(content, "read_bytes"):
        shutil.copyfile(content, target)
    else:
        target.write_text(content)
    return target


# -- SFTP ------------------------------------------------------------------------------------------------
@services
def test_sftp_files_arrive_once_with_their_checksum(sftp_server, tmp_path, landing):
    from transforms.ingest.landing import sha256_of
    from transforms.orchestration.remote import fetch, manifest

    source, outbox = _sftp_source(sftp_server, tmp_path)
    _upload(outbox, "301/ssda903/year=2018/episodes.csv", need(EPISODES_2018))
    _upload(outbox, "301/ssda903/year=2018/header.csv", SAMPLES / "ssda903" / "header.csv")

    first = fetch(source, landing)
    assert sorted(r["relpath"] for r in first) == ["301/ssda903/year=2018/episodes.csv", "301/ssda903/year=2018/header.csv"]
    assert {r["action"] for r in first} == {"fetched"}
    landed = landing / "301/ssda903/year=2018/episodes.csv"
    assert landed.read_bytes() == EPISODES_2018.read_bytes()
    assert {r["relpath"]: r["sha256"] for r in manifest(landing, source)}[landed.relative_to(landing).as_posix()] == sha256_of(EPISODES_2018)
    assert fetch(source, landing) == []


@services
def test_a_changed_remote_file_is_fetched_again_and_an_unchanged_one_is_not(sftp_server, tmp_path, landing):
    from transforms.orchestration.remote import fetch

    source, outbox = _sftp_source(sftp_server, tmp_path)
    header = _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)
    _upload(outbox, "301/ssda903/year=2018/uasc.csv", UASC_CSV)
    fetch(source, landing)
    corrected = HEADER_CSV + "700001,1,01/05/2012,WBRI,A123456789012,,\n"
    header.write_text(corrected)
    os.utime(header, (header.stat().st_atime, header.stat().st_mtime + 60))  # a later upload

    again = fetch(source, landing)
    assert [(r["relpath"], r["action"]) for r in again] == [("301/ssda903/year=2018/header.csv", "fetched")]
    assert (landing / "301/ssda903/year=2018/header.csv").read_text() == corrected


@services
def test_files_still_uploading_or_hidden_wait_for_a_later_run(sftp_server, tmp_path, landing):
    from transforms.orchestration.remote import fetch, unfetched

    source, outbox = _sftp_source(sftp_server, tmp_path)
    source = source.__class__(**{**source.__dict__, "settle_seconds": 600})
    fresh = _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)
    settled = _upload(outbox, "302/ssda903/year=2018/header.csv", HEADER_CSV)
    os.utime(settled, (settled.stat().st_atime, settled.stat().st_mtime - 3600))
    _upload(outbox, "303/ssda903/.header.csv.filepart", HEADER_CSV)

    assert unfetched(source, landing) == ["302/ssda903/year=2018/header.csv"]
    assert [r["relpath"] for r in fetch(source, landing)] == ["302/ssda903/year=2018/header.csv"]
    assert not (landing / fresh.relative_to(outbox)).exists()


@services
def test_a_host_whose_key_does_not_match_the_connection_is_refused(sftp_server, tmp_path, landing):
    import asyncssh
    import paramiko

    from transforms.orchestration.remote import fetch

    source, outbox = _sftp_source(sftp_server, tmp_path)
    _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)
    conn = json.loads(os.environ["AIRFLOW_CONN_CSRETURNS_SFTP"])
    conn["extra"]["host_key"] = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    os.environ["AIRFLOW_CONN_CSRETURNS_IMPOSTOR"] = json.dumps(conn)
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            fetch(source.__class__(**{**source.__dict__, "conn_id": "csreturns_impostor"}), landing)
    finally:
        os.environ.pop("AIRFLOW_CONN_CSRETURNS_IMPOSTOR")
    assert not (landing / "301").exists()


@services
def test_reconciliation_follows_each_remote_file_into_the_ledger(sftp_server, tmp_path, landing, repo_root):
    from transforms.orchestration.remote import fetch, reconcile, summary
    from transforms.run import ingest

    source, outbox = _sftp_source(sftp_server, tmp_path)
    _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)
    _upload(outbox, "301/ssda903/year=2018/minutes.txt", "notes of the panel meeting")
    fetch(source, landing, repo_root)
    assert summary(reconcile(source, landing, repo_root)) == {"awaiting_load": 2}

    ingest(landing, repo_root, refresh=False)
    _upload(outbox, "302/ssda903/year=2018/header.csv", HEADER_CSV)
    status = {r["relpath"]: r["status"] for r in reconcile(source, landing, repo_root)}
    assert status == {"301/ssda903/year=2018/header.csv": "loaded", "301/ssda903/year=2018/minutes.txt": "rejected",
                      "302/ssda903/year=2018/header.csv": "not_fetched"}
    ingest(landing, repo_root, refresh=False)  # the same files again: the ledger records a duplicate of itself
    assert {r["relpath"]: r["status"] for r in reconcile(source, landing, repo_root)} == status


@services
def test_bytes_already_in_the_ledger_are_not_landed_again_after_the_landing_area_is_cleared(
        sftp_server, tmp_path, landing, repo_root):
    from transforms.orchestration.remote import fetch
    from transforms.run import ingest

    source, outbox = _sftp_source(sftp_server, tmp_path)
    _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)
    fetch(source, landing, repo_root)
    ingest(landing, repo_root, refresh=False)
    shutil.rmtree(landing)  # housekeeping, or a new worker: manifest and files gone, the ledger remains
    landing.mkdir()

    rows = fetch(source, landing, repo_root)
    assert [(r["relpath"], r["action"]) for r in rows] == [("301/ssda903/year=2018/header.csv", "already_here")]
    assert not (landing / "301").exists()
    assert fetch(source, landing, repo_root) == []



@services
def test_the_deferrable_wait_fires_in_the_triggerer_only_for_files_not_yet_fetched(sftp_server, tmp_path, landing):
    from dataclasses import asdict

    from transforms.orchestration.remote import NewRemoteFilesTrigger, fetch, unfetched

    source, outbox = _sftp_source(sftp_server, tmp_path, deferrable=True)
    _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)
    fetch(source, landing)
    _, kwargs = NewRemoteFilesTrigger(asdict(source), str(landing), 0.2).serialize()
    trigger = NewRemoteFilesTrigger(**kwargs)  # as the triggerer rebuilds it from the database

    async def first_event(timeout: float):
        return await asyncio.wait_for(anext(trigger.run()), timeout)

    with pytest.raises(TimeoutError):  # the asyncssh listing agrees with the manifest: nothing to wake up for
        asyncio.run(first_event(2))
    _upload(outbox, "302/ssda903/year=2018/header.csv", HEADER_CSV)
    event = asyncio.run(first_event(30))
    assert event.payload == {"status": "found", "pending": ["302/ssda903/year=2018/header.csv"]}
    assert unfetched(source, landing) == event.payload["pending"]

# -- S3 --------------------------------------------------------------------------------------------------
@services
def test_s3_objects_arrive_once_and_a_replaced_object_is_fetched_again(bucket, landing):
    from transforms.ingest.landing import sha256_of
    from transforms.orchestration.remote import Source, fetch, unfetched

    source = Source(name="partners", conn_id="csreturns_s3", path=f"s3://{bucket}/incoming/")
    client = _s3_client()
    client.put_object(Bucket=bucket, Key="incoming/301/ssda903/year=2018/header.csv", Body=HEADER_CSV.encode())
    client.put_object(Bucket=bucket, Key="incoming/302/ssda903/year=2018/uasc.csv", Body=UASC_CSV.encode())
    client.put_object(Bucket=bucket, Key="elsewhere/303/ssda903/header.csv", Body=HEADER_CSV.encode())

    first = fetch(source, landing)
    assert sorted((r["relpath"], r["action"]) for r in first) == [("301/ssda903/year=2018/header.csv", "fetched"),
                                                                 ("302/ssda903/year=2018/uasc.csv", "fetched")]
    assert {r["remote_path"] for r in first} >= {f"s3://{bucket}/incoming/301/ssda903/year=2018/header.csv"}
    landed = landing / "301/ssda903/year=2018/header.csv"
    assert [r["sha256"] for r in first if r["relpath"].endswith("header.csv")] == [sha256_of(landed)]
    assert unfetched(source, landing) == [] and fetch(source, landing) == []

    client.put_object(Bucket=bucket, Key="incoming/301/ssda903/year=2018/header.csv", Body=(HEADER_CSV + HEADER_CSV.split("\n", 1)[1]).encode())
    assert unfetched(source, landing) == ["301/ssda903/year=2018/header.csv"]
    assert [r["action"] for r in fetch(source, landing)] == ["fetched"]


# -- the repository replicated to S3 ---------------------------------------------------------------------
def _ingest_two_councils(landing, repo_root):
    from transforms.run import ingest

    for la in ("301", "302"):  # each council's children have their own ids (same bytes would be a duplicate)
        put(landing, f"{la}/ssda903/year=2018/header.csv", _for_council(HEADER_CSV, la))
        put(landing, f"{la}/ssda903/year=2018/uasc.csv", _for_council(UASC_CSV, la))
    rows = ingest(landing, repo_root, refresh=False)
    assert {r["status"] for r in rows} == {"loaded"}


def _for_council(csv_text: str, la: str) -> str:
    header, *rows = csv_text.strip().split("\n")
    return "\n".join([header, *(la + row for row in rows)]) + "\n"


def _local_rows(repo_root, collection, table) -> int:
    import pyarrow.parquet as pq

    files = (repo_root / "parquet" / f"collection={collection}" / f"table={table}").rglob("data.parquet")
    return sum(pq.read_metadata(f).num_rows for f in files)


@services
def test_the_replica_on_s3_has_every_partition_in_the_hive_layout_and_a_rerun_uploads_nothing(
        bucket, landing, repo_root, capsys):
    from transforms.cli import main
    from transforms.store.replica import replicate, table_dataset
    from transforms.store.repository import Repository

    _ingest_two_councils(landing, repo_root)
    url = f"s3://{bucket}/csreturns/v1"
    first = replicate(Repository(repo_root), url, "csreturns_s3")
    assert "collection=ssda903/table=header/la_code=301/return_year=2018/data.parquet" in first["uploaded"]
    assert len(first["uploaded"]) == first["partitions"] == 4

    for table in ("header", "uasc"):
        replica = table_dataset(url, "ssda903", table, "csreturns_s3").to_table()
        assert replica.num_rows == _local_rows(repo_root, "ssda903", table)
        assert sorted(set(replica.column("la_code").to_pylist())) == ["301", "302"]

    assert main(["replicate", "--repo", str(repo_root), "--to", url, "--conn-id", "csreturns_s3"]) == 0
    assert "0 uploaded, 0 deleted, 4 unchanged" in capsys.readouterr().out


@services
def test_a_resubmission_uploads_only_its_partition_and_withdrawn_partitions_leave_the_replica(
        bucket, landing, repo_root):
    from transforms.run import ingest
    from transforms.store.replica import replicate
    from transforms.store.repository import Repository

    _ingest_two_councils(landing, repo_root)
    url = f"s3://{bucket}/csreturns"
    replicate(Repository(repo_root), url, "csreturns_s3")
    stale = "collection=ssda903/table=header/la_code=999/return_year=2016/data.parquet"
    _s3_client().put_object(Bucket=bucket, Key=f"csreturns/{stale}", Body=b"from an earlier repository")
    put(landing, "301/ssda903/year=2018/header.csv", HEADER_CSV + "700001,1,01/05/2012,WBRI,A123456789012,,\n")
    ingest(landing, repo_root, only_new=True, refresh=False)

    again = replicate(Repository(repo_root), url, "csreturns_s3")
    assert again["uploaded"] == ["collection=ssda903/table=header/la_code=301/return_year=2018/data.parquet"]
    assert again["deleted"] == [stale]
    keys = {o["Key"] for o in _s3_client().list_objects_v2(Bucket=bucket, Prefix="csreturns/")["Contents"]}
    assert f"csreturns/{stale}" not in keys and "csreturns/_csreturns_replica.json" in keys


@services
def test_duckdb_queries_the_replica_through_pyarrow_without_extensions(bucket, landing, repo_root):
    from transforms.store.replica import connect, replicate
    from transforms.store.repository import Repository

    _ingest_two_councils(landing, repo_root)
    url = f"s3://{bucket}/replica"
    replicate(Repository(repo_root), url, "csreturns_s3")
    con = connect(url, "csreturns_s3")
    counts = dict(con.execute("SELECT la_code, count(*) FROM ssda903_header GROUP BY ALL").fetchall())
    assert counts == {"301": 3, "302": 3}
    assert con.execute("SELECT count(*) FROM ssda903_uasc").fetchone()[0] == _local_rows(repo_root, "ssda903", "uasc")


# -- through Airflow -------------------------------------------------------------------------------------
@services
@pytest.mark.airflow
@pytest.mark.slow
def test_the_fetch_dag_waits_fetches_reconciles_and_is_skipped_when_nothing_is_new(
        airflow_db, bucket, landing, repo_root, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CSRETURNS_SOURCES", json.dumps({"partners": {
        "conn_id": "csreturns_s3", "path": f"s3://{bucket}/outbox", "poke_interval": 1, "wait_timeout": 3}}))
    client = _s3_client()
    client.put_object(Bucket=bucket, Key="outbox/301/ssda903/year=2018/header.csv", Body=HEADER_CSV.encode())
    client.put_object(Bucket=bucket, Key="outbox/301/ssda903/year=2018/uasc.csv", Body=UASC_CSV.encode())
    dagbag = DagBag(dag_folder=str(ROOT / "dags" / "remote_sources.py"))
    assert dagbag.import_errors == {}
    dag = dagbag.dags["fetch_partners"]
    assert [o.name for o in dag.get_task("reconcile").outlets] == ["csreturns_landing"]
    assert dag.get_task("fetch").retry_exponential_backoff and dag.get_task("fetch").retries >= 3
    conf = {"landing": str(landing), "repo": str(repo_root)}

    run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and set(states.values()) == {"success"}, states
    assert (landing / "301/ssda903/year=2018/header.csv").read_text() == HEADER_CSV
    reconciled = next(ti for ti in run.get_task_instances() if ti.task_id == "reconcile")
    assert reconciled.xcom_pull(task_ids="reconcile") == {"awaiting_load": 2}
    assert {"source": "partners", "fetched": 2, "already_here": 0, "awaiting_load": 2} in _asset_events("csreturns_landing")

    quiet = dag.test(run_conf=conf)  # nothing new on the remote: the sensor gives up, skipped, not failed
    states = {ti.task_id: ti.state for ti in quiet.get_task_instances()}
    assert quiet.state == "success" and states == {"wait_for_files": "skipped", "fetch": "skipped",
                                                   "reconcile": "skipped"}



@services
@pytest.mark.airflow
@pytest.mark.slow
def test_a_deferrable_fetch_dag_waits_in_the_triggerer_until_a_return_arrives(
        airflow_db, sftp_server, tmp_path, landing, repo_root, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    source, outbox = _sftp_source(sftp_server, tmp_path)
    monkeypatch.setenv("CSRETURNS_SOURCES", json.dumps({"county": {
        "conn_id": "csreturns_sftp", "path": source.path, "settle_seconds": 0, "deferrable": True,
        "poke_interval": 1, "wait_timeout": 120}}))
    dag = DagBag(dag_folder=str(ROOT / "dags" / "remote_sources.py")).dags["fetch_county"]
    seen_trigger = threading.Event()
    SFTP_CLIENTS.clear()

    def council_uploads_once_the_trigger_is_polling():
        # the worker lists with paramiko (SFTPHook); the trigger with asyncssh (SFTPHookAsync)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not seen_trigger.is_set():
            if any("AsyncSSH" in client for client in SFTP_CLIENTS):
                seen_trigger.set()
            time.sleep(0.2)
        _upload(outbox, "301/ssda903/year=2018/header.csv", HEADER_CSV)

    council = threading.Thread(target=council_uploads_once_the_trigger_is_polling, daemon=True)
    council.start()
    run = dag.test(run_conf={"landing": str(landing), "repo": str(repo_root)})
    council.join(10)
    assert seen_trigger.is_set(), "the sensor never deferred to the triggerer"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and set(states.values()) == {"success"}, states
    assert (landing / "301/ssda903/year=2018/header.csv").read_text() == HEADER_CSV


@services
@pytest.mark.airflow
@pytest.mark.slow
def test_repository_refresh_replicates_to_s3_after_the_catalogue_when_a_replica_is_configured(
        airflow_db, bucket, landing, repo_root, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CSRETURNS_REPLICA_CONN_ID", "csreturns_s3")
    _ingest_two_councils(landing, repo_root)
    dag = DagBag(dag_folder=str(ROOT / "dags" / "repository_refresh.py")).dags["repository_refresh"]

    assert dag.get_task("replicate_to_s3").upstream_task_ids == {"build_catalogue"}

    # only the replication runs: the catalogue and its companions are other tests' business
    run = dag.test(run_conf={"repo": str(repo_root), "replica": f"s3://{bucket}/warehouse"},
                   mark_success_pattern=r"(?!replicate_to_s3$).*")
    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["replicate_to_s3"] == "success"
    keys = {o["Key"] for o in _s3_client().list_objects_v2(Bucket=bucket, Prefix="warehouse/")["Contents"]}
    assert "warehouse/collection=ssda903/table=uasc/la_code=302/return_year=2018/data.parquet" in keys
    assert len(keys) == 5  # four partitions and the replica's marker


def _asset_events(name: str) -> list[dict]:
    """The extras of the events an asset received (the collection DAGs are scheduled on csreturns_landing)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                    .where(AssetModel.name == name)))


# -- configuration (no server) ---------------------------------------------------------------------------
def test_sources_are_declared_in_the_environment_and_say_which_hook_they_need():
    from transforms.orchestration.remote import sources

    declared = sources(json.dumps({"kent": {"conn_id": "kent_sftp", "path": "/outbox"},
                                   "partners": {"conn_id": "partners_s3", "path": "s3://returns/landing", "schedule": "@daily"}}))
    assert {n: s.kind for n, s in declared.items()} == {"kent": "sftp", "partners": "s3"}
    assert declared["partners"].bucket_and_prefix == ("returns", "landing/") and declared["partners"].schedule == "@daily"
    assert sources("") == {}
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        sources(json.dumps({"../etc": {"conn_id": "x", "path": "/"}}))


def test_collection_dags_also_run_when_a_remote_landing_area_delivers():
    from transforms.orchestration.dags import collection_dag

    schedule = collection_dag("ssda903").timetable
    assert schedule.asset_condition.name == "csreturns_landing"
    assert schedule.timetable.expression == "0 * * * *"  # and still hourly, for files dropped straight into the landing area
