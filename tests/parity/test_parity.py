"""Parity with the sector's validators: per rule code, the same (file, row) pairs flagged on the same returns.

The sector's open validators (``csc-validator-be-903`` 0.1.17, ``csc-validator-be-cin`` 0.1.13, the councils'
analyst network's) run in their own interpreter under ``var/peers`` (installed on first use, then reused).
Both tools read the same returns: the shared CIN census samples of the years both tools carry rules for
(2024 and 2026; the shared SSDA903 sample is a 2017/18 return, older than either tool's rules) and two
generated councils over two years (2026 returns, checked against their 2025 returns). Every disagreement on a code we declare must be listed, with its reason, in ``known_disagreements.yaml``
(a defect in the other tool, a DfE change the tool has not followed, or an artefact of typing: an unparseable
value is NULL to our rules); any other disagreement fails. Codes the peers run and we do not are listed there
too, each with the reason.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.parity import harness
from transforms.ingest import rules
from transforms.ingest.landing import identify
from transforms.ingest.reference_data import la_codes


HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[3] / "shared"
KNOWN = yaml.safe_load((HERE / "known_disagreements.yaml").read_text(encoding="utf-8"))


def _ons(la: str) -> str:
    codes = la_codes()
    found = codes.loc[codes["la_code"] == la, "ons_code"]
    return found.iloc[0] if len(found) else "E09000000"


@pytest.fixture(scope="module")
def returns(tmp_path_factory) -> list[dict]:
    """The returns both tools read: {collection, la, year, files, previous_files, landing}."""
    from transforms.synthetic.generator import generate_landing

    landing = tmp_path_factory.mktemp("landing")
    generate_landing(landing, n_las=2, years=(2025, 2026), seed=12, scale=0.05, linked_returns=False,
                     xml_903_every=0)
    out = []
    for la_dir in sorted(p for p in landing.iterdir() if p.is_dir()):
        for year in (2026,):
            cur = sorted((la_dir / "ssda903" / f"year={year}").glob("*.csv"))
            prev = sorted((la_dir / "ssda903" / f"year={year - 1}").glob("*.csv"))
            out.append(dict(collection="ssda903", la=la_dir.name, year=year, files=cur, previous_files=prev,
                            landing=landing))
        for xml in sorted((la_dir / "cin_census").glob("*.xml")):
            out.append(dict(collection="cin_census", la=la_dir.name, year=identify(xml, landing).return_year,
                            files=[xml], previous_files=[], landing=landing))
    samples = tmp_path_factory.mktemp("samples")
    for xml in sorted((SHARED / "samples" / "cin_census").glob("*.xml")):
        target = samples / "301" / xml.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(xml, target)
        year = identify(target, samples).return_year
        if year and year >= 2023:
            out.append(dict(collection="cin_census", la="301", year=year, files=[target], previous_files=[],
                            landing=samples))
    return out


def _job(r: dict) -> dict:
    job = {"id": f"{r['la']}/{r['year']}/{r['files'][0].name}", "collection": r["collection"],
           "year": r["year"], "la": _ons(r["la"])}
    if r["collection"] == "ssda903":
        job["this_year"] = [str(p) for p in r["files"]]
        job["prev_year"] = [str(p) for p in r["previous_files"]]
    else:
        job["xml"] = str(r["files"][0])
    return job


def _accepted(collection: str, code: str, direction: str) -> bool:
    for item in KNOWN.get("disagreements") or []:
        if item["collection"] == collection and str(item["code"]) == code \
                and item.get("direction", "both") in ("both", direction):
            return True
    return False


def test_the_list_of_known_disagreements_gives_a_reason_for_each():
    for item in KNOWN.get("disagreements") or []:
        assert item.get("reason") and item.get("kind") in ("peer_defect", "dfe_change", "typing"), item
    for item in KNOWN.get("not_implemented") or []:
        assert item.get("reason") and item.get("codes"), item


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.timeout(600)  # about two minutes here: the peers, one process per collection, dominate
def test_our_rules_flag_the_same_rows_as_the_sector_validators(returns, tmp_path):
    jobs = [_job(r) for r in returns]
    peer = harness.peers(jobs, tmp_path)
    problems = []
    for r, job, ours in zip(returns, jobs, harness.ours(returns)):
        key = f"{r['collection']}:{job['id']}"
        assert not peer[key]["unreadable"], f"the sector validator cannot read {key}: {peer[key]['unreadable']}"
        theirs = {c: {harness.peer_location(r["collection"], t, row) for t, row in v}
                  for c, v in peer[key]["flags"].items()}
        problems += disagreements(r["collection"], r["year"], key, ours, theirs)
        ours_codes = {harness.peer_code(r["collection"], x.code) for x in rules.rules(r["collection"])}
        excused = {c for item in KNOWN.get("not_implemented") or [] if item["collection"] == r["collection"]
                   for c in item["codes"]}
        missing = peer[key]["codes"] - ours_codes - excused
        if missing:
            problems.append(f"{key}: the peer runs rules we neither declare nor explain: {sorted(missing)}")
    assert not problems, "\n".join(problems)


def disagreements(collection: str, year: int, key: str, ours: dict[str, set], theirs: dict[str, set]) -> list[str]:
    """Per rule code of ``year``, the rows one tool flags and the other does not, unless listed as known."""
    problems = []
    for rule in rules.rules(collection):
        if not rule.applies_to(year):
            continue
        a, b = ours.get(rule.code, set()), theirs.get(harness.peer_code(collection, rule.code), set())
        if a - b and not _accepted(collection, rule.code, "ours_only"):
            problems.append(f"{key} {rule.code}: only we flag {sorted(a - b, key=str)[:5]} ({len(a - b)})")
        if b - a and not _accepted(collection, rule.code, "peer_only"):
            problems.append(f"{key} {rule.code}: only the peer flags {sorted(b - a, key=str)[:5]} ({len(b - a)})")
    return problems


def test_a_disagreement_not_on_the_list_fails():
    """The comparison itself: a row only one side flags, on a code with no reviewed entry, is reported."""
    flagged = {"8500": {("ChildIdentifiers", 3)}}
    assert disagreements("cin_census", 2026, "x", flagged, flagged) == []
    assert disagreements("cin_census", 2026, "x", flagged, {})[0].startswith("x 8500: only we flag")
    assert disagreements("cin_census", 2026, "x", {}, flagged)[0].startswith("x 8500: only the peer flags")
    # a reviewed entry excuses its direction only
    assert disagreements("cin_census", 2026, "x", {"8825Q": {("CINdetails", 1)}}, {}) == []
    assert disagreements("cin_census", 2026, "x", {}, {"8825Q": {("CINdetails", 1)}}) != []
