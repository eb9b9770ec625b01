"""The one policy every csreturns DAG follows, so the Airflow UI reads the same everywhere.

- **owner**: the team that runs csreturns (``CSRETURNS_OWNER``), on every task; the collection's data owner
  (DfE, Ofsted, ONS) is named in the DAG's ``doc_md``;
- **retries**: once after 30 s by default, backing off exponentially up to 20 minutes for tasks that
  reach other systems (``BACKOFF``); a DAG whose failure *is* the message (``returns_due``) sets 0;
- **failure callback**: ``transforms.orchestration.alerts.notify_failure`` e-mails the alert list;
- **tags**: ``csreturns`` and what the DAG handles (``child-level``, ``published``, ``reference``,
  ``repository``, ``remote``, ``alerts``), so the DAG list filters by kind;
- **doc_md** is required: a DAG nobody can read about in the UI is refused when it is built.

The DAG-policy tests (tests/test_dag_policy.py) hold every DAG to this.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from transforms import settings
from transforms.orchestration.alerts import notify_failure

# What a DAG handles: one of these tags besides "csreturns".
KINDS = ("child-level", "published", "reference", "repository", "remote", "alerts", "unrecognised")
BACKOFF = {"retry_delay": timedelta(seconds=30), "retry_exponential_backoff": 2.0,
           "max_retry_delay": timedelta(minutes=20)}


def default_args(retries: int = 1, **overrides: Any) -> dict[str, Any]:
    """Task defaults: owner, retries with backoff, failure callback (``overrides`` win)."""
    return {"owner": settings.current().owner, "retries": retries, **BACKOFF,
            "on_failure_callback": notify_failure, **overrides}


def dag_args(kind: str, doc_md: str, *, tags: tuple[str, ...] = (), retries: int = 1, **dag_kwargs: Any) -> dict[str, Any]:
    """Keyword arguments for ``airflow.sdk.dag`` under the policy: ``dag(dag_id=..., **dag_args(...))``.

    Raises ``ValueError`` for an unknown kind or an empty ``doc_md``.
    """
    if kind not in KINDS:
        raise ValueError(f"DAG kind {kind!r} is not one of {', '.join(KINDS)}")
    if not doc_md.strip():
        raise ValueError("every csreturns DAG needs doc_md: what it does, for the engineer reading the UI")
    return {"catchup": False, "doc_md": doc_md, "tags": ["csreturns", kind, *tags],
            "default_args": default_args(retries), **dag_kwargs}
