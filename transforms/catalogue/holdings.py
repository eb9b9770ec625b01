"""What is declared and what the repository holds, per collection: `csreturns collections` and the
catalogue's ``collections`` relation.

Holdings are read from the partitions themselves (what is there now, after resubmissions and deletions),
not from the ledger; only the time of the last load comes from the ledger. Council returns are counted
by their ``la_code``/``return_year`` partitions; a published dataset by the councils and years in its
rows; a reference lookup by its years (model or snapshot) and the councils it names.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from transforms import schema

COLUMNS = {
    "collection": ("VARCHAR", "Collection id (schemas/)"),
    "kind": ("VARCHAR", "return (sent by each council), reference (national lookup), ees (one published dataset) "
                        "or published (catch-all for EES files no dataset schema claims)"),
    "title": ("VARCHAR", "What the collection is"),
    "owner": ("VARCHAR", "Who collects or publishes it"),
    "cadence": ("VARCHAR", "How often it is collected or published"),
    "grain": ("VARCHAR", "What one record is"),
    "formats": ("VARCHAR", "File formats read"),
    "change_years": ("VARCHAR", "Return years with schema changes declared (changes: in the schema)"),
    "relations": ("VARCHAR", "Relations of the catalogue that hold it"),
    "las": ("BIGINT", "Councils the repository holds data for (distinct old LA codes)"),
    "years": ("VARCHAR", "Years held (return years; for published data the year each period ends; "
                         "for reference data the model or snapshot year)"),
    "last_load": ("TIMESTAMP WITH TIME ZONE", "When a file of it was last loaded (load_ledger)"),
}
_PART = re.compile(r"^(\w+)=(.*)$")


def declared() -> pd.DataFrame:
    rows = []
    for coll in schema.collections().values():
        rows.append({"collection": coll.id, "kind": coll.kind, "title": coll.title, "owner": coll.owner,
                     "cadence": coll.cadence, "grain": coll.grain, "formats": "/".join(coll.formats),
                     "change_years": ", ".join(map(str, coll.change_years)), "relations": ", ".join(_relations(coll))})
    order = {"return": 0, "reference": 1, "ees": 2, "published": 3}
    rows.sort(key=lambda r: (order.get(r["kind"], 9), r["collection"]))
    return pd.DataFrame(rows, columns=list(COLUMNS)[:9])


def _relations(coll: schema.Collection) -> list[str]:
    if coll.kind == "ees":
        from transforms.catalogue.ees_views import view_name
        return [view_name(coll), coll.spec["relation"]]
    if coll.kind == "published":
        return [coll.spec["relation"]]
    return [coll.relation(t) for t in coll.table_names]


def holdings(repo_root: Path | str) -> pd.DataFrame:
    """Declared collections with what the repository at ``repo_root`` holds for each."""
    from transforms.store.repository import Repository

    repo = Repository(repo_root)
    out = declared()
    ledger = repo.ledger()
    loaded = ledger[ledger["status"].isin(["loaded", "partly_loaded"])].copy()
    owners = {c.dataset: c.id for c in schema.collections().values() if c.kind == "ees"}
    loaded["owner"] = [owners.get(d, "published") if c == "published" else c
                       for c, d in zip(loaded["collection"], loaded["dataset"])]
    last = loaded.groupby("owner")["received_at"].max().to_dict()
    las, years = [], []
    for coll_id, kind in zip(out["collection"], out["kind"]):
        la_set, year_set = _held(repo, schema.collection(coll_id), kind, owners)
        las.append(len(la_set))
        years.append(_years_text(year_set))
    out["las"] = pd.array(las, dtype="Int64")
    out["years"] = years
    out["last_load"] = pd.to_datetime(pd.Series([last.get(c) for c in out["collection"]], dtype=object), utc=True)
    return out


def _held(repo, coll: schema.Collection, kind: str, owners: dict) -> tuple[set[str], set[int]]:
    if kind == "return":
        las, years = set(), set()
        for f in repo.parquet.glob(f"collection={coll.id}/table=*/la_code=*/return_year=*/data.parquet"):
            parts = dict(_PART.match(p).groups() for p in f.parent.relative_to(repo.parquet).parts)
            las.add(parts["la_code"])
            years.add(int(parts["return_year"]))
        return las, years
    if kind == "reference":
        las, years = set(), set()
        for f in repo.parquet.glob(f"collection={coll.id}/table=*/dataset=*/data.parquet"):
            years.add(int(f.parent.name.split("=", 1)[1]))
            if "la_code" in pq.read_schema(f).names:
                las.update(v for v in pq.read_table(f, columns=["la_code"]).column(0).to_pylist() if v)
        return las, years
    if kind == "ees":
        datasets = [coll.dataset]
    else:
        base = repo.parquet / "collection=published" / "table=published_statistics"
        datasets = [p.name.split("=", 1)[1] for p in base.glob("dataset=*") if p.name.split("=", 1)[1] not in owners]
    las, years = set(), set()
    for ds in datasets:
        f = repo.parquet / "collection=published" / "table=published_statistics" / f"dataset={ds}" / "data.parquet"
        if not f.exists():
            continue
        t = pq.read_table(f, columns=["geographic_level", "old_la_code", "period_end"]).to_pandas()
        las.update(t.loc[t["geographic_level"] == "Local authority", "old_la_code"].dropna())
        years.update(int(d.year) for d in t["period_end"].dropna().unique())
    return las, years


def _years_text(years: set[int]) -> str:
    """2013-2025 for a run, 2021, 2025 for gaps."""
    runs, out = [], []
    for y in sorted(years):
        if runs and y == runs[-1][1] + 1:
            runs[-1][1] = y
        else:
            runs.append([y, y])
    for a, b in runs:
        out.append(str(a) if a == b else f"{a}-{b}")
    return ", ".join(out)
