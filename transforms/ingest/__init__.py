"""Ingest: landing -> read -> validate -> load, for one batch of landed files.

``landing`` finds and recognises files (collection, table, council, return year); ``readers`` turn them
into raw text tables with source line numbers; ``validate``/``expectations`` are the Great Expectations
suites generated from ``schemas/``; ``privacy`` pseudonymises and minimises; ``rules`` are the DfE
validation rules; ``stages`` runs read, validate and load on one typed record per file.
May import: ``schema``, ``settings``, ``sql``, ``workdays`` and ``store``; never a later wing.
"""
