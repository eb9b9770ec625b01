"""Calls from a task to Airflow's public REST API (``/api/v2``), for what the Task SDK cannot do itself:
write a DAG run's note, clear a DAG's queued asset events.

The API is reached through the HTTP connection ``csreturns_airflow_api`` (``AIRFLOW_CONN_CSRETURNS_AIRFLOW_API``):
host is the api-server's base URL; login and password those of a user allowed to edit DAG runs and assets,
exchanged for a token at ``/auth/token`` (none where the api-server lets every request in).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

CONN_ID = "csreturns_airflow_api"


class Unavailable(Exception):
    """The API could not be used: the connection is not set (``NoConnection``), the api-server cannot be
    reached, or it refused. The message says which, in words a task log can show; callers log it and carry
    on without the API."""


class NoConnection(Unavailable, LookupError):
    """The connection ``csreturns_airflow_api`` is not set."""


@contextmanager
def client() -> Iterator:
    """An ``httpx.Client`` on the api-server's base URL, with the bearer token when the connection has a
    login. Raises ``NoConnection`` without the connection; ``httpx.HTTPError`` (or ``KeyError``/``ValueError``
    from a token answer it cannot read) when the API cannot be reached or refuses."""
    import httpx
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(CONN_ID)
    except AirflowNotFoundException as exc:
        raise NoConnection(f"no Airflow connection {CONN_ID} (see README)") from exc
    base = (conn.host if "://" in (conn.host or "") else
            f"{conn.schema or 'http'}://{conn.host}{f':{conn.port}' if conn.port else ''}").rstrip("/")
    with httpx.Client(base_url=base, timeout=30) as http:
        if conn.login:
            token = http.post("/auth/token", json={"username": conn.login, "password": conn.password or ""})
            token.raise_for_status()
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


def call(method: str, path: str, allow: tuple[int, ...] = (), **kwargs):
    """One request to the API (``httpx.Client.request`` arguments), its answer returned when it succeeded or
    its status is in ``allow``. Raises ``Unavailable`` (``NoConnection`` without the connection) otherwise."""
    import httpx

    try:
        with client() as http:
            response = http.request(method, path, **kwargs)
            if response.status_code not in allow:
                response.raise_for_status()
            return response
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise Unavailable(f"the Airflow API answered {type(exc).__name__}: {exc}") from exc
