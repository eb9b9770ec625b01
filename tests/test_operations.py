"""Production operations: failure e-mails, overdue returns, the writer pool, GX results in the Airflow UI."""
from __future__ import annotations

import re
import socket
from datetime import date, datetime, timezone
from email import message_from_bytes

import pytest
from conftest import ROOT, SAMPLES, need, put

from transforms import schema
from transforms.orchestration.alerts import (
    due_date,
    notify_failure,
    overdue_returns,
    send,
    year_end,
)
from transforms.store.repository import Repository, new_load_id

PLUGINS = ROOT / "transforms" / "orchestration" / "plugins"


# -- a real SMTP server on loopback --------------------------------------------------------------------
@pytest.fixture
def mailbox(monkeypatch):
    """aiosmtpd on 127.0.0.1; Airflow's smtp_default connection points at it through the environment."""
    controller_mod = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.original_content)))
            return "250 OK"

    with socket.socket() as probe:  # Controller checks its own port after starting, so it cannot take port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port)
    try:
        controller.start()
    except (OSError, RuntimeError) as error:
        pytest.skip(f"cannot start an SMTP server on loopback: {error}")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", f"smtp://127.0.0.1:{port}?disable_ssl=true&disable_tls=true"
                                                    "&from_email=csreturns%40council.example&retry_limit=0")
    monkeypatch.setenv("CSRETURNS_ALERT_EMAIL", "data-team@council.example, duty-analyst@council.example")
    yield inbox.messages
    controller.stop()


def _body(message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode()


# -- failure alerts ------------------------------------------------------------------------------------
@pytest.mark.services
@pytest.mark.airflow
def test_a_failed_task_emails_the_alert_list_naming_dag_task_run_try_error_and_log(airflow_db, dagbag, mailbox,
                                                                                   tmp_path):
    not_a_folder = tmp_path / "repository"
    not_a_folder.write_text("someone saved a file where the repository should be")

    run = dagbag.dags["repository_refresh"].test(run_conf={"repo": str(not_a_folder)})

    assert run.state == "failed"
    assert len(mailbox) == 1
    to, message = mailbox[0]
    assert sorted(to) == ["data-team@council.example", "duty-analyst@council.example"]
    assert message["Subject"] == "[csreturns] repository_refresh.build_catalogue failed (try 1)"
    assert message["From"] == "csreturns@council.example"
    body = _body(message)
    assert run.run_id in body
    assert "NotADirectoryError: [Errno 20] Not a directory" in body
    assert f"/dags/repository_refresh/runs/{run.run_id.replace(':', '%3A').replace('+', '%2B')}/tasks/build_catalogue" in body


def test_without_an_alert_address_nothing_is_sent_and_the_alert_is_logged(monkeypatch, capsys):
    monkeypatch.delenv("CSRETURNS_ALERT_EMAIL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", "smtp://127.0.0.1:1?disable_ssl=true")  # nothing listens

    assert send("[csreturns] collect_ssda903.load failed (try 2)", "<p>...</p>") is False
    assert "CSRETURNS_ALERT_EMAIL is not set; alert not e-mailed: [csreturns] collect_ssda903.load" in capsys.readouterr().out


def test_every_csreturns_task_alerts_on_failure(dagbag):
    dags = [d for d in dagbag.dags.values() if "csreturns" in d.tags]
    assert {"collect_ssda903", "repository_refresh", "returns_due"} <= {d.dag_id for d in dags}
    for dag in dags:
        for task in dag.tasks:
            callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) \
                else [task.on_failure_callback]
            assert notify_failure in callbacks, f"{dag.dag_id}.{task.task_id}"


# -- a run that rejected a file or quarantined rows says so -------------------------------------------
REJECTED_RUN = [
    {"relpath": "301/ssda903/year=2025/episodes.csv", "status": "partly_loaded", "reason": "", "rows_in": 120,
     "rows_quarantined": 2},
    {"relpath": "301/ssda903/year=2025/episodes_resent.csv", "status": "rejected",
     "reason": "required column(s) DECOM, RNE are missing", "rows_in": 118, "rows_quarantined": 118},
    {"relpath": "301/ssda903/year=2025/header.csv", "status": "loaded", "reason": "", "rows_in": 40,
     "rows_quarantined": 0}]


