"""Airflow plugin: the Great Expectations results of every load, inside the Airflow UI.

A small FastAPI app mounted on the api-server at ``/csreturns`` serves the pages built by
``validation_pages`` from ``$CSRETURNS_REPO/validations``; two external views link to it: "Validation
results" in the Browse menu (latest loads) and a "GX results" tab on each DAG run (the loads that run
validated). The pages need an Airflow login, as the rest of the UI does.
"""
from __future__ import annotations

from pathlib import Path

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from transforms import settings
from transforms.orchestration.plugins.validation_pages import (
    LOAD_ID,
    PAGE,
    URL_PREFIX,
    render_index,
    render_load,
    render_run,
)

app = FastAPI(title="csreturns validation results", dependencies=[Depends(requires_authenticated())])


def _repo() -> Path:
    return settings.current().repo.resolve()


def _validations() -> Path:
    return _repo() / "validations"


@app.get("/validations/", response_class=HTMLResponse)
def latest_loads(la_code: str = "", collection: str = "", year: str = "", page: str = "1") -> str:
    """Every file received, latest first, 200 to a page; ``?la_code=&collection=&year=&page=`` (the
    filter form sends empty fields: an empty or non-numeric year or page is no filter, page 1)."""
    return render_index(_repo(), la_code=la_code.strip() or None, collection=collection.strip() or None,
                        year=int(year) if year.strip().isdigit() else None,
                        page=int(page) if page.strip().isdigit() else 1)


@app.get("/validations/runs/{dag_id}/{run_id}/", response_class=HTMLResponse)
def run_loads(dag_id: str, run_id: str) -> str:
    return render_run(_repo(), dag_id, run_id, prefix="../../../")


@app.get("/validations/{load_id}/", response_class=HTMLResponse)
def one_load(load_id: str) -> str:
    validations = _validations()
    try:
        if not LOAD_ID.match(load_id):  # also keeps the path inside validations/
            raise KeyError(load_id)
        page = validations / load_id / PAGE
        return page.read_text(encoding="utf-8") if page.is_file() else render_load(validations, load_id)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no validation results for load {load_id}") from None


class CsreturnsPlugin(AirflowPlugin):
    name = "csreturns"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "csreturns validation results"}]
    external_views = [
        {"name": "Validation results", "href": f"{URL_PREFIX}/validations/", "destination": "nav",
         "category": "browse", "url_route": "csreturns-validations"},
        {"name": "GX results", "href": f"{URL_PREFIX}/validations/runs/{{DAG_ID}}/{{RUN_ID}}/",
         "destination": "dag_run", "url_route": "csreturns-run-validations"},
    ]
