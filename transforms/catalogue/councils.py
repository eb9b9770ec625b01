"""The ``councils`` relation: every English council with children's services, so nobody joins names by hand.

One row per council of ``schemas/councils.yaml`` (its 3-digit DfE code, ONS code, name and region as DfE's
statistics give them, and the reorganisations of 2019, 2021 and 2023 as predecessor and successor codes),
with its statistical neighbours from the latest groupings the repository holds (the ``statistical_neighbours``
relation, loaded from ``LANDING/reference/statistical_neighbours/``: DfE's children's services statistical
neighbour benchmarking tool), closest first. Built as a table at every catalogue build.
"""
from __future__ import annotations

import pandas as pd

from transforms import schema

COLUMNS = {
    "la_code": ("VARCHAR", "3-digit DfE (old LA) code, as every relation's la_code"),
    "ons_code": ("VARCHAR", "9-character ONS code the council has now (new_la_code in published statistics)"),
    "other_ons_codes": ("VARCHAR[]", "Other ONS codes under which the council's rows have been published"),
    "la_name": ("VARCHAR", "Council name as DfE publishes it"),
    "region_code": ("VARCHAR", "Region (E12) or Inner/Outer London (E13) code, as EES files give it"),
    "region": ("VARCHAR", "Region name as EES files give it (Inner London, Outer London, North East, ...)"),
    "valid_from": ("DATE", "First day of a council created by reorganisation (1 April); null for older councils"),
    "valid_until": ("DATE", "Last day of a council abolished by reorganisation (31 March); null while it exists"),
    "predecessors": ("VARCHAR[]", "Codes of councils whose area passed (in whole or part) to this one"),
    "successors": ("VARCHAR[]", "Codes of the councils that took over an abolished council's area"),
    "statistical_neighbours": ("VARCHAR[]", "Codes of its statistical neighbours, closest first, from the latest "
                                            "groupings in statistical_neighbours (empty when none is loaded)"),
    "neighbours_edition": ("INTEGER", "Year of the statistical neighbour groupings used (null when none)"),
}
RELATIONS = {"councils": ("council", "Every English council with children's services: DfE and ONS codes, name, "
                                     "region, predecessors and successors (schemas/councils.yaml) and its "
                                     "statistical neighbours from the latest groupings loaded", COLUMNS)}


def register() -> pd.DataFrame:
    """``schemas/councils.yaml`` as one row per council (the columns above but the neighbours)."""
    declared = schema.councils()
    rows = [{"la_code": code, "ons_code": c.ons, "other_ons_codes": [o.code for o in c.other_ons],
             "la_name": c.name, "region_code": c.region_code, "region": c.region,
             "valid_from": c.from_, "valid_until": c.until, "predecessors": declared.predecessors(code),
             "successors": list(c.successors)}
            for code, c in sorted(declared.councils.items())]
    return pd.DataFrame(rows)


def build_councils(con) -> None:
    """Create the table ``councils`` in ``con``, which must already hold the ``statistical_neighbours`` relation."""
    con.register("_councils_register", register())
    try:
        con.execute("""
            CREATE OR REPLACE TABLE councils AS
            WITH latest AS (SELECT max(return_year) AS edition FROM statistical_neighbours),
                 neighbours AS (
                   SELECT n.la_code, list(n.neighbour_code ORDER BY n."rank") AS statistical_neighbours,
                          any_value(n.return_year) AS neighbours_edition
                   FROM statistical_neighbours n JOIN latest ON n.return_year = latest.edition
                   GROUP BY n.la_code)
            SELECT r.la_code, r.ons_code, CAST(r.other_ons_codes AS VARCHAR[]) AS other_ons_codes, r.la_name,
                   r.region_code, r.region, CAST(r.valid_from AS DATE) AS valid_from,
                   CAST(r.valid_until AS DATE) AS valid_until,
                   CAST(r.predecessors AS VARCHAR[]) AS predecessors, CAST(r.successors AS VARCHAR[]) AS successors,
                   coalesce(n.statistical_neighbours, CAST([] AS VARCHAR[])) AS statistical_neighbours,
                   CAST(n.neighbours_edition AS INTEGER) AS neighbours_edition
            FROM _councils_register r LEFT JOIN neighbours n USING (la_code)
            ORDER BY r.la_code""")
    finally:
        con.unregister("_councils_register")
