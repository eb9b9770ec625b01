"""Airflow DAG returns_due: each morning, the statutory returns past their due date (cadence and `due` in
schemas/) that no council file has yet loaded. The list is e-mailed and the run fails, so it shows red in
the UI until the returns arrive."""
from transforms.orchestration.dags import returns_due_dag

returns_due = returns_due_dag()
