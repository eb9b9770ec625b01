"""Both sides of the parity test: our rules and the sector's validators on the same returns.

``ours(...)`` reads each return's files as the ingest does (``rules.received_tables``: normalised, every
column typed as far as each value allows, nothing quarantined or minimised) and runs every rule of the year
over all the returns in one batch (``rules.run_batch``). ``peers(...)`` runs the sector's validators in their own interpreter
(``var/peers``, made by ``ensure_peers``). Both answer ``{code: {(peer_table, row)}}``: the peers' table names
and 0-based data rows (ours are translated: the n-th row of a table in its file is row n - 1).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pandas as pd

from transforms.ingest import rules

ROOT = Path(__file__).resolve().parents[2]
PEER_PINS = ("csc-validator-be-903==0.1.17", "csc-validator-be-cin==0.1.13")
# One virtual environment per set of pins, kept under var/peers: a new pin installs beside the old one.
PEERS = ROOT / "var" / "peers" / "_".join(p.replace("csc-validator-be-", "").replace("==", "-") for p in PEER_PINS)
PEER_RUNNER = Path(__file__).resolve().parent / "peers_run.py"

TABLES_903 = {"header": "Header", "episodes": "Episodes", "reviews": "Reviews", "uasc": "UASC", "oc2": "OC2",
              "oc3": "OC3", "ad1": "AD1", "placed_adoption": "PlacedAdoption", "prev_perm": "PrevPerm",
              "missing": "Missing", "sw_episodes": "SWEpisodes", "dolo": "DoLo"}
TABLES_CIN = {"children": "ChildIdentifiers", "disabilities": "Disabilities", "episodes": "CINdetails",
              "assessments": "Assessments", "assessment_factors": "AssessmentFactorsList",
              "plans": "CINplanDates", "section47": "Section47", "cp_plans": "ChildProtectionPlans",
              "cp_reviews": "Reviews"}


def ensure_peers(python: str = "python3.11") -> Path:
    """The peers' interpreter, installing them on first use (about a minute) into ``var/peers/<pins>``
    (e.g. ``var/peers/903-0.1.17_cin-0.1.13``), reused by every later run with the same pins."""
    exe = PEERS / "bin" / "python"
    marker = PEERS / ".installed"
    if marker.exists() and marker.read_text() == " ".join(PEER_PINS):
        return exe
    subprocess.run([python, "-m", "venv", "--clear", str(PEERS)], check=True)
    subprocess.run([str(exe), "-m", "pip", "install", "--quiet", *PEER_PINS], check=True)
    marker.write_text(" ".join(PEER_PINS))
    return exe


def _answer_key(job: dict) -> str:
    """What a peer's answer depends on: the pins, this runner, the job and the bytes of every file it reads."""
    digest = hashlib.sha256(" ".join(PEER_PINS).encode() + PEER_RUNNER.read_bytes())
    digest.update(json.dumps({k: v for k, v in job.items() if k not in ("this_year", "prev_year", "xml")},
                             sort_keys=True).encode())
    for key in ("this_year", "prev_year", "xml"):
        for path in ([job[key]] if isinstance(job.get(key), str) else job.get(key) or []):
            digest.update(key.encode() + Path(path).name.encode() + hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:32]


def peers(jobs: list[dict], workdir: Path) -> dict:
    """Run the peers on ``jobs`` (see peers_run.py): one process per collection, the two side by side.
    Their answers keyed ``collection:id``. An answer is kept under ``var/peers/<pins>/answers/``, keyed by
    the pins, this runner and the bytes of the files the job reads (the generated returns are the same bytes
    for the same seed), so a later run only runs the peers on returns they have not seen; our rules always
    run afresh."""
    exe = ensure_peers()
    answers = PEERS / "answers"
    answers.mkdir(exist_ok=True)
    keys = {f'{j["collection"]}:{j["id"]}': _answer_key(j) for j in jobs}
    raw = {k: json.loads((answers / f"{h}.json").read_text()) for k, h in keys.items()
           if (answers / f"{h}.json").exists()}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    running = []
    todo = [j for j in jobs if f'{j["collection"]}:{j["id"]}' not in raw]
    for collection in sorted({j["collection"] for j in todo}):
        job_file, out_file = workdir / f"peer_jobs_{collection}.json", workdir / f"peer_flags_{collection}.json"
        job_file.write_text(json.dumps({"returns": [j for j in todo if j["collection"] == collection]}))
        running.append((subprocess.Popen([str(exe), str(PEER_RUNNER), str(job_file), str(out_file)], env=env,
                                         stdout=subprocess.DEVNULL), out_file))
    for proc, out_file in running:
        if proc.wait() != 0:
            raise RuntimeError(f"the sector's validators failed (exit {proc.returncode}) on {out_file.name}")
        for k, answer in json.loads(out_file.read_text()).items():
            raw[k] = answer
            if not answer.get("unreadable"):
                (answers / f"{keys[k]}.json").write_text(json.dumps(answer))
    return {k: {"flags": {c: {(t, r) for t, r in v} for c, v in a["flags"].items()}, "crashed": a["crashed"],
                "unreadable": a.get("unreadable"), "codes": set(a.get("codes") or [])} for k, a in raw.items()}


def ours(returns: list[dict]) -> list[dict[str, set]]:
    """Every rule of each return's year, all returns in one batch (``rules.run_batch``): per return (in the
    order given; each ``{collection, la, year, files, previous_files, landing}``) ``{code: {(peer_table,
    row)}}`` (row None: return-level)."""
    batch, ranks = [], []
    for r in returns:
        current = rules.received_tables(r["collection"], r["files"], r["year"], r["landing"])
        previous = (rules.received_tables(r["collection"], r["previous_files"], r["year"] - 1, r["landing"])
                    if r["previous_files"] else {})
        batch.append(rules.ReturnTables(r["collection"], r["la"], r["year"], current, previous))
        ranks.append({n: {int(s): i for i, s in enumerate(sorted(int(x) for x in f["source_row"]))}
                      for n, f in current.items()})
    out = []
    for r, found, rank in zip(returns, rules.run_batch(batch), ranks):
        names = TABLES_903 if r["collection"] == "ssda903" else TABLES_CIN
        flags: dict[str, set] = {}
        for code, t, s in zip(found["code"], found["table_name"], found["source_row"]):
            row = None if pd.isna(s) else rank.get(t, {}).get(int(s), -1)
            flags.setdefault(code, set()).add((names.get(t, t), row))
        out.append(flags)
    return out


# The peers' CIN tables: both child tables are our `children` (one row per child, same order).
_PEER_SAME = {"ChildCharacteristics": "ChildIdentifiers"}
# Codes the CIN validator spells differently from DfE's specification (ours -> theirs).
PEER_CODES = {"cin_census": {"8525": "8525Q", "8555": "8555Q", "8569": "8569Q", "8897": "8897Q", "4009": "4009Q",
                            "8863": "8863Q"}}


def peer_location(collection_id: str, table: str, row):
    return (_PEER_SAME.get(table, table), row)


def peer_code(collection_id: str, code: str) -> str:
    return PEER_CODES.get(collection_id, {}).get(code, code)
