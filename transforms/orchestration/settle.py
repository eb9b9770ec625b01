"""One repository refresh for collections that land together.

The collection DAGs start on the same hourly tick (or on the same ``csreturns_landing`` event) and finish a
few seconds or minutes apart, each emitting its collection's asset. ``repository_refresh`` is scheduled on
any of those assets with ``max_active_runs=1``: the first event starts a run, and Airflow's scheduler holds
every event that arrives while that run is queued or running in its asset queue, to start at most one
more run after it (``DagModel.dags_needing_dagruns``: "Asset-triggered Dags at max_active_runs,
deferring"). So that the first run already holds the whole burst, it first waits (``settle``) while any
collection DAG run is still queued or running; the run the held events start afterwards then finds the
catalogue already built on what the repository holds (``Repository.revision``) and rebuilds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

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
