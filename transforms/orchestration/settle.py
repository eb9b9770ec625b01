"""One repository refresh for collections that land together.

The collection DAGs start on the same hourly tick (or on the same ``csreturns_landing`` event) and finish a
few seconds or minutes apart, each emitting its collection's asset. ``repository_refresh`` is scheduled on
any of those assets with ``max_active_runs=1``: the first event starts a run, and Airflow's scheduler holds
every event that arrives while that run is queued or running in its asset queue (``AssetDagRunQueue``), to
start one more run after it (``DagModel.dags_needing_dagruns``: "Asset-triggered Dags at max_active_runs,
deferring"). So that the first run holds the whole burst, it first waits (``settle``) while any collection
DAG run is still queued or running; then it clears the events held for it that were created before that
moment (``release_held_events``, through Airflow's REST API, as tasks cannot touch the queue otherwise), so
the burst is refreshed by literally one run. Its ``build_catalogue`` starts after that and reads everything
those events announced (a collection publishes its asset after its data is committed); an event created
later still starts a new run. Without the API connection the held events start one more run, which finds
the catalogue already built on what the repository holds (``Repository.revision``) and rebuilds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

POKE_SECONDS = 10   # how often the settle sensor looks again (rescheduled, so it holds no worker meanwhile)


@dataclass(frozen=True)
class Settled:
    """How a wait ended: after ``waited`` seconds, with ``active`` collection runs still queued or running
    (non-zero only when it gave up: ``timed_out``)."""

    waited: float
    active: int
    timed_out: bool

    def describe(self) -> str:
        if self.timed_out:
            return (f"gave up waiting after {self.waited:.0f}s with {self.active} collection run(s) still queued "
                    "or running: refreshing now; what they load starts the next refresh")
        return f"no collection run queued or running after {self.waited:.0f}s: refreshing"


def settled(active: int, waited: float, max_wait: float) -> Settled | None:
    """Whether the refresh may go on: when no collection DAG run is queued or running (``active``), or
    once it has waited ``max_wait`` seconds (``waited`` since its run started). None: wait on."""
    if not active:
        return Settled(waited, 0, False)
    if waited >= max_wait:
        return Settled(waited, active, True)
    return None


def release_held_events(dag_id: str, before: datetime) -> bool:
    """Clear the asset events Airflow holds to start another run of ``dag_id``, created before ``before``
    (timezone-aware), through ``DELETE /api/v2/dags/{dag_id}/assets/queuedEvents?before=...`` at the
    connection ``csreturns_airflow_api`` (``airflow_api``). True when the queue holds none from before then
    afterwards (cleared, or nothing was held: the API's 404); False, with one log line, when the connection is
    not set or the API refuses: the held events then start one more run, which rebuilds nothing. Never raises."""
    from transforms.orchestration import airflow_api

    try:
        response = airflow_api.call("DELETE", f"/api/v2/dags/{quote(dag_id, safe='')}/assets/queuedEvents",
                                    allow=(404,), params={"before": before.isoformat()})
    except airflow_api.Unavailable as exc:
        print(f"asset events held meanwhile not cleared ({exc}): they start one more run, which rebuilds nothing")
        return False
    if response.status_code == 404:
        print("no asset events held for another run")
        return True
    print(f"cleared the asset events held for another run (created before {before:%H:%M:%S} UTC): this run refreshes them")
    return True