def test_the_run_note_lists_each_rejected_file_with_its_reason_and_each_file_with_quarantined_rows():
    from transforms.orchestration.alerts import run_note

    note = run_note("ssda903", REJECTED_RUN)
    assert note.splitlines() == [
        "**ssda903**: 1 file(s) rejected, 1 with quarantined rows (of 3 in this run)",
        "- rejected `301/ssda903/year=2025/episodes_resent.csv`: required column(s) DECOM, RNE are missing",
        "- `301/ssda903/year=2025/episodes.csv`: 2 of 120 rows quarantined"]
    assert run_note("ssda903", REJECTED_RUN[2:]) is None          # a clean run has no note


def test_a_long_run_note_stays_within_airflows_limit_and_says_how_many_more():
    from transforms.orchestration.alerts import NOTE_LIMIT, run_note

    rows = [{**REJECTED_RUN[1], "relpath": f"{300 + i}/ssda903/year=2025/episodes_resent.csv"} for i in range(40)]
    note = run_note("ssda903", rows)
    assert len(note) <= NOTE_LIMIT and re.search(r"- and \d+ more: see the GX results tab$", note)


@pytest.fixture(scope="module")
def api_server(airflow_db):
    """Airflow's api-server on loopback over the test metadata database, every request let in as admin
    (``simple_auth_manager_all_admins``); ``csreturns_airflow_api`` points at it."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the api-server did not start"
                time.sleep(2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


@pytest.mark.services
@pytest.mark.airflow
@pytest.mark.slow
def test_a_run_that_rejected_a_file_says_so_on_its_note_and_in_its_email(airflow_db, dagbag, mailbox, api_server,
                                                                         tmp_path, monkeypatch):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_CONN_CSRETURNS_AIRFLOW_API", api_server)
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2018/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    put(landing, "301/ssda903/year=2018/notes.docx", b"not a return")

    run = dagbag.dags["collect_ssda903"].test(run_conf={"landing": str(landing), "repo": str(repo_root)})

    assert run.state == "failed"
    with create_session() as session:
        note = session.query(DagRun).filter(DagRun.run_id == run.run_id).one().note
    assert "rejected `301/ssda903/year=2018/notes.docx`" in note
    [(_, message)] = mailbox
    assert message["Subject"] == f"[csreturns] collect_ssda903: files rejected ({run.run_id})"
    body = _body(message)
    assert "rejected whole" in body and "301/ssda903/year=2018/notes.docx" in body


@pytest.mark.services
@pytest.mark.airflow
@pytest.mark.slow
def test_settle_clears_the_refresh_events_held_from_before_it_finished_and_keeps_later_ones(airflow_db, api_server,
                                                                                            monkeypatch):
    import os
    import subprocess
    import sys
    from datetime import timedelta

    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    from transforms.orchestration.settle import release_held_events

    monkeypatch.setenv("AIRFLOW_CONN_CSRETURNS_AIRFLOW_API", api_server)
    done = subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    finished = datetime.now(timezone.utc)
    with create_session() as session:
        ids = dict(session.query(AssetModel.name, AssetModel.id).filter(
            AssetModel.name.in_(["csreturns_ssda903", "csreturns_cin_census", "csreturns_sen2"])))
        session.add_all([   # two held during the wait, one landing just after settle finished
            AssetDagRunQueue(asset_id=ids["csreturns_ssda903"], target_dag_id="repository_refresh",
                             created_at=finished - timedelta(seconds=40)),
            AssetDagRunQueue(asset_id=ids["csreturns_cin_census"], target_dag_id="repository_refresh",
                             created_at=finished - timedelta(seconds=1)),
            AssetDagRunQueue(asset_id=ids["csreturns_sen2"], target_dag_id="repository_refresh",
                             created_at=finished + timedelta(seconds=1))])
    try:
        assert release_held_events("repository_refresh", before=finished) is True
        with create_session() as session:
            left = {row.asset_id for row in session.query(AssetDagRunQueue).filter(
                AssetDagRunQueue.target_dag_id == "repository_refresh")}
        assert left == {ids["csreturns_sen2"]}
    finally:
        with create_session() as session:
            session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == "repository_refresh").delete()


# -- overdue returns -----------------------------------------------------------------------------------
SSDA903_AND_CIN = ["ssda903", "cin_census"]  # other collections declare due dates too; these tests need two


def _fixed_due(coll: schema.Collection) -> bool:
    return bool(re.fullmatch(r"\d{2}-\d{2}", str(coll.spec.get("due", ""))))


def _received(repo: Repository, la_code: str, collection: str, year: int, status: str = "loaded") -> None:
    load_id = new_load_id()
    rows = {"loaded": (10, 10, 0), "partly_loaded": (10, 8, 2), "rejected": (10, 0, 10)}[status]
    with repo.writer_lock():
        repo.commit(load_id, {}, {
            "load_id": load_id, "path": f"/landing/{la_code}/{collection}.xml", "relpath": f"{la_code}/{collection}.xml",
            "sha256": load_id, "bytes": 100, "format": "xml", "collection": collection, "table": None, "tables": [],
            "dataset": None, "la_code": la_code, "return_year": year, "year_source": "header",
            "received_at": datetime(year, 5, 1, tzinfo=timezone.utc), "status": status, "rows_in": rows[0],
            "rows_loaded": rows[1], "rows_quarantined": rows[2], "gx_success": status == "loaded", "reason": None,
            "duplicate_of": None, "replaces": []}, None)


def test_due_dates_come_from_each_schemas_cadence_and_due():
    assert due_date(schema.collection("ssda903"), 2025) == date(2025, 6, 30)
    assert due_date(schema.collection("cin_census"), 2025) == date(2025, 7, 31)
    assert due_date(schema.collection("published"), 2025) is None  # published statistics have no deadline


def test_every_collection_with_a_fixed_due_date_has_a_cadence_placing_it():
    fixed = [c for c in schema.collections().values() if _fixed_due(c)]
    assert {"ssda903", "cin_census"} <= {c.id for c in fixed}
    for coll in fixed:
        assert due_date(coll, 2025) > year_end(coll.cadence, 2025), coll.id


def test_census_collections_are_due_after_their_census_day():
    csww = schema.collections().get("csww")
    if csww is None:
        pytest.skip("no CSWW schema")
    assert due_date(csww, 2024) == date(2024, 10, 31)  # census day 30 September 2024


def test_a_return_is_overdue_the_day_after_its_due_date_not_on_it(repo_root):
    repo = Repository(repo_root)
    for collection in ("ssda903", "cin_census"):
        _received(repo, "301", collection, 2024)

    assert overdue_returns(repo_root, date(2025, 6, 30), SSDA903_AND_CIN) == []
    [late] = overdue_returns(repo_root, date(2025, 7, 1), SSDA903_AND_CIN)
    assert (late.collection, late.la_code, late.return_year, late.due, late.days_overdue, late.state) == \
        ("ssda903", "301", 2025, date(2025, 6, 30), 1, "missing")


def test_every_council_in_the_ledger_owes_every_collection_with_a_due_date(repo_root):
    repo = Repository(repo_root)
    _received(repo, "301", "ssda903", 2025)
    _received(repo, "301", "cin_census", 2025, "partly_loaded")  # some rows quarantined: still received
    _received(repo, "302", "cin_census", 2025)                   # never sent SSDA903
    _received(repo, "303", "ssda903", 2025, "rejected")          # sent, but nothing could be loaded
    _received(repo, "303", "cin_census", 2025)

    overdue = overdue_returns(repo_root, date(2025, 9, 1), SSDA903_AND_CIN)

    assert [(r.la_code, r.collection, r.return_year, r.state) for r in overdue] == [
        ("302", "ssda903", 2025, "missing"), ("303", "ssda903", 2025, "rejected")]


def test_a_council_owes_every_year_since_it_first_appears(repo_root):
    repo = Repository(repo_root)
    for year in (2023, 2025):
        _received(repo, "301", "ssda903", year)
        _received(repo, "301", "cin_census", year)

    overdue = overdue_returns(repo_root, date(2026, 8, 15), SSDA903_AND_CIN)

    assert [(r.collection, r.return_year, r.days_overdue) for r in overdue] == [
        ("ssda903", 2024, (date(2026, 8, 15) - date(2024, 6, 30)).days),
        ("cin_census", 2024, (date(2026, 8, 15) - date(2024, 7, 31)).days),
        ("ssda903", 2026, 46),
        ("cin_census", 2026, 15)]


@pytest.mark.services
@pytest.mark.airflow
def test_the_daily_returns_due_run_fails_and_emails_the_overdue_list_once(airflow_db, dagbag, mailbox, repo_root):
    repo = Repository(repo_root)
    for coll in filter(_fixed_due, schema.collections().values()):
        _received(repo, "301", coll.id, 2025)
        if coll.id != "ssda903":
            _received(repo, "302", coll.id, 2025)  # 302 has sent everything but SSDA903

    run = dagbag.dags["returns_due"].test(run_conf={"repo": str(repo_root), "today": "2025-08-04"})

    assert run.state == "failed"  # red in the UI until the return arrives
    assert len(mailbox) == 1      # the list itself, not a second "task failed" alert
    _, message = mailbox[0]
    assert message["Subject"] == "[csreturns] 1 return(s) overdue from 1 council(s) at 04 August 2025"
    body = _body(message)
    assert "<td>302</td><td>Children looked after (SSDA903)</td><td>2024-25</td><td>30 Jun 2025</td>" in body


# -- the writer pool -----------------------------------------------------------------------------------
def test_catalogue_rebuilds_queue_on_the_single_slot_writer_pool(dagbag):
    from transforms.orchestration.dags import WRITER_POOL

    writers = [(d.dag_id, t.task_id) for d in dagbag.dags.values() for t in d.tasks if t.pool == WRITER_POOL]
    assert ("repository_refresh", "build_catalogue") in writers
    assert WRITER_POOL == "csreturns_writer"


# -- GX results in the Airflow UI ----------------------------------------------------------------------
def ingested(landing, repo_root) -> tuple:
    """``csreturns ingest`` of ``landing``: the repository and each landed file's load id, by its path."""
    from transforms.cli import main

    assert main(["ingest", str(landing), "--repo", str(repo_root)]) in (0, None)
    ledger = Repository(repo_root).ledger()
    return repo_root, dict(zip(ledger["relpath"], ledger["load_id"]))


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """Three SSDA903 sample files ingested; reviews.csv has duplicate keys, so one expectation fails."""
    root = tmp_path_factory.mktemp("validated")
    landing, repo_root = root / "landing", root / "repository"
    for name in ("header.csv", "episodes.csv", "reviews.csv"):
        put(landing, f"301/ssda903/year=2018/{name}", need(SAMPLES / "ssda903" / name))
    return ingested(landing, repo_root)


