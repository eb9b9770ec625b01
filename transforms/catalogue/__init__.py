"""Catalogue: the DuckDB file analysts open, built beside the old one and swapped in (``build``): views
over the store, a wide view per EES dataset (``ees_views``), what the repository holds of each collection
(``holdings``) and the column dictionary (``dictionary``).
May import: ``schema``, ``sql``, ``store``, ``analytics`` (built into the catalogue) and ``ingest.rules``
(the rule relations); never ``report``, ``orchestration`` or ``synthetic``.
"""
