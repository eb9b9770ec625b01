"""Parity with the sector's validators: per rule code, the same (file, row) pairs flagged on the same returns.

The sector's open validators (``csc-validator-be-903`` 0.1.17, ``csc-validator-be-cin`` 0.1.13, the councils'
analyst network's) run in their own interpreter under ``var/peers`` (installed on first use, then reused).
Both tools read the same returns: two generated councils over two years (2026 returns, checked against
their 2025 returns) and, in a test of their own (a strict xfail until its disagreements are reviewed), the
shared CIN census samples of the years both tools carry rules for (the shared SSDA903 sample is a 2017/18
return, older than either tool's rules). The peers' answers are kept under ``var/peers/<pins>/answers``,
keyed by the bytes they read (``harness.peers``). Every disagreement on a code we declare must be listed, with its reason, in ``known_disagreements.yaml``
(a defect in the other tool, a DfE change the tool has not followed, or an artefact of typing: an unparseable
value is NULL to our rules); any other disagreement fails. Codes the peers run and we do not are listed there
too, each with the reason.
"""
from __future__ import annotations

import re
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
    return out


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[dict]:
    """The shared CIN census samples (of 2023 and later), each in its own council's folder."""
    out = []
    samples = tmp_path_factory.mktemp("samples")
    taken = 0
    for xml in sorted((SHARED / "samples" / "cin_census").glob("*.xml")):
        la = re.search(r"<LEA>\s*(\d{3})\s*</LEA>", xml.read_text(encoding="utf-8", errors="replace"))
        target = samples / (la.group(1) if la else "301") / xml.name  # in its own council's folder
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(xml, target)
        arrival = identify(target, samples)
        if arrival.return_year and arrival.return_year >= 2023:
            out.append(dict(collection="cin_census", la=arrival.la_code, year=arrival.return_year, files=[target],
                            previous_files=[], landing=samples))
            taken += 1
    assert taken >= 2, "the shared CIN census samples of 2024 and 2026 must be among the returns compared"
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
# About a minute once the peers' answers are kept (var/peers/<pins>/answers); the first run, peers included,
# about three minutes on 2 busy cores (our side runs while the peers do).
@pytest.mark.timeout(900)
def test_our_rules_flag_the_same_rows_as_the_sector_validators(returns, tmp_path):
    _compare(returns, tmp_path)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.xfail(strict=True, reason=(
    "Not yet resolved (found 2026-11-29; 8565, 1103, 1104, 1105, 2889 and 4016 since fixed: they flag every row "
    "compared): on both shared samples, 2023/24 returns that send the 2024/25 element <Sex> instead of "
    "<GenderCurrent>, the peer alone flags 4180 on a child whose Sex is 1. DfE's 2023/24 rule asks for "
    "GenderCurrent, which is absent; our reader takes either element in any year. Needs the reader to read each "
    "year's element only (a schema change beyond the rules). Strict: passes, and so fails here, once resolved."))
def test_the_shared_cin_samples_flag_the_same_rows(samples, tmp_path):
    _compare(samples, tmp_path)


def _compare(returns: list[dict], tmp_path) -> None:
    jobs = [_job(r) for r in returns]
    peer, our_flags = harness.peers(jobs, tmp_path, while_running=lambda: harness.ours(returns))
    problems = []
    for r, job, ours in zip(returns, jobs, our_flags):
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
