"""Published statistics from DfE's EES public API, against a real HTTP server on loopback that answers in the
API's documented shapes (``/v1/data-sets/{id}``, ``/versions``, ``/csv?dataSetVersion=``), serving a real EES
file from ../shared. No mocks: the client under test makes real HTTP requests."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import EES, need

DATA_SET_ID = "7b0c1e52-4a55-4d59-a7f5-0e3f6f1f2b11"


class EesApiServer:
    """A loopback server for one data set: ``versions`` (oldest first) with CSV bodies, counting requests;
    ``fail_next`` makes the next N requests answer 503 (a transient outage)."""

    def __init__(self, csv_bytes: bytes):
        self.versions = [("1.0", "2024-11-07T09:30:00Z", csv_bytes)]
        self.requests: list[str] = []
        self.fail_next = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                server.requests.append(url.path + ("?" + url.query if url.query else ""))
                if server.fail_next:
                    server.fail_next -= 1
                    return self._send(503, b'{"title": "Service unavailable"}', "application/json")
                base = f"/v1/data-sets/{DATA_SET_ID}"
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                latest_version, latest_published, _ = server.versions[-1]
                if url.path == base:
                    body = {"id": DATA_SET_ID, "title": "Referrals and re-referrals", "summary": "C1",
                            "status": "Published",
                            "latestVersion": {"version": latest_version, "published": latest_published,
                                              "totalResults": 1000,
                                              "timePeriods": {"start": "2013", "end": "2025"},
                                              "geographicLevels": ["National", "Local authority"]}}
                    return self._send(200, json.dumps(body).encode(), "application/json")
                if url.path == base + "/versions":
                    page, size = int(query.get("page", 1)), int(query.get("pageSize", 20))
                    listed = [{"version": v, "type": "Minor", "status": "Published", "published": p}
                              for v, p, _ in reversed(server.versions)]
                    pages = max(1, -(-len(listed) // size))
                    body = {"paging": {"page": page, "pageSize": size, "totalResults": len(listed),
                                       "totalPages": pages},
                            "results": listed[(page - 1) * size: page * size]}
                    return self._send(200, json.dumps(body).encode(), "application/json")
                if url.path == base + "/csv":
                    wanted = query.get("dataSetVersion", latest_version)
                    for v, _, data in server.versions:
                        if v == wanted:
                            return self._send(200, data, "text/csv")
                return self._send(404, b'{"title": "Not Found", "status": 404}', "application/json")

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def c1_csv() -> bytes:
    return need(EES / "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv").read_bytes()


@pytest.fixture
def c1():
    from transforms.orchestration.ees_api import Declared

    return Declared("ees_c1_referrals", "c1_referrals", DATA_SET_ID, "c1_children_in_need_referrals*")


def test_a_new_version_is_downloaded_once_and_lands_where_its_schema_recognises_it(tmp_path, c1_csv, c1):
    from transforms.ingest.landing import discover
    from transforms.orchestration.ees_api import EesApi, check_versions, fetch_new_versions, manifest

    landing = tmp_path / "landing"
    with EesApiServer(c1_csv) as server:
        api = EesApi(server.url, backoff=0.01)
        rows = fetch_new_versions(api, check_versions(api, [c1], landing), landing)
        assert [(r["version"], r["relpath"], r["bytes"]) for r in rows] == [
            ("1.0", "published/c1_children_in_need_referrals_v1.0.csv", len(c1_csv))]
        assert (landing / rows[0]["relpath"]).read_bytes() == c1_csv

        again = fetch_new_versions(api, check_versions(api, [c1], landing), landing)  # nothing new
        assert again == []
        assert sum(r.startswith(f"/v1/data-sets/{DATA_SET_ID}/csv") for r in server.requests) == 1

        revised = b"".join(c1_csv.splitlines(keepends=True)[:-1])  # a revision that withdrew a row
        server.versions.append(("1.1", "2025-11-06T09:30:00Z", revised))
        newer = fetch_new_versions(api, check_versions(api, [c1], landing), landing)
        assert [(r["version"], r["bytes"]) for r in newer] == [("1.1", len(revised))]
        assert [r["version"] for r in manifest(landing)] == ["1.0", "1.1"]
        assert f"/v1/data-sets/{DATA_SET_ID}/csv?dataSetVersion=1.1" in server.requests

    arrivals = {a.relpath: a for a in discover(landing)}
    assert arrivals["published/c1_children_in_need_referrals_v1.1.csv"].dataset == "c1_referrals"


def test_a_transient_outage_is_retried_with_backoff(tmp_path, c1_csv, c1):
    from transforms.orchestration.ees_api import EesApi, check_versions

    with EesApiServer(c1_csv) as server:
        server.fail_next = 2
        checked = check_versions(EesApi(server.url, backoff=0.01), [c1], tmp_path)
    assert checked[0]["version"] == "1.0" and checked[0]["new"]
    assert len(server.requests) == 3  # two 503s, then the answer


def test_an_unknown_data_set_is_a_clear_error_not_a_retry(tmp_path, c1_csv, c1):
    from transforms.orchestration.ees_api import Declared, EesApi, EesApiError, check_versions

    unknown = Declared(c1.collection, c1.dataset, "00000000-0000-0000-0000-000000000000", c1.match)
    with EesApiServer(c1_csv) as server:
        with pytest.raises(EesApiError, match="HTTP 404"):
            check_versions(EesApi(server.url, backoff=0.01), [unknown], tmp_path)
    assert len(server.requests) == 1


def test_versions_are_read_across_pages(c1_csv):
    from transforms.orchestration.ees_api import EesApi

    with EesApiServer(c1_csv) as server:
        server.versions += [(f"1.{i}", f"2025-0{i}-01T09:30:00Z", c1_csv) for i in range(1, 5)]
        listed = EesApi(server.url).versions(DATA_SET_ID, page_size=2)
    assert [v["version"] for v in listed] == ["1.4", "1.3", "1.2", "1.1", "1.0"]


def test_the_client_is_configured_by_an_airflow_http_connection(monkeypatch, c1_csv):
    from transforms.orchestration.ees_api import EesApi

    with EesApiServer(c1_csv) as server:
        monkeypatch.setenv("AIRFLOW_CONN_EES_API", server.url)
        api = EesApi.from_connection()
        assert api.data_set(DATA_SET_ID)["latestVersion"]["version"] == "1.0"


def test_a_file_name_is_found_that_the_datasets_pattern_recognises():
    from transforms.orchestration.ees_api import EesApiError, landed_name

    assert landed_name("la_cla_placement_stability*", "cla_placement_stability", "2.0") == \
        "la_cla_placement_stability_v2.0.csv"
    with pytest.raises(EesApiError):
        landed_name("*_la.csv", "absence", "1.0")
