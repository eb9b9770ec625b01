"""Airflow DAG fetch_ees: new versions of published statistics from DfE's EES public API (connection ees_api),
for the datasets schemas/ees/ declares with a data_set_id."""
from transforms.orchestration.dags import fetch_ees_dag

fetch_ees = fetch_ees_dag()
