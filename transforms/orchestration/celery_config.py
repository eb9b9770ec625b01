"""Celery configuration for csreturns' workers: Airflow's default, plus ``transforms.orchestration.preload``
in Celery's ``imports``, so each worker imports what the tasks need once, before its pool forks, and every
task process inherits it (see that module's docstring)::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=transforms.orchestration.celery_config.CELERY_CONFIG

Light on purpose: the scheduler's CeleryExecutor reads this too, and must not import Great Expectations.
"""
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG,
                 "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), "transforms.orchestration.preload")}
