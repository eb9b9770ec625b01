"""csreturns: councils' children's-services statutory returns in one repository, with early warning.

Data flows one way, one wing per stage:

    ingest/        landing -> read -> validate -> load: find and recognise files, read them, check them
                   with Great Expectations and the DfE rules, pseudonymise, hand them to the store
    store/         the Parquet repository (partitions, journal, ledger, quarantine) and its S3 replica
    catalogue/     the DuckDB catalogue over the store: views, EES wide views, holdings, column dictionary
    analytics/     indicators, early warning (SPC, funnels), council risk, built into the catalogue
    report/        the static HTML report read from a built catalogue
    orchestration/ Airflow: DAG builders with one policy, sensors, triggers, remote sources, alerts, UI plugin
    synthetic/     generated returns, scenarios with a known truth, and the demo (imported by no other wing)

Shared by all wings: ``schema`` (the declarative collections in ``schemas/``), ``settings`` (every
``CSRETURNS_*`` variable), ``sql`` and ``workdays``. ``run`` strings the stages together without a
scheduler (the CLI and the DAG tasks call it); ``cli`` is the ``csreturns`` command.
"""
