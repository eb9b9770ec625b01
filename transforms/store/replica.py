"""A read replica of the Parquet repository on S3-compatible storage, for engines that read object stores
(Spark, Trino, Athena, pyarrow, DuckDB through pyarrow).

The repository itself stays on a local or mounted folder: its guarantees rest on ``os.replace`` and a file
lock, and S3 has neither an atomic rename nor a lock. The replica mirrors ``REPO/parquet`` with the same hive
layout (``collection=<c>/table=<t>/la_code=<la>/return_year=<y>/data.parquet``): each run uploads the
partition files whose MD5 differs from the object's ETag (single-part uploads, so the ETag is the MD5),
then deletes objects whose partition is gone, then writes ``_csreturns_replica.json`` (what was replicated
and when; hive readers skip names starting with ``_``). Each object swaps whole, but a reader during a run
may see some partitions new and others old, as with any S3 table. The ledger and quarantine are not
replicated: the quarantine keeps raw values from councils' files and stays with the repository.
"""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone

from transforms.store.repository import DATA_FILE, Repository

MARKER = "_csreturns_replica.json"


def split_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"replica location must be s3://bucket/prefix, not {url!r}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, (prefix.strip("/") + "/" if prefix.strip("/") else "")


def _hook(conn_id: str | None):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id)


def replicate(repo: Repository, url: str, conn_id: str | None = None) -> dict:
    """Bring the replica at ``url`` up to date with the repository's partitions; returns what changed.

    ``conn_id`` names an Airflow AWS connection (endpoint_url in its extra for S3-compatible stores);
    ``None`` uses boto3's own configuration (AWS_* environment variables, instance roles)."""
    bucket, prefix = split_url(url)
    client = _hook(conn_id).get_conn()
    local = {p.relative_to(repo.parquet).as_posix(): p for p in sorted(repo.parquet.rglob(DATA_FILE))}
    remote = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if rel.endswith(DATA_FILE):
                remote[rel] = obj["ETag"].strip('"')
    uploaded, unchanged = [], 0
    for rel, path in local.items():
        try:
            with open(path, "rb") as fh:  # an open file survives a concurrent os.replace: we send one version
                body = fh.read()
        except FileNotFoundError:        # the partition was deleted since we listed it
            continue
        md5 = hashlib.md5(body, usedforsecurity=False)
        if remote.get(rel) == md5.hexdigest():
            unchanged += 1
            continue
        client.put_object(Bucket=bucket, Key=prefix + rel, Body=body,
                          ContentMD5=base64.b64encode(md5.digest()).decode())
        uploaded.append(rel)
    deleted = sorted(set(remote) - set(local))
    for i in range(0, len(deleted), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": prefix + rel} for rel in deleted[i:i + 1000]],
                                                     "Quiet": True})
    result = {"replicated_at": datetime.now(timezone.utc).isoformat(), "repository": str(repo.root),
              "partitions": len(local), "uploaded": uploaded, "deleted": deleted, "unchanged": unchanged}
    client.put_object(Bucket=bucket, Key=prefix + MARKER, Body=json.dumps(result, indent=1).encode(),
                      ContentType="application/json")
    return result


def filesystem(conn_id: str | None = None):
    """A ``pyarrow.fs.S3FileSystem`` with the connection's credentials, region and endpoint."""
    from pyarrow import fs

    hook = _hook(conn_id)
    creds = hook.get_credentials()
    endpoint = hook.conn_config.endpoint_url if hook.conn_config else None
    options = {"access_key": creds.access_key, "secret_key": creds.secret_key, "session_token": creds.token,
               "region": hook.conn_region_name or "us-east-1"}
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        options.update(endpoint_override=rest, scheme=scheme)
    return fs.S3FileSystem(**options)


def table_dataset(url: str, collection: str, table: str, conn_id: str | None = None):
    """One table of the replica as a ``pyarrow.dataset``: hive partitions become typed columns (``la_code``
    stays text: '001' is not 1) and the columns of every year's files are unified, as in the catalogue."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    bucket, prefix = split_url(url)
    keys = ([("dataset", pa.string())] if collection == "published"
            else [("la_code", pa.string()), ("return_year", pa.int32())])
    partitioning = ds.HivePartitioning.discover(schema=pa.schema(keys))
    where = f"{bucket}/{prefix}collection={collection}/table={table}"
    s3 = filesystem(conn_id)
    found = ds.dataset(where, filesystem=s3, format="parquet", partitioning=partitioning)
    unified = pa.unify_schemas([f.physical_schema for f in found.get_fragments()] + [pa.schema(keys)],
                               promote_options="permissive")
    return ds.dataset(where, filesystem=s3, format="parquet", partitioning=partitioning, schema=unified)


def connect(url: str, conn_id: str | None = None):
    """An in-memory DuckDB connection with one view per return table of the replica.

    DuckDB reads S3 itself only through its httpfs extension, which it downloads at run time and which
    is not available here, so the replica is read by pyarrow and handed to DuckDB as Arrow datasets
    (projections and filters are pushed down to pyarrow). The views last as long as the connection.
    """
    import duckdb
    import pyarrow.fs as pafs

    from transforms import schema

    bucket, prefix = split_url(url)
    s3 = filesystem(conn_id)
    con = duckdb.connect()
    selector = pafs.FileSelector(f"{bucket}/{prefix}".rstrip("/"), recursive=False, allow_not_found=True)
    for coll_dir in s3.get_file_info(selector):
        if coll_dir.type != pafs.FileType.Directory or not coll_dir.base_name.startswith("collection="):
            continue
        collection = coll_dir.base_name.removeprefix("collection=")
        for table_dir in s3.get_file_info(pafs.FileSelector(coll_dir.path)):
            if table_dir.type != pafs.FileType.Directory or not table_dir.base_name.startswith("table="):
                continue
            table = table_dir.base_name.removeprefix("table=")
            try:
                relation = schema.collection(collection).relation(table) if collection != "published" else table
            except KeyError:
                relation = f"{collection}_{table}"
            dataset = table_dataset(url, collection, table, conn_id)
            con.register(relation, dataset)
    return con
