"""One ingest DAG per collection declared in schemas/ (collect_<id>)."""
from airflow.sdk import get_parsing_context

from transforms.orchestration.dags import collection_dag, collection_ids

_current = get_parsing_context().dag_id
for _collection_id in collection_ids():
    _dag_id = f"collect_{_collection_id}"
    if _current is None or _current == _dag_id:  # build only the DAG a worker is running
        globals()[_dag_id] = collection_dag(_collection_id)
