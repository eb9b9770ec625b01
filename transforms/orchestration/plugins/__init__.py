"""Airflow plugins for csreturns. Point ``AIRFLOW__CORE__PLUGINS_FOLDER`` at this folder (``make demo``
and the Docker image do); ``.airflowignore`` keeps Airflow from loading the helper modules as plugins."""
