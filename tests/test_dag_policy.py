"""Every DAG follows the one policy (transforms/orchestration/policy.py), as parsed by Airflow's DagBag."""
from __future__ import annotations

import pytest

from transforms.orchestration import policy

pytestmark = pytest.mark.airflow


def every_dag(dagbag):
    """The DAGs in dags/, plus a fetch DAG for a declared remote source (none is declared by default)."""
    from transforms.orchestration.dags import remote_fetch_dag
    from transforms.orchestration.remote import sources

    [source] = sources('{"kent": {"conn_id": "kent_sftp", "path": "/outbox"}}').values()
    return [*dagbag.dags.values(), remote_fetch_dag(source)]


def test_every_dag_is_owned_by_the_team_that_runs_csreturns(dagbag):
    from transforms import settings

    for dag in every_dag(dagbag):
        assert {t.owner for t in dag.tasks} == {settings.current().owner}, dag.dag_id


def test_every_dag_says_what_it_does_in_the_ui(dagbag):
    for dag in every_dag(dagbag):
        assert dag.doc_md and len(dag.doc_md) > 80, dag.dag_id
        assert dag.description, dag.dag_id


def test_every_dag_is_tagged_csreturns_and_with_what_it_handles(dagbag):
    for dag in every_dag(dagbag):
        assert "csreturns" in dag.tags, dag.dag_id
        assert len(set(dag.tags) & set(policy.KINDS)) == 1, (dag.dag_id, dag.tags)


def test_child_level_returns_and_published_statistics_are_told_apart_by_tag(dagbag):
    assert "child-level" in dagbag.dags["collect_ssda903"].tags
    assert "child-level" in dagbag.dags["collect_cin_census"].tags
    assert "published" in dagbag.dags["collect_ees_c1_referrals"].tags
    assert "reference" in dagbag.dags["collect_statistical_neighbours"].tags


def test_every_task_e_mails_on_failure(dagbag):
    from transforms.orchestration.alerts import notify_failure

    for dag in every_dag(dagbag):
        for t in dag.tasks:
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
            assert notify_failure in callbacks, f"{dag.dag_id}.{t.task_id}"


def test_tasks_retry_with_backoff_except_where_failure_is_the_message(dagbag):
    for dag in every_dag(dagbag):
        for t in dag.tasks:
            if dag.dag_id == "returns_due":
                assert t.retries == 0
                continue
            if t.retries:
                assert t.retry_exponential_backoff, f"{dag.dag_id}.{t.task_id}"


def test_no_dag_catches_up_on_missed_schedules(dagbag):
    assert [d.dag_id for d in every_dag(dagbag) if d.catchup] == []


def test_a_dag_without_doc_md_is_refused_when_built():
    with pytest.raises(ValueError, match="doc_md"):
        policy.dag_args("published", "  ")
    with pytest.raises(ValueError, match="kind"):
        policy.dag_args("misc", "does things")
