"""Rebuilds the DuckDB catalogue whenever a collection DAG publishes new partitions (asset-scheduled)."""
from transforms.orchestration import repository_refresh_dag

repository_refresh = repository_refresh_dag()