def test_validation_page_lists_each_expectation_and_failing_row_counts_but_never_the_values(validated):
    from transforms.orchestration.plugins.validation_pages import render_load

    repo_root, loads = validated
    page = render_load(repo_root / "validations", loads["301/ssda903/year=2018/reviews.csv"])

    assert "Validation of 301/ssda903/year=2018/reviews.csv" in page
    assert "duplicate_key" in page and "28 of 12,582 rows" in page
    assert "8/9 expectations met" in page  # one of them the CHILD id's length (max_length: 10)
    assert "540481" not in page  # a CHILD id among GX's unexpected values stays out of the page
    assert "http" not in page     # self-contained: nothing fetched from a CDN


@pytest.fixture(scope="module")
def two_councils(tmp_path_factory):
    """Two councils' episodes checked in one GX run (same table and year): 301's sample as sent, 302's with
    its first three placements given a code that is not one; and a file no collection recognises."""
    root = tmp_path_factory.mktemp("two_councils")
    landing, repo_root = root / "landing", root / "repository"
    lines = need(SAMPLES / "ssda903" / "episodes.csv").read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    place = header.index("PLACE")
    broken = [lines[0]]
    for i, line in enumerate(lines[1:]):
        cells = line.rstrip("\r\n").split(",")
        if i < 3:
            cells[place] = "ZZ9"
        broken.append(",".join(cells) + "\n")
    put(landing, "301/ssda903/year=2018/episodes.csv", "".join(lines))
    put(landing, "302/ssda903/year=2018/episodes.csv", "".join(broken))
    put(landing, "302/ssda903/year=2018/notes.docx", b"not a return")
    return ingested(landing, repo_root)


