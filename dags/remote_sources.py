"""One fetch DAG per remote landing area declared in CSRETURNS_SOURCES (fetch_<source>); none when unset."""
from airflow.sdk import get_parsing_context

from transforms.orchestration.dags import remote_fetch_dag
from transforms.orchestration.remote import sources

_current = get_parsing_context().dag_id
for _name, _source in sources().items():
    _dag_id = f"fetch_{_name}"
    if _current is None or _current == _dag_id:  # build only the DAG a worker is running
        globals()[_dag_id] = remote_fetch_dag(_source)
