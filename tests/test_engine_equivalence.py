"""The ingest engine's outputs, pinned: a change of engine (GX on pandas -> GX on DuckDB, issue 13) must load
the same rows, quarantine the same rows for the same reasons and write the same ledger.

The landing area is the public samples (SSDA903 CSV and XML, the CIN census, Annex A, CSWW, SEN2, a
published EES file and some hostile cases) plus three small generated councils with faults injected. It is
ingested through the stage functions (read, validate, load; not the DfE rules, which run after the loads
and have their own tests) and reduced to a canonical snapshot:

- every relation's partitions: rows, and a SHA-256 over the rows sorted (load ids left out: they are new
  on every run);
- the quarantine: rows per (relation, field, rule), and a SHA-256 over every quarantined row (file, row,
  field, rule, message, failures, protected raw values) sorted;
- the ledger: per file, status, rows in / loaded / quarantined, GX success, reason and normalisation counts.

``tests/golden/engine_outputs.json`` was first written by the pandas engine (commit "Pin the ingest engine's
outputs ... (issue 13)"); GX on DuckDB reproduces it row for row, every relation and the ledger, with one
difference, explained: a row whose key is empty was quarantined as "required, duplicate_key" (pandas takes
empty keys as equal) and is now quarantined as "required" alone (GX's SQL engine, like SQL, takes no empty
value as a duplicate of another). Same rows, same ledger counts; 46 rows' rule and message lose the
duplicate. The golden file now holds the DuckDB engine's snapshot, re-taken after merging issue 11's
intended changes (a CIN file whose header and name disagree on the year refused, header-only CSVs refused,
outward postcodes kept as districts, CIN source rows counted from the element's own line), checked one by one. To see a difference row by row, dump the
canonical rows with ``python tests/test_engine_equivalence.py DIR`` before and after a change and diff them.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import EES, SAMPLES, SHARED, need, put  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden" / "engine_outputs.json"
CASES = SHARED / "cases"


def build_landing(landing: Path) -> None:
    """The public samples, a few hostile cases and three generated councils (faults injected at 2%)."""
    from transforms.synthetic.generator import generate_landing

    for f in need(SAMPLES / "ssda903").glob("*.csv"):
        put(landing, f"301/ssda903/year=2018/{f.name}", f)
    put(landing, "302/ssda903/year=2018/fake_903.xml", SAMPLES / "ssda903" / "fake_903.xml")
    put(landing, "201/cin/CIN_Census_2024.xml", SAMPLES / "cin_census" / "CIN_Census_2024.xml")
    put(landing, "201/cin/CIN_Census_2026.xml", SAMPLES / "cin_census" / "CIN_Census_2026.xml")
    put(landing, "975/cin/fake_CIN_data.xml", SAMPLES / "cin_census" / "fake_CIN_data.xml")
    put(landing, "303/annex_a/year=2024/Annex_A_2024_Jan.xlsx", SAMPLES / "annex_a" / "Annex_A_2024_Jan.xlsx")
    put(landing, "301/csww/year=2022/social_work_workforce_2022.xml",
        SAMPLES / "csww" / "social_work_workforce_2022.xml")
    put(landing, "201/sen2/year=2025/sen2_sample_2025.xml", SAMPLES / "sen2" / "sen2_sample_2025.xml")
    put(landing, "published/csww_indicators_2017_to_2025.csv", need(EES / "csww_indicators_2017_to_2025.csv"))
    cases = {"lowercase-codes": "311", "trailing-decimal-codes": "312", "postcode-spacing": "313",
             "childid-normalisation": "314"}   # each case lands as council 301: give each its own code
    for case, la in cases.items():
        for f in sorted(need(CASES / case / "landing").rglob("*.csv")):
            rel = f.relative_to(CASES / case / "landing").parts
            put(landing, "/".join((la, *rel[1:])), f)
    generate_landing(landing, n_las=3, years=[2025], scale=0.1, error_rate=0.02,
                     xml_903_every=3, seed=7)


def ingest_stages(landing: Path, repo_root: Path) -> None:
    from transforms.ingest.landing import batches, discover
    from transforms.ingest.stages import load_stage, read_stage, validate_batch
    from transforms.store.repository import Repository

    repo = Repository(repo_root)
    for batch in batches(discover(landing)):
        for state in validate_batch(repo, [read_stage(repo, a) for a in batch]):
            load_stage(repo, state)


def _cell(v):
    if isinstance(v, float):
        return repr(round(v, 9))
    if isinstance(v, list):
        return [_cell(x) for x in v]
    if isinstance(v, dict):
        return {k: _cell(x) for k, x in sorted(v.items())}
    return v if v is None or isinstance(v, (bool, int, str)) else str(v)


def canonical_rows(repo_root: Path) -> dict[str, list[str]]:
    """Every output row as one JSON line, grouped by what it belongs to, sorted: the form compared."""
    out: dict[str, list[str]] = {}
    ledger = {}
    for f in sorted((repo_root / "ledger").glob("*.parquet")):
        row = pq.read_table(f).to_pylist()[0]
        ledger[row["load_id"]] = row["relpath"]
        out.setdefault("ledger", []).append(json.dumps(_cell({
            k: row[k] for k in ("relpath", "collection", "table", "la_code", "return_year", "status", "rows_in",
                                "rows_loaded", "rows_quarantined", "gx_success", "reason")}
            | {"normalised": dict(row["normalised"] or [])}), sort_keys=True))
    for f in sorted((repo_root / "parquet").rglob("*.parquet")):
        relation = f.parent.relative_to(repo_root / "parquet").as_posix()
        table = pq.read_table(f)
        table = table.drop_columns([c for c in ("load_id",) if c in table.column_names])
        out[f"rows {relation}"] = [json.dumps(_cell(r), sort_keys=True) for r in table.to_pylist()]
        out[f"schema {relation}"] = [str(table.schema.remove_metadata())]
    for f in sorted((repo_root / "quarantine").glob("*.parquet")):
        for r in pq.read_table(f).to_pylist():
            r["file"] = ledger.get(r.pop("load_id"))
            r["raw"] = dict(r["raw"] or [])
            out.setdefault("quarantine", []).append(json.dumps(_cell(r), sort_keys=True))
    return {k: sorted(v) for k, v in out.items()}


def snapshot(repo_root: Path) -> dict:
    rows = canonical_rows(repo_root)
    snap: dict = {"ledger": [json.loads(r) for r in rows.pop("ledger")], "relations": {}}
    quarantine = rows.pop("quarantine", [])
    by_reason: dict[str, int] = {}
    for line in quarantine:
        r = json.loads(line)
        key = f"{r['file'].split('/')[0]} {r['table_name']} {r['field']} {r['rule']}"
        by_reason[key] = by_reason.get(key, 0) + 1
    snap["quarantine"] = {"rows": len(quarantine), "by_reason": dict(sorted(by_reason.items())),
                          "sha256": hashlib.sha256("\n".join(quarantine).encode()).hexdigest()}
    for key, lines in rows.items():
        kind, relation = key.split(" ", 1)
        entry = snap["relations"].setdefault(relation, {})
        if kind == "schema":
            entry["schema_sha256"] = hashlib.sha256(lines[0].encode()).hexdigest()
        else:
            entry["rows"] = len(lines)
            entry["sha256"] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return snap


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    base = tmp_path_factory.mktemp("engine")
    build_landing(base / "landing")
    ingest_stages(base / "landing", base / "repository")
    return base / "repository"


def test_the_ledger_is_what_the_pinned_engine_wrote(ingested):
    assert snapshot(ingested)["ledger"] == json.loads(GOLDEN.read_text())["ledger"]


def test_the_quarantine_holds_the_same_rows_for_the_same_reasons(ingested):
    golden = json.loads(GOLDEN.read_text())["quarantine"]
    got = snapshot(ingested)["quarantine"]
    assert got["by_reason"] == golden["by_reason"]
    assert got["rows"] == golden["rows"]
    assert got["sha256"] == golden["sha256"]


def test_every_relation_loads_the_same_rows_with_the_same_types(ingested):
    golden = json.loads(GOLDEN.read_text())["relations"]
    got = snapshot(ingested)["relations"]
    assert {k: v["rows"] for k, v in got.items()} == {k: v["rows"] for k, v in golden.items()}
    assert {k: v["schema_sha256"] for k, v in got.items()} == {k: v["schema_sha256"] for k, v in golden.items()}
    assert {k: v["sha256"] for k, v in got.items()} == {k: v["sha256"] for k, v in golden.items()}


if __name__ == "__main__":  # python tests/test_engine_equivalence.py DIR [--golden]: dump canonical rows
    os.environ.setdefault("CSRETURNS_PSEUDONYM_KEY", "test-key-not-for-production-use-0001")
    target = Path(sys.argv[1])
    build_landing(target / "landing")
    ingest_stages(target / "landing", target / "repository")
    for key, lines in canonical_rows(target / "repository").items():
        name = key.replace("/", "_").replace(" ", "__").replace("=", "-")
        (target / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    if "--golden" in sys.argv:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(snapshot(target / "repository"), indent=1, sort_keys=True) + "\n")
