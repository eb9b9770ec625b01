"""Store: the Parquet repository (one file per partition swapped atomically, a journal for commits that
span partitions, an immutable ledger and quarantine, their Arrow schemas) and its read replica on S3.
May import: ``schema`` and ``settings`` only; every other wing reads or writes through it.
"""
