"""Orchestration: what Airflow runs. DAG builders under one policy (owner, retries, failure callback),
the remote-source sensor and trigger, failure and overdue-return alerts, and the UI plugin.
Task bodies stay thin: they call ``run``, ``ingest``, ``catalogue``, ``report`` and ``store``.
May import any wing but ``synthetic``; nothing imports it but ``dags/``.
"""
