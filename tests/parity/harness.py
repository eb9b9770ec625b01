"""Both sides of the parity test: our rules and the sector's validators on the same returns.

``ours(...)`` reads a return's files with our readers, normalises and types every column as far as each value
allows (an unparseable value becomes NULL, as the engine sees a return before quarantine) and runs every rule
of the year in one DuckDB connection. ``peers(...)`` runs the sector's validators in their own interpreter
(``var/peers``, made by ``ensure_peers``). Both answer ``{code: {(peer_table, row)}}``: the peers' table names
and 0-based data rows (ours are translated: the n-th row of a table in its file is row n - 1).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa

from transforms import schema
from transforms.ingest import rules
from transforms.ingest.landing import identify
from transforms.ingest.normalise import normalise_table
from transforms.ingest.readers.csv_tables import read_table
from transforms.ingest.readers.xml_records import read_records
from transforms.ingest.validate import to_typed

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "var" / "peers"
PEER_PINS = ("csc-validator-be-903==0.1.17", "csc-validator-be-cin==0.1.13")
PEER_RUNNER = Path(__file__).resolve().parent / "peers_run.py"

TABLES_903 = {"header": "Header", "episodes": "Episodes", "reviews": "Reviews", "uasc": "UASC", "oc2": "OC2",
              "oc3": "OC3", "ad1": "AD1", "placed_adoption": "PlacedAdoption", "prev_perm": "PrevPerm",
              "missing": "Missing", "sw_episodes": "SWEpisodes", "dolo": "DoLo"}
TABLES_CIN = {"children": "ChildIdentifiers", "disabilities": "Disabilities", "episodes": "CINdetails",
              "assessments": "Assessments", "assessment_factors": "AssessmentFactorsList",
              "plans": "CINplanDates", "section47": "Section47", "cp_plans": "ChildProtectionPlans",
              "cp_reviews": "Reviews"}


def ensure_peers(python: str = "python3.11") -> Path:
    """The peers' interpreter, installing them into ``var/peers`` on first use (about a minute)."""
    exe = PEERS / "bin" / "python"
    marker = PEERS / ".installed"
    if marker.exists() and marker.read_text() == " ".join(PEER_PINS):
        return exe
    subprocess.run([python, "-m", "venv", "--clear", str(PEERS)], check=True)
    subprocess.run([str(exe), "-m", "pip", "install", "--quiet", *PEER_PINS], check=True)
    marker.write_text(" ".join(PEER_PINS))
    return exe


def peers(jobs: list[dict], workdir: Path) -> dict:
    """Run the peers on ``jobs`` (see peers_run.py); their answers keyed ``collection:id``."""
    exe = ensure_peers()
    job_file, out_file = workdir / "peer_jobs.json", workdir / "peer_flags.json"
    job_file.write_text(json.dumps({"returns": jobs}))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([str(exe), str(PEER_RUNNER), str(job_file), str(out_file)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    raw = json.loads(out_file.read_text())
    return {k: {"flags": {c: {(t, r) for t, r in v} for c, v in a["flags"].items()}, "crashed": a["crashed"],
                "unreadable": a.get("unreadable"), "codes": set(a.get("codes") or [])} for k, a in raw.items()}


def typed_tables(collection_id: str, files: list[Path], year: int, landing: Path) -> dict[str, pd.DataFrame]:
    """Every table in ``files`` as the rules see it: normalised, typed as far as each value allows."""
    coll = schema.collection(collection_id)
    frames: dict[str, list[pd.DataFrame]] = {}
    for path in files:
        arrival = identify(path, landing)
        if collection_id == "ssda903":
            raw = read_table(path, coll.table(arrival.table, year)).tables
        else:
            raw = read_records(path, coll, [t for t in coll.tables(year) if t.collected_in(year)]).tables
        for name, df in raw.items():
            spec = coll.table(name, year)
            table, _ = normalise_table(pa.Table.from_pandas(df, preserve_index=False), spec)
            clean = table.to_pandas()
            typed = to_typed(clean, spec, coll.date_format)
            keep = [c for c in typed.columns if c in rules.table_columns(coll, name)]
            frames.setdefault(name, []).append(typed[keep])
    return {n: pd.concat(f, ignore_index=True) for n, f in frames.items()}


def ours(collection_id: str, la_code: str, year: int, current: dict[str, pd.DataFrame],
         previous: dict[str, pd.DataFrame]) -> dict[str, set]:
    """Every rule of ``year`` on one return: {code: {(peer_table, row)}} (row None: return-level)."""
    coll = schema.collection(collection_id)
    names = TABLES_903 if collection_id == "ssda903" else TABLES_CIN
    con = rules._base().cursor()
    try:
        sources: dict[str, dict[str, str]] = {"": {}, "previous_": {}}
        for side, given in (("", current), ("previous_", previous)):
            for name, frame in given.items():
                view = f"_{side}{name}_df"
                con.register(view, rules._case_frame(coll, name, frame))
                sources[side][name] = f'"{view}"'
        rules.connect(coll, year, sources[""], sources["previous_"], la_code, con=con)
        rank = {n: {int(s): i for i, s in enumerate(sorted(int(x) for x in f["source_row"]))}
                for n, f in current.items()}
        out: dict[str, set] = {}
        for r in rules.rules(collection_id):
            if not r.applies_to(year):
                continue
            found = rules._run_rule(con, r, year)
            flags = set()
            for t, s in zip(found["table_name"], found["source_row"]):
                if pd.isna(s):
                    flags.add((names.get(t, t), None))
                else:
                    flags.add((names.get(t, t), rank.get(t, {}).get(int(s), -1)))
            if flags:
                out[r.code] = flags
        return out
    finally:
        con.close()


# The peers' CIN tables: both child tables are our `children` (one row per child, same order).
_PEER_SAME = {"ChildCharacteristics": "ChildIdentifiers"}
# Codes the CIN validator spells differently from DfE's specification (ours -> theirs).
PEER_CODES = {"cin_census": {"8525": "8525Q", "8555": "8555Q", "8569": "8569Q", "8897": "8897Q", "4009": "4009Q",
                            "8863": "8863Q"}}


def peer_location(collection_id: str, table: str, row):
    return (_PEER_SAME.get(table, table), row)


def peer_code(collection_id: str, code: str) -> str:
    return PEER_CODES.get(collection_id, {}).get(code, code)
