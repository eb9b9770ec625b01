"""Run the sector's validators on returns and print what each rule flags, as JSON (run in var/peers).

This file runs under the peers' own interpreter (pandas < 2), never under csreturns': it imports nothing
from ``transforms``. Input: a JSON job file (argv[1]) with a list of returns::

    {"returns": [{"id": "852/2026", "collection": "ssda903", "year": 2026, "la": "E06000045",
                  "this_year": ["/path/header.csv", ...], "prev_year": ["/path/header.csv", ...]},
                 {"id": "852/2026", "collection": "cin_census", "year": 2026, "xml": "/path/CIN.xml"}]}

Output (argv[2]): ``{return id: {"flags": {code: [[table, row], ...]}, "crashed": [code, ...]}}`` where
``table`` is the peer's table name and ``row`` its 0-based row in that table (None: a return-level failure).

Known defects of the peers are worked around here, not copied into csreturns:
- 903: each rule gets its own deep copy of the data (the tool's shallow copy lets rule 365 fill open
  episodes' end dates for every later rule);
- 903: the national postcode list is cut to the return's own postcodes before the tool merges it (its
  merges against the whole list take more than a minute a return and find the same rows);
- CIN: the tool's report builder fails on a failure without a row number, so the issue tables of each
  rule's context are read directly.
"""
from __future__ import annotations

import copy
import json
import logging
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)


def run_903(job: dict) -> dict:
    from lac_validator.datastore import create_datastore
    from lac_validator.ingress import read_from_text
    from lac_validator.rules.ruleset_utils import get_year_ruleset

    files = [dict(name=Path(p).name, description=desc, file_content=Path(p).read_bytes())
             for key, desc in (("this_year", "This year"), ("prev_year", "Prev year"))
             for p in job.get(key) or []]
    dfs, extras = read_from_text(raw_files=files)
    _only_these_postcodes(dfs)
    metadata = {"collectionYear": str(job["year"]), "localAuthority": job["la"], **extras}
    store = create_datastore(dfs, metadata)
    flags, crashed = {}, []
    registry = get_year_ruleset(str(job["year"]))
    for code, rule in registry.items():
        # the tables deep (rules edit them in place); the metadata (postcode and authority lists) shared
        data = {k: (v.copy(deep=True) if k != "metadata" else dict(v)) for k, v in store.items()}
        try:
            result = rule.func(data) or {}
        except Exception:  # noqa: BLE001 - a peer rule that cannot run on this data is reported, not fatal
            crashed.append(code)
            continue
        found = sorted({(t, int(i)) for t, rows in result.items() for i in rows if i == i and i is not None})
        if found:
            flags[code] = found
    return {"flags": flags, "crashed": crashed, "codes": sorted(registry)}


def _only_these_postcodes(dfs: dict) -> None:
    """Load the postcode letters the return uses, then keep only its postcodes: a left merge on them finds
    exactly what it finds against the whole list."""
    from lac_validator import datastore

    values = {str(v).upper().replace(" ", "") for df in dfs.values() if hasattr(df, "columns")
              for c in ("HOME_POST", "PL_POST") if c in df.columns for v in df[c].dropna()}
    store = datastore.postcodes
    store._df = getattr(store, "_whole", store._df)  # the letters loaded for earlier returns, whole
    store.load_postcodes({v[0] for v in values if v})
    store._whole = store._df
    store._df = store._df[store._df["pcd_abbr"].isin(values)].reset_index(drop=True)


def run_cin(job: dict) -> dict:
    from cin_validator import cin_validator as cv
    from cin_validator.rule_engine import RuleContext
    from cin_validator.rules.ruleset_utils import get_year_ruleset

    root = ET.parse(job["xml"]).getroot()
    data = cv.enum_keys(cv.process_data(cv.convert_data(root)))
    flags, crashed = {}, []
    registry = get_year_ruleset(str(job["year"]))
    for rule in registry.values():
        ctx = RuleContext(rule)
        try:
            rule.func(copy.deepcopy(data), ctx)
            found = set()
            for issues in (ctx.type_zero_issues, ctx.type_one_issues, ctx.type_two_issues, ctx.type_three_issues):
                if len(issues):
                    for t, r in zip(issues["tables_affected"], issues["ROW_ID"]):
                        found.add((str(t), int(r)))
            if len(ctx.la_level_issues):
                found.add(("Header", None))
        except Exception:  # noqa: BLE001
            crashed.append(str(rule.code))
            continue
        if found:
            flags[str(rule.code)] = sorted(found, key=lambda x: (x[0], -1 if x[1] is None else x[1]))
    return {"flags": flags, "crashed": crashed, "codes": sorted(str(c) for c in registry)}


def main(job_path: str, out_path: str) -> None:
    jobs = json.loads(Path(job_path).read_text())["returns"]
    out = {}
    for job in jobs:
        key = f'{job["collection"]}:{job["id"]}'
        try:
            out[key] = run_903(job) if job["collection"] == "ssda903" else run_cin(job)
        except Exception as exc:  # noqa: BLE001 - a return the peer cannot read is reported, not fatal
            out[key] = {"flags": {}, "crashed": [], "unreadable": f"{type(exc).__name__}: {exc}"[:300]}
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
