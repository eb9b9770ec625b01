"""Airflow DAG repository_refresh: rebuilds the DuckDB catalogue whenever a collection DAG publishes new
partitions (scheduled on the collection assets)."""
from transforms.orchestration.dags import repository_refresh_dag

repository_refresh = repository_refresh_dag()