def test_each_file_of_a_batch_shows_its_own_expectation_counts(two_councils):
    from transforms.orchestration.plugins.validation_pages import render_load

    repo_root, loads = two_councils
    clean = render_load(repo_root / "validations", loads["301/ssda903/year=2018/episodes.csv"])
    broken = render_load(repo_root / "validations", loads["302/ssda903/year=2018/episodes.csv"])
    assert "checked in one run with 1 other file(s)" in clean
    assert "class='fail'" not in clean                       # none of 302's failures is put on 301's file
    assert "3 of " in broken and "class='fail'" in broken
    met = [re.search(r"(\d+)/(\d+) expectations met by this file", page).groups() for page in (clean, broken)]
    assert met[0][0] == met[0][1] and int(met[1][0]) == int(met[1][1]) - 1


def test_validation_pages_describe_each_check_in_words_not_templates(two_councils):
    from transforms.orchestration.plugins.validation_pages import render_load

    repo_root, loads = two_councils
    page = render_load(repo_root / "validations", loads["302/ssda903/year=2018/episodes.csv"])
    assert "{value" not in page and "PLACE is not a valid code" in page


def test_the_results_index_lists_rejected_files_with_their_reason(two_councils):
    from transforms.orchestration.plugins.validation_pages import render_index

    repo_root, _ = two_councils
    page = render_index(repo_root)
    row = next(r for r in page.split("<tr>") if "notes.docx" in r)
    assert "rejected" in row and "not validated" in row and "href" not in row


