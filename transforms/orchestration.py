"""How the pipeline stages become Airflow tasks: one DAG per collection, generated from ``schemas/``.

Tasks map over file names and pass only small dicts of paths through XCom; the data itself moves through
the repository's staging area. The DAG files in ``dags/`` only call these builders.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset, AssetAny, Param, dag, get_current_context, task

from transforms import schema


def collection_asset(collection_id: str) -> Asset:
    """Updated whenever a collection's partitions change; the repository refresh is scheduled on these."""
    return Asset(name=f"csreturns_{collection_id}", uri=f"file://csreturns/parquet/{collection_id}")


CATALOGUE_ASSET = Asset(name="csreturns_catalogue", uri="file://csreturns/catalogue")


def collection_ids() -> list[str]:
    """Every declared collection, plus the sweep that records files no collection recognises."""
    from transforms.landing import UNRECOGNISED

    return [*schema.collections(), UNRECOGNISED]


def _paths() -> tuple[Path, Path]:
    params = get_current_context()["params"]
    landing = params.get("landing") or os.environ.get("CSRETURNS_LANDING", "var/landing")
    repo = params.get("repo") or os.environ.get("CSRETURNS_REPO", "var/repository")
    return Path(landing), Path(repo)


def collection_dag(collection_id: str):
    asset = collection_asset(collection_id)
    if collection_id in schema.collections():
        coll = schema.collection(collection_id)
        title, owner, doc = coll.title, coll.owner, _doc(coll)
    else:
        title, owner = "files that no collection recognises", "csreturns"
        doc = ("### Unrecognised files\n\nEvery file in the landing area that no schema claims is recorded "
               "in the ledger as rejected, with the reason, so nothing that arrives goes unseen.")

    @dag(dag_id=f"collect_{collection_id}", schedule="@hourly", catchup=False, max_active_runs=1,
         description=f"Ingest {title} from the landing area into the repository",
         tags=["csreturns", "collection", owner], doc_md=doc,
         params={"landing": Param(None, type=["null", "string"], description="landing folder (default $CSRETURNS_LANDING)"),
                 "repo": Param(None, type=["null", "string"], description="repository folder (default $CSRETURNS_REPO)")},
         default_args={"retries": 1, "retry_delay": timedelta(seconds=30)})
    def collect():
        @task
        def discover() -> list[dict]:
            """New files of this collection (not in the ledger with the same path and bytes), grouped
            into submissions: one council's return for one year."""
            from transforms.landing import batches, discover as find
            from transforms.repository import Repository

            landing, repo = _paths()
            arrivals = find(landing, collection_id, seen=Repository(repo).seen())
            groups = batches(arrivals, int(os.environ.get("CSRETURNS_BATCH_SUBMISSIONS", "25")))
            print(f"{len(arrivals)} new file(s) for {collection_id} under {landing} in {len(groups)} batch(es)")
            return [{"submission": _label(g), "arrivals": [a.to_dict() for a in g]} for g in groups]

        @task(map_index_template="{{ submission['submission'] }}")
        def read(submission: dict) -> dict:
            from transforms.landing import Arrival
            from transforms.pipeline import read_stage
            from transforms.repository import Repository

            repo = Repository(_paths()[1])
            states = []
            for arrival in submission["arrivals"]:
                state = read_stage(repo, Arrival.from_dict(arrival))
                print(f"{arrival['relpath']}: {state.get('rows_in', 0)} rows read"
                      + (f"; problem: {state['problem']}" if "problem" in state else "")
                      + (f"; duplicate of {state['duplicate_of']}" if "duplicate_of" in state else ""))
                states.append(state)
            return {"submission": submission["submission"], "states": states}

        @task(map_index_template="{{ submission['submission'] }}")
        def validate(submission: dict) -> dict:
            from transforms.pipeline import validate_batch
            from transforms.repository import Repository

            states = validate_batch(Repository(_paths()[1]), submission["states"])
            for state in states:
                for info in state.get("tables", {}).values():
                    print(f"GX {state['arrival']['relpath']} {info['summary']}")
            return {"submission": submission["submission"], "states": states}

        @task(map_index_template="{{ submission['submission'] }}")
        def load(submission: dict) -> list[dict]:
            from transforms.pipeline import load_stage
            from transforms.repository import Repository

            repo = Repository(_paths()[1])
            rows = []
            for state in submission["states"]:
                row = load_stage(repo, state)
                print(f"{row['relpath']}: {row['status']} ({row['rows_loaded']} loaded, "
                      f"{row['rows_quarantined']} quarantined of {row['rows_in']})"
                      + (f" - {row['reason']}" if row.get("reason") else ""))
                rows.append({k: row[k] for k in ("load_id", "relpath", "status", "rows_in", "rows_loaded",
                                                 "rows_quarantined")})
            return rows

        @task(outlets=[asset], trigger_rule="none_failed")
        def publish(rows: list[dict] | None = None) -> dict:
            """Announce what changed: the repository refresh DAG is scheduled on this asset."""
            rows = [row for batch in (rows or []) for row in batch]
            summary = {s: sum(1 for r in rows if r["status"] == s) for s in ("loaded", "partly_loaded", "rejected", "duplicate")}
            summary.update(files=len(rows), rows_loaded=sum(r["rows_loaded"] for r in rows),
                           rows_quarantined=sum(r["rows_quarantined"] for r in rows))
            print(f"{collection_id}: {summary}")
            get_current_context()["outlet_events"][asset].extra = summary
            return summary

        publish(load.expand(submission=validate.expand(submission=read.expand(submission=discover()))))

    return collect()


def _label(group) -> str:
    first = group[0]
    councils = len({a.la_code for a in group if a.la_code})
    head = " ".join(p for p in (first.collection or "unrecognised", str(first.return_year or "")) if p)
    return f"{head}: {councils} council(s), {len(group)} file(s)"


def _doc(coll: schema.Collection) -> str:
    tables = ", ".join(f"`{coll.relation(t)}`" for t in coll.table_names) or "`published_statistics`"
    return (f"### {coll.title}\n\nOwner: {coll.owner}. Cadence: {coll.cadence}. Grain: {coll.grain}. "
            f"Formats: {', '.join(coll.formats)}.\n\nDeclared in `schemas/{coll.path.name}`; loads {tables}. "
            "Tasks: discover new files, read, validate (Great Expectations), load (atomic swap), publish "
            "(emits this collection's asset).")


def repository_refresh_dag():
    # AssetAny: a list of assets would wait until *every* collection had changed.
    @dag(dag_id="repository_refresh", schedule=AssetAny(*[collection_asset(c) for c in collection_ids()]),
         catchup=False, max_active_runs=1, tags=["csreturns", "repository"],
         description="Rebuild the DuckDB catalogue when any collection's Parquet changes",
         params={"repo": Param(None, type=["null", "string"])})
    def refresh():
        @task(outlets=[CATALOGUE_ASSET])
        def build_catalogue() -> str:
            from transforms.catalogue import publish
            from transforms.repository import Repository

            path = publish(Repository(_paths()[1]))
            print(f"catalogue rebuilt: {path}")
            return str(path)

        build_catalogue()

    return refresh()