def test_the_results_index_filters_by_council_collection_and_year(two_councils):
    from transforms.orchestration.plugins.validation_pages import render_index

    repo_root, loads = two_councils
    only_301 = render_index(repo_root, la_code="301", collection="ssda903", year=2018)
    assert loads["301/ssda903/year=2018/episodes.csv"] in only_301
    assert loads["302/ssda903/year=2018/episodes.csv"] not in only_301
    assert "No files." in render_index(repo_root, la_code="301", year=2019)


def test_the_results_index_pages_through_every_file_the_latest_first(two_councils):
    from transforms.orchestration.plugins.validation_pages import render_index

    repo_root, loads = two_councils
    newest_first = sorted(loads.values(), reverse=True)
    pages = [render_index(repo_root, page=n, per_page=2) for n in (1, 2)]
    assert all(load_id in pages[0] for load_id in newest_first[:2]) and newest_first[2] not in pages[0]
    assert newest_first[2] in pages[1] and "page 2 of 2" in pages[1] and "newer" in pages[1]


@pytest.fixture(scope="module")
def plugin_client(airflow_db):
    """The plugin as Airflow loads it from the plugins folder, with a real JWT from the simple auth manager."""
    from airflow._shared.plugins_manager import _load_plugins_from_plugin_directory
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    plugins, errors = _load_plugins_from_plugin_directory(str(PLUGINS))
    assert errors == {}
    [plugin] = [p for p in plugins if p.name == "csreturns"]
    api = FastAPI()
    for sub in plugin.fastapi_apps:
        api.mount(sub["url_prefix"], sub["app"])
    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    return plugin, TestClient(api), {"Authorization": f"Bearer {token}"}


@pytest.mark.airflow
def test_the_plugin_serves_the_latest_loads_and_each_loads_page_to_a_logged_in_user(plugin_client, validated,
                                                                                     monkeypatch):
    plugin, client, auth = plugin_client
    repo_root, loads = validated
    monkeypatch.setenv("CSRETURNS_REPO", str(repo_root))
    [nav] = [v for v in plugin.external_views if v["destination"] == "nav"]

    assert client.get(nav["href"]).status_code == 401  # the results need an Airflow login
    index = client.get(nav["href"], headers=auth)
    assert index.status_code == 200
    assert all(f"href='{load_id}/'" in index.text for load_id in loads.values())
    page = client.get(nav["href"] + loads["301/ssda903/year=2018/reviews.csv"] + "/", headers=auth)
    assert page.status_code == 200 and "28 of 12,582 rows" in page.text
    assert client.get(nav["href"] + "..%2F.writer.lock/", headers=auth).status_code == 404


@pytest.mark.airflow
@pytest.mark.slow
def test_a_collection_runs_gx_results_tab_links_to_the_loads_it_validated(plugin_client, dagbag, tmp_path,
                                                                           monkeypatch):
    plugin, client, auth = plugin_client
    landing, repo_root = tmp_path / "landing", tmp_path / "repository"
    put(landing, "301/ssda903/year=2018/header.csv", need(SAMPLES / "ssda903" / "header.csv"))
    put(landing, "301/ssda903/year=2018/episodes.csv", SAMPLES / "ssda903" / "episodes.csv")
    run = dagbag.dags["collect_ssda903"].test(run_conf={"landing": str(landing), "repo": str(repo_root)})
    assert run.state == "success"
    monkeypatch.setenv("CSRETURNS_REPO", str(repo_root))
    [tab] = [v for v in plugin.external_views if v["destination"] == "dag_run"]

    from urllib.parse import quote
    href = tab["href"].replace("{DAG_ID}", quote(run.dag_id, safe="")).replace("{RUN_ID}", quote(run.run_id, safe=""))
    response = client.get(href, headers=auth)

    assert response.status_code == 200
    for load_id in Repository(repo_root).ledger()["load_id"]:
        assert f"href='../../../{load_id}/'" in response.text
        assert client.get(f"/csreturns/validations/{load_id}/", headers=auth).status_code == 200
    assert (repo_root / "validations" / load_id / "index.html").exists()  # written by the validate task
