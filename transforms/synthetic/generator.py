"""Synthetic landing area: realistic SSDA903 and CIN census returns for many councils.

Real child-level returns are sensitive, so readers, validation and indicators are developed and
load-tested against this generator. Each council is simulated on one continuous timeline (children,
periods of care, episodes, referrals) and then cut into yearly returns the way a case-management
system reports them at 31 March: open episodes have no end date, a child in care at 31 March
reappears in the next return with the same episode, and dates after the reference date are not
yet known. Everything is vectorised with numpy, and councils run in parallel, so a national year
(153 councils, ~85,000 children looked after, ~650,000 referrals) takes well under a minute.

Return year YYYY is the collection year 1 April YYYY-1 to 31 March YYYY.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from transforms import schema, settings
from transforms.synthetic.common import (  # noqa: F401
    YEAR,
    _add_working_days,
    _add_years,
    _by_child,
    _d,
    _el,
    _fmt,
    _frame,
    _pick,
    _postcodes,
    _render,
    _return_year,
    _upns,
    year_bounds,
)
from transforms.synthetic.linked import write_linked_returns

SN_MODEL = Path("reference") / "statistical_neighbours" / "sn_model_2025_wide.csv"   # under CSRETURNS_SHARED


# Columns, dates and code lists come from schemas/ (never re-declared here); the generator names two
# SSDA903 tables (and their files) as councils' exports do.
SSDA903 = schema.collection("ssda903")
SCHEMA_TABLE = {"placed_for_adoption": "placed_adoption", "previous_permanence": "prev_perm"}
SSDA903_TABLES = ("header", "episodes", "reviews", "uasc", "oc2", "oc3", "ad1", "placed_for_adoption",
                  "previous_permanence", "missing", "sw_episodes")


def ssda903_columns(table: str) -> list[str]:
    """The columns of an SSDA903 table in file order, as ``schemas/ssda903.yaml`` declares them."""
    return SSDA903.table(SCHEMA_TABLE.get(table, table)).names


SSDA903_COLUMNS = {name: ssda903_columns(name) for name in SSDA903_TABLES}
SW_EPISODES_FROM = SSDA903.table("sw_episodes").first_year
# Every date field of the SSDA903 and CIN census schemas (by field and XML name), where a fault can be a bad
# date; DATE_PERM is text in the schema (DfE allows a partial date, zz/zz/yyyy) but is written in full here.
DATE_COLUMNS = {name for coll in ("ssda903", "cin_census") for table in schema.collection(coll).tables()
                for col in table.columns if col.type == "date" for name in (col.name, *col.xml)} | {"DATE_PERM"}


def place_codes(year: int) -> set[str]:
    """PLACE codes valid in a return year, from the schema's yearly changes (2025 drops H5 and P2 and adds
    K3; 2026 adds Z11-Z14)."""
    return set(SSDA903.table("episodes", year).column("PLACE").codes)


# ---- code distributions (rough national shapes; weights need not sum to 1) ----
ETHNIC_ENGLAND = {"WBRI": 72, "WIRI": .5, "WIRT": .4, "WOTH": 4, "WROM": 1, "MWBC": 4, "MWBA": 1,
                  "MWAS": 1.5, "MOTH": 2.5, "AIND": 1, "APKN": 2, "ABAN": .6, "AOTH": 1, "BCRB": .6,
                  "BAFR": 2, "BOTH": .6, "CHNE": .2, "OOTH": 2.5, "REFU": 1, "NOBT": 1}
ETHNIC_LONDON = {"WBRI": 26, "WIRI": 1, "WIRT": .5, "WOTH": 9, "WROM": 1, "MWBC": 7, "MWBA": 2,
                 "MWAS": 2, "MOTH": 6, "AIND": 2, "APKN": 2, "ABAN": 4, "AOTH": 4, "BCRB": 6,
                 "BAFR": 12, "BOTH": 6, "CHNE": .5, "OOTH": 7, "REFU": 1.5, "NOBT": 1.5}
ETHNIC_UASC = {"AOTH": 30, "BAFR": 30, "OOTH": 25, "BOTH": 10, "WOTH": 5}
CLA_NEED = {"N1": 63, "N2": 3, "N3": 3, "N4": 8, "N5": 13, "N6": 2, "N7": .3, "N8": 5}
ENTRY_LS = {"V2": 42, "C1": 36, "L1": 12, "L2": 6, "C2": 4}
BABY_LS = {"C1": 55, "V2": 25, "L2": 12, "L1": 8}
SHORT_EXIT = {"E4A": 50, "E13": 12, "E4B": 6, "E8": 10, "E41": 6, "E3": 3, "E16": 1, "E2": .3,
              "E45": 2, "E47": 3}
LONG_EXIT = {"E4A": 33, "E45": 8, "E46": 3, "E47": 9, "E48": 3, "E41": 9, "E13": 10, "E8": 12,
             "E3": 2, "E9": 1, "E2": .3}
AT18_EXIT = {"E17": 18, "E5": 42, "E6": 12, "E7": 2, "E8": 26}
UASC_AT18_EXIT = {"E5": 45, "E6": 20, "E8": 25, "E17": 10}
FOSTER = {"U1": 5, "U2": 1, "U3": 11, "U4": 20, "U5": 2, "U6": 61}
PLACE_UNDER10 = {"FOSTER": 86, "P1": 8, "K2": 1.5, "R3": 1.5, "Z1": 1, "R2": .5, "S1": .5}
PLACE_10_15 = {"FOSTER": 70, "K2": 18, "P1": 6, "S1": 2, "K1": .6, "Z1": 1, "R5": .4, "T4": .3}
PLACE_16_17 = {"FOSTER": 45, "K2": 13, "SEMI": 30, "P2": 3, "P1": 4, "R5": 1, "S1": 1, "Z1": 2,
               "K1": .5, "P3": .5}
PLACE_UASC = {"SEMI": 55, "FOSTER": 33, "K2": 8, "Z1": 4}
PROVIDER = {"U1": {"PR1": 1}, "U2": {"PR1": 1}, "U3": {"PR1": 1},
            "U4": {"PR1": 60, "PR4": 36, "PR5": 4}, "U5": {"PR1": 60, "PR4": 36, "PR5": 4},
            "U6": {"PR1": 60, "PR4": 36, "PR5": 4}, "K2": {"PR4": 78, "PR1": 15, "PR5": 7},
            "K1": {"PR1": 50, "PR2": 50}, "H5": {"PR4": 60, "PR1": 30, "PR5": 10},
            "K3": {"PR4": 60, "PR1": 30, "PR5": 10}, "P2": {"PR4": 60, "PR1": 40},
            "P1": {"PR0": 1}, "P3": {"PR4": 1}, "A5": {"PR1": 55, "PR2": 15, "PR5": 30},
            "A6": {"PR1": 55, "PR2": 15, "PR5": 30}, "S1": {"PR4": 60, "PR3": 20, "PR5": 20},
            "R2": {"PR3": 1}, "R3": {"PR3": 1}, "R5": {"PR3": 1}, "T4": {"PR1": 1},
            "Z1": {"PR4": 50, "PR1": 50}, "Z11": {"PR4": 1}, "Z12": {"PR4": 1}, "Z13": {"PR1": 1},
            "Z14": {"PR4": 1}}
NO_URN = {"P1", "P2", "P3", "R2", "R5", "T4", "Z1", "Z11", "Z12", "Z13", "Z14"}
PLACE_CHANGE = {"LAREQ": 30, "CARPL": 18, "CHILD": 10, "CREQO": 10, "CREQB": 5, "PLACE": 8,
                "OTHER": 10, "CLOSE": 3, "ALLEG": 2, "STAND": 2, "APPRR": 1, "CUSTOD": 1}
REVIEW_CODE = {"PN1": 40, "PN2": 15, "PN3": 15, "PN4": 10, "PN5": 8, "PN6": 7, "PN7": 5}
SW_REASON = {"MANAGE": 25, "LEFTRL": 25, "ORGRST": 10, "CHCHAN": 12, "PCCHAN": 8, "ABSENC": 6,
             "FCONTA": 5, "TSPROC": 4, "SWDIED": .1, "OTHERS": 8}
IN_TOUCH = {"YES": 88, "NO": 5, "REFU": 2, "NREQ": 2.5, "RHOM": 2, "DIED": .2}
ACTIV_17_18 = {"F2": 45, "P2": 4, "F3": 15, "P3": 5, "G4": 6, "G5": 20, "G6": 3, "F1": 2}
ACTIV_19_21 = {"F1": 7, "P1": 1, "F2": 12, "P2": 2, "F3": 24, "P3": 8, "G4": 10, "G5": 27, "G6": 9}
ACCOM = {"B": 12, "C": 2, "D": 12, "E": 5, "G": .5, "H": .2, "K": 3, "R": 1, "S": 1, "T": 5,
         "U": 38, "V": 2, "W": .5, "X": 3, "Y": 5, "Z": 10}
PREV_PERM = {"Z1": 88, "P1": 2, "P2": 6, "P3": 4}
SEX_ADOPTERS = {"MF": 70, "FF": 8, "MM": 7, "F1": 13, "M1": 2}
REFERRAL_SOURCE = {"1A": 3, "1B": 2, "1C": 2, "1D": 2, "2A": 15, "2B": 4, "3A": 5, "3B": 3, "3C": 2,
                   "3D": 2, "3E": 3, "3F": 2, "4": 2, "5A": 6, "5B": 3, "5C": 2, "5D": 2, "6": 28,
                   "7": 2, "8": 5, "9": 1, "10": 2}
CIN_NEED = {"N1": 55, "N2": 5, "N3": 4, "N4": 10, "N5": 16, "N6": 3, "N7": .5, "N8": 3, "N9": 3.5}
ABUSE = {"NEG": 50, "EMO": 37, "PHY": 7, "SAB": 4, "MUL": 2}
FACTORS = {"1A": 2, "1B": 14, "1C": 2, "2A": 5, "2B": 14, "2C": 3, "3A": 11, "3B": 32, "3C": 5,
           "4A": 18, "4B": 33, "4C": 5, "5A": 12, "5B": 3, "5C": 1.5, "6A": 5, "6B": 5, "6C": 1,
           "7A": 4, "8B": .4, "9A": 1.2, "10A": 3, "11A": 2.4, "12A": .4, "13A": 1.7, "14A": 7,
           "15A": 5, "16A": 18, "17A": 19, "18B": 12, "18C": 2.5, "19B": 2.5, "19C": 3.7,
           "22A": .2, "23A": .4, "24A": 3.2, "20": 16}
DISABILITY = {"AUT": 30, "BEH": 12, "COMM": 12, "CON": 8, "DDA": 5, "HAND": 3, "HEAR": 4, "INC": 4,
              "LD": 18, "MOB": 6, "PC": 4, "VIS": 3}

# Invalid values used to fault a small share of rows, so that validation has something to quarantine.
BAD_CODE = {"SEX": "3", "ETHNIC": "WHIT", "RNE": "Q", "LS": "C9", "CIN": "N9", "PLACE": "X9",
            "PLACE_PROVIDER": "PR7", "REC": "E99", "REVIEW_CODE": "PN9", "MISSING": "X",
            "IN_TOUCH": "MAYBE", "ACTIV": "Q1", "ACCOM": "Q9", "PREV_PERM": "P9", "SW_REASON": "LEFT",
            "PrimaryNeedCode": "N10", "ReferralSource": "11", "ReasonForClosure": "RC0",
            "Ethnicity": "WHIT"}
BAD_TEXT = ("unknown", "n/k – awaiting court", "TBC – see notes")  # the dash is not ASCII

POSTCODE_AREAS = ("AL B BA BB BD BH BL BN BS CB CH CM CO CT CV CW DE DH DL DN DY EX GL GU HD HP HU "
                  "HX IP L LA LE LN LS LU M ME MK NE NG NN NR OL OX PE PL PO PR RG S SG SK SL SN SO "
                  "SR SS ST TA TF TN TQ TR TS WA WF WN WR WS WV YO").split()
LONDON_AREAS = "E N NW SE SW W IG RM HA UB TW KT SM CR BR DA EN".split()
FALLBACK_LAS = {"202": "Camden", "301": "Barking and Dagenham", "302": "Barnet", "330": "Birmingham",
                "350": "Bolton", "380": "Bradford", "810": "Kingston upon Hull, City of",
                "821": "Luton", "855": "Leicestershire", "873": "Cambridgeshire", "878": "Devon",
                "886": "Kent", "916": "Gloucestershire", "926": "Norfolk"}


# ---------------------------------------------------------------- councils ------------------------

@dataclass
class Council:
    code: str
    name: str
    cla: float              # target children looked after at 31 March
    referral_ratio: float   # referrals per year / CLA
    practice: float         # latent practice quality (higher is better)
    drift: float            # yearly change in practice after drift_from (negative: deteriorating)
    drift_from: float
    uasc: float             # UASC intake multiplier (ports and gateway councils are high)
    area: str
    london: bool
    xml_903: bool
    encoding: str
    newline: str

    def practice_at(self, t) -> np.ndarray:
        return self.practice + self.drift * np.clip((np.asarray(t, float) - self.drift_from) / YEAR, 0, None)

    def practice_for(self, aspect: str, t) -> np.ndarray:
        """Practice as one aspect of the service feels it ('assessment', 'protection', 'rereferral',
        'placements', 'social_workers'). One latent level here; a subclass (transforms/scenarios.py) can
        let the aspects decline one after another."""
        return self.practice_at(t)


def _la_list(n_las: int, la_codes: Sequence[str] | None, seed: int) -> list[tuple[str, str]]:
    names = dict(FALLBACK_LAS)
    known: list[tuple[str, str]] = []
    sn_file = settings.current().shared / SN_MODEL
    if sn_file.exists():
        with sn_file.open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                code = (row.get("old_la_code") or "").strip()
                if row.get("geographic_level", "Local authority") == "Local authority" \
                        and len(code) == 3 and code.isdigit():
                    known.append((code, row.get("la_name", "").strip()))
        names.update(known)
    if la_codes is not None:
        return [(str(c), names.get(str(c), f"Council {c}")) for c in la_codes]
    pool = known or sorted(FALLBACK_LAS.items())
    rng = np.random.default_rng(seed)
    chosen = sorted(pool[i] for i in rng.choice(len(pool), min(n_las, len(pool)), replace=False))
    spare = (f"{c}" for c in range(999, 899, -1) if f"{c}" not in names)
    chosen += [(code, f"Synthetic council {code}") for code in
               (next(spare) for _ in range(n_las - len(chosen)))]
    return chosen


def _councils(n_las, la_codes, seed, scale, xml_903_every) -> list[Council]:
    """Council sizes are skewed (about 30 to 1,500 CLA, median ~400, mean ~555 so 153 councils
    hold ~85,000); practice quality, drift and UASC intake vary so indicators have signal."""
    las = _la_list(n_las, la_codes, seed)
    n = len(las)
    rng = np.random.default_rng([seed, 7])
    size = 400 * np.exp(0.8 * rng.standard_normal(n))
    for _ in range(4):
        size = np.clip(size * 555 / size.mean(), 30, 1500)
    ratio = 7.6 * np.exp(0.2 * rng.standard_normal(n) - 0.02)
    practice = rng.standard_normal(n)
    drifting = rng.random(n) < 0.2
    drift = np.where(drifting, -rng.uniform(0.3, 0.8, n), 0.0)
    drift_from = _d("2021-04-01") + rng.uniform(0, 4 * YEAR, n)
    uasc = np.minimum(rng.gamma(1.2, 1 / 1.2, n), 5)
    xml = np.array([xml_903_every > 0 and (i + 1) % xml_903_every == 0 for i in range(n)])
    csv_rank = np.cumsum(~xml) - 1  # encodings vary among the councils that send CSV tables
    out = []
    for i, (code, name) in enumerate(las):
        london = code.isdigit() and (201 <= int(code) <= 213 or 301 <= int(code) <= 320)
        areas = LONDON_AREAS if london else POSTCODE_AREAS
        cp1252, bom = csv_rank[i] == 1, csv_rank[i] % 3 == 0
        out.append(Council(
            code=code, name=name, cla=float(size[i] * scale), referral_ratio=float(ratio[i]),
            practice=float(practice[i]), drift=float(drift[i]), drift_from=float(drift_from[i]),
            uasc=float(uasc[i]), area=areas[zlib.crc32(code.encode()) % len(areas)], london=london,
            xml_903=bool(xml[i]), encoding="cp1252" if cp1252 else ("utf-8-sig" if bom else "utf-8"),
            newline="\r\n" if bom or cp1252 else "\n"))
    return out


# ---------------------------------------------------------------- care (SSDA903) ------------------

def _simulate_care(rng, c: Council, w0: float, w1: float, years: list[int]) -> dict:
    """Periods of care since 19 years before the window, thinned so the stock at 31 March matches
    the council's size; each period becomes a chain of episodes (legal status and placement moves)."""
    hist0 = w0 - 19 * YEAR
    n = rng.poisson(1.6 * max(c.cla, 0.5) / (2.3 * YEAR) * (w1 - hist0))
    start = np.sort(rng.integers(int(hist0), int(w1) + 1, n)).astype(float)
    uasc = rng.random(n) < min(0.095 * c.uasc, 0.5)
    band = rng.choice(5, n, p=[.20, .14, .17, .31, .18])
    lo, hi = np.array([0, 1, 5, 10, 16.]), np.array([1, 5, 10, 16, 17.9])
    age = lo[band] + rng.random(n) * (hi - lo)[band]
    age[uasc] = 14 + 3.85 * rng.beta(4, 1.5, uasc.sum())
    dob = np.floor(start - age * YEAR)
    age = (start - dob) / YEAR
    eighteen = _add_years(dob, 18)
    adopt = ~uasc & (rng.random(n) < np.where(age < 1, .45, np.where(age < 5, .18, 0)))
    reverse = adopt & (rng.random(n) < .12)
    remand = ~uasc & ~adopt & (age >= 12) & (rng.random(n) < .04)
    short = ~uasc & ~adopt & (remand | (rng.random(n) < np.where(age >= 10, .36, .25)))

    # long stays: young children leave within a couple of years (home, SGO, adoption); those who come
    # in at 5-9 often stay until 18, which makes the stock at 31 March older than the starters
    dur = rng.lognormal(np.log(np.select([age < 5, age < 10], [2.4, 5.0], 3.5) * YEAR), 0.85)
    dur[short] = 1 + rng.exponential(110, short.sum())
    # adoption: decision, placement order, match, placed for adoption, adoption order
    nan = np.full(n, np.nan)
    decision, order, match, placed, ceased = nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy()
    k = adopt.sum()
    decision[adopt] = rng.uniform(150, 400, k)
    order[adopt] = decision[adopt] + rng.uniform(30, 150, k)
    match[adopt] = order[adopt] + rng.uniform(60, 240, k)
    placed[adopt] = match[adopt] + rng.uniform(7, 45, k)
    dur[adopt] = placed[adopt] + rng.uniform(120, 330, k)
    ceased[reverse] = decision[reverse] + rng.uniform(90, 400, reverse.sum())
    dur[reverse] = ceased[reverse] + rng.uniform(60, 300, reverse.sum())
    order[reverse] = match[reverse] = placed[reverse] = np.nan
    early_uasc = uasc & (rng.random(n) < .06)
    dur = np.floor(np.maximum(dur, 1))
    until18 = eighteen - start
    aged_out = dur >= until18
    dur = np.where(aged_out, until18, dur)
    dur[early_uasc] = np.floor(rng.uniform(30, np.maximum(until18[early_uasc], 31)))
    aged_out &= ~early_uasc
    exit_ = start + dur

    # thin to the council's stock at 31 March (Poisson thinning keeps the process Poisson)
    refs = np.array([year_bounds(y)[1] for y in years])
    stock = ((start[:, None] <= refs) & (exit_[:, None] > refs)).sum(0).mean()
    keep = (rng.random(n) < c.cla / max(stock, 1.0)) & (exit_ >= w0 - 5 * YEAR)
    P = {k_: v[keep] for k_, v in dict(
        start=start, exit=exit_, dur=dur, dob=dob, age=age, eighteen=eighteen, uasc=uasc,
        adopt=adopt & ~reverse, reverse=reverse, remand=remand, short=short, aged_out=aged_out,
        early_uasc=early_uasc, decision=decision, order=order, match=match, placed=placed,
        ceased=ceased).items()}
    n = len(P["start"])
    s, dur = P["start"], P["dur"]

    rec = _pick(rng, LONG_EXIT, n)
    for mask, table in ((P["short"], SHORT_EXIT), (P["remand"], {"E14": 80, "E9": 20}),
                        (P["reverse"], {"E45": 30, "E47": 30, "E41": 20, "E4A": 20}),
                        (P["aged_out"] & ~P["uasc"], AT18_EXIT),
                        (P["aged_out"] & P["uasc"], UASC_AT18_EXIT),
                        (P["early_uasc"], {"E15": 70, "E16": 30}),
                        (P["adopt"], {"E11": 90, "E12": 10})):
        rec[mask] = _pick(rng, table, mask.sum())
    P["rec"] = rec
    P["need"] = np.where(P["uasc"], "N8", _pick(rng, CLA_NEED, n)).astype(object)

    # legal status: entry, then emergency -> interim -> full care order, or placement order
    ls0 = _pick(rng, ENTRY_LS, n)
    baby = P["age"] < 1
    ls0[baby] = _pick(rng, BABY_LS, baby.sum())
    ls0[P["adopt"] | P["reverse"]] = "C1"
    ls0[P["uasc"]] = "V2"
    ls0[P["remand"]] = _pick(rng, {"J1": 60, "J2": 40}, P["remand"].sum())
    emergency = np.isin(ls0, ["L1", "L2"])
    t_base = np.where(ls0 == "L1", rng.integers(1, 4, n), rng.integers(3, 9, n)).astype(float)
    base = np.where(rng.random(n) < .65, "C1", "V2").astype(object)
    base[P["adopt"] | P["reverse"]] = "C1"
    t_vc = np.where((np.where(emergency, base, ls0) == "V2") & ~P["short"] & ~P["uasc"]
                    & (rng.random(n) < .15), np.where(emergency, t_base, 0) + rng.uniform(60, 500, n), np.nan)
    t_c1 = np.where(emergency & (base == "C1"), t_base, np.where(ls0 == "C1", 0, t_vc))
    t_c2 = np.where(P["adopt"], np.nan, t_c1 + rng.uniform(180, 330, n))
    a5 = P["adopt"] & (rng.random(n) < .25)  # placed with current foster carer: order and move same day
    P["order"] = np.where(a5, P["placed"], P["order"])
    legal = [(emergency, t_base, base), (~np.isnan(t_vc), t_vc, "C1"), (~np.isnan(t_c2), t_c2, "C2"),
             (P["adopt"], P["order"], "E1")]

    # placement moves: more in the first year, more for teenagers, more where practice is weak
    pr = np.exp(-0.15 * c.practice_for("placements", s)) * np.where(P["age"] >= 11, 1.5, 1.0)
    first = np.minimum(dur, 365)
    n1 = rng.poisson(0.8 * pr * first / 365)
    n2 = rng.poisson(0.28 * pr * np.maximum(dur - 365, 0) / 365)
    mp = np.concatenate([np.repeat(np.arange(n), n1), np.repeat(np.arange(n), n2)])
    mt = np.floor(np.concatenate([1 + rng.random(n1.sum()) * np.repeat(first - 1, n1),
                                  365 + rng.random(n2.sum()) * np.repeat(np.maximum(dur - 365, 0), n2)]))
    ok = (mt >= 1) & (mt < dur[mp]) & ~(P["adopt"][mp] & (mt >= P["placed"][mp] - 1))
    mp, mt = mp[ok], mt[ok]
    semi = P["aged_out"] & (P["age"] < 16.5) & (rng.random(n) < .45)
    t_semi = _add_years(P["dob"], 17) + rng.uniform(0, 300, n) - s
    semi &= (t_semi >= 1) & (t_semi < dur)

    # events -> episodes (an event is a legal change, a placement move or both on one day)
    ev = [(np.arange(n), np.zeros(n), ls0, 1, 0, 0)]
    for mask, t, code in legal:
        idx = np.flatnonzero(mask & (np.floor(np.nan_to_num(t, nan=-1)) < dur) & (np.nan_to_num(t, nan=-1) >= 1))
        ev.append((idx, np.floor(t[idx]), np.broadcast_to(np.asarray(code, object), n)[idx], 0, 1, 0))
    ev.append((mp, mt, np.full(len(mp), "", object), 0, 2, 0))
    ad = np.flatnonzero(P["adopt"])
    ev.append((ad, np.floor(P["placed"][ad]), np.full(len(ad), "", object), 0, 2, np.where(a5[ad], 1, 2)))
    sm = np.flatnonzero(semi)
    ev.append((sm, np.floor(t_semi[sm]), np.full(len(sm), "", object), 0, 2, 3))
    e_p = np.concatenate([e[0] for e in ev])
    e_t = np.concatenate([e[1] for e in ev]).astype(np.int64)
    e_ls = np.concatenate([e[2] for e in ev])
    e_kind = np.concatenate([np.full(len(e[0]), e[3] * 4 + e[4]) for e in ev])  # 4 start, 1 legal, 2 move
    e_force = np.concatenate([np.broadcast_to(e[5], len(e[0])) for e in ev]).astype(np.int64)
    order_ = np.argsort(e_p * 2**20 + e_t, kind="stable")
    e_p, e_t, e_ls, e_kind, e_force = e_p[order_], e_t[order_], e_ls[order_], e_kind[order_], e_force[order_]
    key = e_p * 2**20 + e_t
    g = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ep = e_p[g]
    et = e_t[g].astype(float)
    flags = np.bitwise_or.reduceat(e_kind, g)
    force = np.maximum.reduceat(e_force, g)
    # legal status carries forward: every period starts with one, so the running max never crosses periods
    last_ls = np.maximum.reduceat(np.where(e_ls != "", np.arange(len(e_ls)), -1), g)
    ls = e_ls[np.maximum.accumulate(last_ls)]
    is_start, legal_chg, move = (flags & 4) > 0, (flags & 1) > 0, (flags & 2) > 0
    # DfE RNE: B/U change legal status and placement (U: same carers), P/T placement only (T: same carers)
    rne = np.where(is_start, "S", np.where(legal_chg & move, np.where(force == 1, "U", "B"),
                                           np.where(move, "P", "L"))).astype(object)

    # placements: one per start or move
    pl_row = np.flatnonzero(is_start | move)
    pl_id = np.cumsum(is_start | move) - 1
    pp = ep[pl_row]
    pdate = s[pp] + et[pl_row]
    page = (pdate - P["dob"][pp]) / YEAR
    kind = np.where(page < 10, 0, np.where(page < 16, 1, 2))
    ptype = np.empty(len(pl_row), dtype=object)
    for k_, table in enumerate((PLACE_UNDER10, PLACE_10_15, PLACE_16_17)):
        ptype[kind == k_] = _pick(rng, table, (kind == k_).sum())
    first_uasc = is_start[pl_row] & P["uasc"][pp]
    ptype[first_uasc] = _pick(rng, PLACE_UASC, first_uasc.sum())
    ptype[P["remand"][pp]] = "K2"
    pf = force[pl_row]
    ptype[pf == 1], ptype[pf == 2], ptype[pf == 3] = "A5", "A6", "SEMI"
    foster = ptype == "FOSTER"
    ptype[foster] = _pick(rng, FOSTER, foster.sum())
    new_rules = pdate >= _d("2024-04-01")
    ptype[(ptype == "SEMI") & ~new_rules] = "H5"
    ptype[(ptype == "SEMI") | ((ptype == "P2") & new_rules)] = "K3"
    z = (ptype == "Z1") & (pdate >= _d("2025-04-01")) & (rng.random(len(ptype)) < .5)
    ptype[z] = _pick(rng, {"Z11": 1, "Z12": 1, "Z13": 1, "Z14": 1}, z.sum())
    provider = np.empty(len(ptype), dtype=object)
    for code in np.unique(ptype):
        m = ptype == code
        provider[m] = _pick(rng, PROVIDER[code], m.sum())
    urn = np.where(rng.random(len(ptype)) < .6,  # older Ofsted URNs are SCnnnnnn, newer ones 7 digits
                   np.array([f"SC{v:06d}" for v in rng.integers(0, 10**6, len(ptype))], dtype=object),
                   rng.integers(10**6, 3 * 10**6, len(ptype)).astype(str).astype(object))
    urn[np.isin(ptype, list(NO_URN))] = "XXXXXXX"
    away = rng.random(len(ptype)) < .3
    areas = np.where(away, np.array(POSTCODE_AREAS, object)[rng.integers(0, len(POSTCODE_AREAS), len(ptype))],
                     c.area).astype(object)
    pl_post = _postcodes(rng, areas)

    last = np.r_[ep[1:] != ep[:-1], True]
    decom = s[ep] + et
    dec = np.where(last, P["exit"][ep], np.r_[decom[1:], 0])
    next_rne = np.append(rne[1:], "S")
    moved_next = ~last & np.isin(next_rne, ["P", "T", "B", "U"])
    rpc = np.where(moved_next, _pick(rng, PLACE_CHANGE, len(ep)), "").astype(object)
    rpc[moved_next & (np.r_[force[1:], 0] > 0)] = "LAREQ"
    E = dict(p=ep, decom=decom, dec=dec, rne=rne, ls=ls, place=ptype[pl_id], provider=provider[pl_id],
             urn=urn[pl_id], pl_post=pl_post[pl_id], rpc=rpc,
             rec=np.where(last, P["rec"][ep], "X1").astype(object))
    return dict(P=P, E=E, R=_reviews(rng, P, w0, w1), M=_missing(rng, c, P, w0, w1),
                S=_sw_episodes(rng, c, P, w0, w1))


def _reviews(rng, P, w0, w1) -> dict:
    """Reviews at ~20 working days, 3 months later, then every 6 months while in care."""
    a = np.maximum(P["start"], w0)
    b = np.minimum(P["exit"], w1 + 1)
    live = np.flatnonzero(b > a)

    def k_of(x):  # index of the first review on or after offset x
        return np.where(x <= 28, 0, np.where(x <= 119, 1, 2 + np.ceil((x - 119) / 182 - 1)))
    k0 = np.maximum(k_of(a[live] - P["start"][live] - 20) - 1, 0).astype(int)
    k1 = (k_of(b[live] - P["start"][live] + 20) + 1).astype(int)
    cnt = np.maximum(k1 - k0, 0)
    p = np.repeat(live, cnt)
    k = np.repeat(k0, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    off = np.where(k == 0, 28, np.where(k == 1, 119, 119 + 182 * (k - 1)))
    date = P["start"][p] + off + rng.integers(-12, 13, len(p))
    ok = (date >= a[p]) & (date < b[p]) & (date > P["start"][p])
    p, date = p[ok], date[ok]
    code = _pick(rng, REVIEW_CODE, len(p))
    code[(date - P["dob"][p]) < 4 * YEAR] = "PN0"
    return dict(p=p, date=date, code=code)


def _missing(rng, c: Council, P, w0, w1) -> dict:
    """About a quarter of children go missing, often repeatedly, once they are 10 or older."""
    prone = rng.random(len(P["start"])) < min(0.27 * np.exp(-0.1 * c.practice), 0.6)
    a = np.maximum.reduce([P["start"], np.full(len(prone), w0), _add_years(P["dob"], 10)])
    b = np.minimum(P["exit"], w1 + 1)
    live = np.flatnonzero(prone & (b > a))
    cnt = rng.poisson(rng.gamma(2, 2, len(live)) * (b - a)[live] / YEAR)
    p = np.repeat(live, cnt)
    start = np.floor(a[p] + rng.random(len(p)) * (b - a)[p])
    keep = np.unique(np.stack([p, start]), axis=1, return_index=True)[1]  # one episode per child and day
    p, start = p[np.sort(keep)], start[np.sort(keep)]
    kind = np.where(rng.random(len(p)) < .7, "M", "A").astype(object)
    length = np.floor(np.where(kind == "M", rng.lognormal(0.4, 1.1, len(p)), rng.uniform(0, 2, len(p))))
    return dict(p=p, start=start, end=np.minimum(start + length, P["exit"][p]), kind=kind)


def _sw_episodes(rng, c: Council, P, w0, w1) -> dict:
    """Social worker episodes: changes of worker arrive at ~0.8 a year, faster where practice is weak;
    at most three changes in a return year, so a child has one to four social workers in it."""
    a = np.maximum(P["start"], w0 - 2 * YEAR - rng.uniform(0, YEAR, len(P["start"])))
    b = np.minimum(P["exit"], w1 + 1)
    live = np.flatnonzero(b > np.maximum(a, w0))
    rate = 0.8 * np.exp(-0.2 * c.practice_for("social_workers", a[live]))
    cnt = rng.poisson(rate * (b - a)[live] / YEAR)
    p = np.concatenate([live, np.repeat(live, cnt)])
    t = np.concatenate([a[live], np.floor(np.repeat(a[live], cnt) + rng.random(cnt.sum()) * np.repeat((b - a)[live], cnt))])
    o = np.lexsort((t, p))
    p, t = p[o], t[o]
    first = np.r_[True, p[1:] != p[:-1]]
    distinct = first | (t > np.r_[-np.inf, t[:-1]])
    p, t, first = p[distinct], t[distinct], first[distinct]
    g = pd.DataFrame({"p": p, "y": _return_year(t), "first": first}).groupby(["p", "y"])
    keep = g.cumcount().to_numpy() < np.where(g["first"].transform("max").to_numpy(), 4, 3)
    p, t = p[keep], t[keep]
    first = np.r_[True, p[1:] != p[:-1]]
    last = np.r_[p[1:] != p[:-1], True]
    end = np.where(last, P["exit"][p], np.r_[t[1:], 0])
    pool = max(5, int(c.cla / 12) + 5)  # about 15 children per social worker
    ids = np.array([f"SW{v:06d}" for v in rng.choice(900000, pool, replace=False) + 100000], dtype=object)
    w = rng.integers(0, pool, len(p))
    w = np.where(~first & (w == np.r_[-1, w[:-1]]), (w + 1) % pool, w)
    reason = np.where(first, "", _pick(rng, SW_REASON, len(p))).astype(object)
    return dict(p=p, start=t, end=end, sw=ids[w], reason=reason)


# ---------------------------------------------------------------- children in need ----------------

def _outcomes(rng, c: Council, ref, dob, allowed: dict) -> dict:
    """What happens after a referral: NFA, assessment, CIN plan, section 47, ICPC, CP plan, closure."""
    n = len(ref)
    kind = _pick(rng, allowed, n)
    pq = c.practice_for("assessment", ref)
    pq_icpc = c.practice_for("protection", ref)
    o = dict(kind=kind, nfa=kind == "NFA", source=_pick(rng, REFERRAL_SOURCE, n),
             need=_pick(rng, CIN_NEED, n))
    o["need"][o["nfa"]] = np.where(rng.random(o["nfa"].sum()) < .6, "N0", "N9")
    assessed = ~o["nfa"]
    o["a_start"] = np.where(assessed, ref + np.minimum(rng.geometric(.5, n) - 1, 10), np.nan)
    wd = np.maximum(np.round(rng.lognormal(np.log(27 * np.exp(-0.12 * pq)), .55)), 1)
    o["a_auth"] = _add_working_days(o["a_start"], wd)
    o["a_review"] = np.where(assessed & (rng.random(n) < .04), o["a_start"] + np.floor(wd / 2), np.nan)
    s47 = np.isin(kind, ["S47", "ICPC", "CP"])
    o["s47"] = np.where(s47, ref + np.minimum(rng.geometric(.6, n) - 1, 5), np.nan)
    o["icpc_target"] = _add_working_days(o["s47"], np.full(n, 15))
    icpc = np.isin(kind, ["ICPC", "CP"])
    o["icpc"] = np.where(icpc, _add_working_days(o["s47"], np.maximum(
        np.round(rng.lognormal(np.log(12 * np.exp(-0.1 * pq_icpc)), .35)), 1)), np.nan)
    o["icpc_not_required"] = np.where(s47, np.where(icpc, "false", "true"), "").astype(object)
    cp = kind == "CP"
    o["cpp_start"] = np.where(cp, o["icpc"], np.nan)
    o["cpp_end"] = np.floor(o["cpp_start"] + rng.lognormal(np.log(270), .62, n))
    o["cat"] = _pick(rng, ABUSE, n)
    o["cat_latest"] = np.where(rng.random(n) < .85, o["cat"], _pick(rng, ABUSE, n)).astype(object)
    plan = np.isin(kind, ["CINP", "ICPC"]) | (kind == "S47") & (rng.random(n) < .5) | cp & (rng.random(n) < .6)
    o["plan_start"] = np.where(plan, np.where(cp, o["cpp_end"], o["a_auth"] + rng.integers(0, 22, n)), np.nan)
    o["plan_end"] = np.floor(o["plan_start"] + rng.lognormal(np.log(np.where(cp, 120, 150)), .6, n))
    closure = np.where(o["nfa"], ref, o["a_auth"])
    closure = np.where(kind == "CIN", o["a_auth"] + rng.integers(7, 121, n), closure)
    closure = np.where(cp, o["cpp_end"], closure)
    closure = np.where(plan, o["plan_end"], closure) + np.where(plan | cp, rng.integers(0, 15, n), 0)
    o["closure"] = closure
    rc = np.where(o["nfa"] | np.isin(kind, ["NIN", "S47"]) & ~plan,
                  np.where(rng.random(n) < .75, "RC8", "RC9"), "RC7").astype(object)
    u = rng.random(n)
    other = (rc == "RC7") & (u < .05)
    rc[other] = _pick(rng, {"RC5": 2, "RC3": 1, "RC4": 1, "RC2": .05}, other.sum())
    o["rc"] = rc
    o["death"] = np.where(rc == "RC2", closure, np.nan)
    eighteen = _add_years(dob, 18)
    adult = closure >= eighteen
    o["rc"][adult] = np.where(rng.random(adult.sum()) < .2, "RC6", "RC7")
    _clip(o, np.where(adult, eighteen - 1, closure))
    return o


def _clip(o: dict, closure) -> None:
    """Nothing in a CIN episode happens after it closes."""
    o["closure"] = closure
    for start, end in (("a_start", "a_auth"), ("plan_start", "plan_end"), ("cpp_start", "cpp_end")):
        gone = o[start] > closure
        o[start][gone] = o[end][gone] = np.nan
        o[end] = np.minimum(o[end], closure)  # NaN (no such event) stays NaN
    for key in ("a_review", "s47", "icpc"):
        o[key][o[key] > closure] = np.nan
    o["icpc_target"][np.isnan(o["s47"])] = np.nan
    o["icpc_not_required"][np.isnan(o["s47"])] = ""


COMMUNITY = {"NFA": 7, "NIN": 33, "CIN": 12, "CINP": 23, "S47": 13, "ICPC": 2, "CP": 10}
BEFORE_CARE = {"NIN": 45, "CIN": 20, "CINP": 35}


def _simulate_cin(rng, c: Council, w0, w1, years, care) -> dict:
    """Referral chains: a child is referred, the episode runs its course and closes, and some
    children are referred again (re-referrals); each looked-after child also has a CIN episode
    covering the period of care, sometimes after an earlier referral that closed."""
    P = care["P"]
    n_care = len(P["start"])
    parts = []
    # the looked-after child's episode: referral shortly before care, open until care ends
    ref = np.maximum(P["start"] - np.minimum(np.floor(rng.exponential(40, n_care)), 400), P["dob"] - 120)
    o = _outcomes(rng, c, ref, P["dob"], {"CINP": 45, "S47": 15, "CP": 40})
    o["need"] = P["need"].copy()
    early = (P["start"] - ref) < 25
    for key in ("s47", "icpc", "icpc_target", "cpp_start", "cpp_end"):
        o[key][early] = np.nan
    o["icpc_not_required"][early] = ""
    late = o["cpp_start"] >= P["start"]
    o["cpp_start"][late] = np.nan
    o["cpp_end"] = np.where(late, np.nan, np.minimum(o["cpp_end"], P["start"]))
    o["plan_start"][:] = o["plan_end"][:] = np.nan
    o["closure"] = P["exit"] + rng.integers(0, 31, n_care)
    rc = np.full(n_care, "RC7", dtype=object)
    for codes, rc_code in ((["E11", "E12"], "RC1"), (["E45", "E46", "E47", "E48"], "RC4"),
                           (["E41"], "RC3"), (["E2"], "RC2"), (["E3"], "RC5"), (["E7"], "RC6")):
        rc[np.isin(P["rec"], codes)] = rc_code
    o["rc"], o["death"] = rc, np.where(rc == "RC2", P["exit"], np.nan)
    _clip(o, o["closure"])
    parts.append((np.arange(n_care), ref, o))
    # an earlier referral that closed before care for about a third of them
    had = np.flatnonzero(rng.random(n_care) < .35)
    ref0 = ref[had] - rng.uniform(120, 900, len(had)).round()
    had, ref0 = had[ref0 > P["dob"][had] - 90], ref0[ref0 > P["dob"][had] - 90]
    o = _outcomes(rng, c, ref0, P["dob"][had], BEFORE_CARE)
    _clip(o, np.fmin(o["closure"], ref[had] - 1))
    parts.append((had, ref0, o))

    # community chains, generated generously then thinned to the council's referral volume
    hist0 = w0 - 3 * YEAR
    bounds = [year_bounds(y) for y in years]

    def in_years(r):
        return np.any([(r >= a) & (r <= b) for a, b in bounds], axis=0)
    care_refs = sum(in_years(r).sum() for _, r, _ in parts) / len(years)
    target = c.cla * c.referral_ratio
    comm = max(target - care_refs, 0.3 * target)
    m = rng.poisson(1.25 * comm * 0.63 * (w1 - hist0) / YEAR)
    band = rng.choice(6, m, p=[.03, .09, .17, .25, .34, .12])
    lo, hi = np.array([-.4, 0, 1, 5, 10, 16]), np.array([0, 1, 5, 10, 16, 17.8])
    t = np.floor(rng.uniform(hist0, w1, m))
    dob = np.floor(t - (lo[band] + rng.random(m) * (hi - lo)[band]) * YEAR)
    chain_parts = []
    chain, r = np.arange(m), t
    while len(chain):
        o = _outcomes(rng, c, r, dob[chain], COMMUNITY)
        chain_parts.append((chain, r, o))
        q = 0.39 - 0.03 * c.practice_for("rereferral", r)
        again = (rng.random(len(r)) < q) & ~(o["rc"] == "RC2") & (o["closure"] < _add_years(dob[chain], 18) - 60)
        nxt = o["closure"] + np.ceil(rng.lognormal(np.log(150), 1.1, len(r)))
        again &= (nxt <= w1) & (nxt < _add_years(dob[chain], 18) - 30)
        chain, r = chain[again], nxt[again]
    n_comm = sum(in_years(r).sum() for _, r, _ in chain_parts) / len(years)
    keep_chain = rng.random(m) < comm / max(n_comm, 1)
    for ch, r, o in chain_parts:
        k = keep_chain[ch]
        parts.append((ch[k] + n_care, r[k], {key: v[k] for key, v in o.items()}))

    child = np.concatenate([p[0] for p in parts])
    ref = np.concatenate([p[1] for p in parts])
    R = {key: np.concatenate([p[2][key] for p in parts]) for key in parts[0][2]}
    R["child"], R["ref"] = child, ref
    order = np.lexsort((ref, child))
    R = {key: v[order] for key, v in R.items()}
    # previous CP plans: those earlier in this child's history plus some before our window
    cp = (~np.isnan(R["cpp_start"])).astype(int)
    first_row = np.r_[True, R["child"][1:] != R["child"][:-1]]
    child_first = np.maximum.accumulate(np.where(first_row, np.arange(len(cp)), 0))
    before = np.cumsum(cp) - cp
    history = _pick(rng, {0: 80, 1: 15, 2: 5}, len(cp)).astype(int)
    R["prev_cpp"] = before - before[child_first] + history[child_first]
    # CP plan reviews: about 3 months after the plan starts, then every 6 months
    plan = np.flatnonzero(cp)
    length = np.fmin(R["cpp_end"][plan], w1 + 1) - R["cpp_start"][plan]
    cnt = np.maximum(np.ceil((length - 90) / 182), 0).astype(int) + (length > 90)
    rp = np.repeat(plan, cnt)
    k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    rdate = R["cpp_start"][rp] + 90 + 182 * k + rng.integers(-10, 11, len(rp))
    ok = rdate < np.fmin(R["cpp_end"][rp], w1 + 1)
    factors = _factors(rng, R)
    return dict(R=R, cpp_reviews=dict(row=rp[ok], date=rdate[ok]), factors=factors, dob=dob)


def _factors(rng, R) -> dict:
    """Factors identified at the end of assessment: several for children in need, few otherwise."""
    done = ~np.isnan(R["a_auth"])
    in_need = ~np.isin(R["kind"], ["NIN", "NFA"])
    cnt = np.where(done, np.where(in_need, np.minimum(1 + rng.poisson(1.3, len(done)), 6),
                                  (rng.random(len(done)) < .5).astype(int)), 0)
    row = np.repeat(np.arange(len(done)), cnt)
    code = _pick(rng, FACTORS, len(row))
    keep = ~pd.DataFrame({"r": row, "c": code}).duplicated().to_numpy()
    return dict(row=row[keep], code=code[keep])


# ---------------------------------------------------------------- children ------------------------

def _children(rng, c: Council, care, cin) -> dict:
    """One record per child, shared by both returns so ids, UPNs and birth dates agree."""
    P = care["P"]
    n_care = len(P["start"])
    dob = np.concatenate([P["dob"], cin["dob"]])
    n = len(dob)
    uasc = np.r_[P["uasc"], np.zeros(n - n_care, bool)]
    male = rng.random(n) < np.where(uasc, .95, .53)
    eth = np.where(uasc, _pick(rng, ETHNIC_UASC, n), _pick(rng, ETHNIC_LONDON if c.london else ETHNIC_ENGLAND, n))
    ids = 10_000_000 + np.cumsum(rng.integers(1, 400, n))
    rng.shuffle(ids)
    disab = np.where(rng.random(n) < .12, _pick(rng, DISABILITY, n), "NONE").astype(object)
    two = (disab != "NONE") & (rng.random(n) < .3)
    second = _pick(rng, DISABILITY, two.sum())
    first = disab[two]
    disab[two] = np.where(second != first, first + "," + second, first)  # a disability is recorded once
    disab[rng.random(n) < .08] = ""
    mother = ~male & (rng.random(n) < .02)
    in_care_start = np.r_[P["start"], np.full(n - n_care, np.nan)]
    return dict(
        id=ids.astype(str).astype(object), dob=dob, male=male, unknown_sex=rng.random(n) < .002,
        ethnic=eth, upn=_upns(rng, c.code if c.code.isdigit() else "999", dob),
        former_upn=_former_upns(rng, dob),
        home=np.r_[_postcodes(rng, np.full(n_care, c.area, dtype=object)), np.full(n - n_care, "", object)],
        disab=disab, uasc=uasc,
        mc_dob=np.where(mother, np.floor(dob + rng.uniform(13.5, 17.9, n) * YEAR), np.nan),
        care_start=in_care_start, perm=_pick(rng, PREV_PERM, n),
        perm_la=np.where(rng.random(n) < .7, c.code, _pick(rng, {k: 1 for k in FALLBACK_LAS}, n)).astype(object),
        perm_date=np.floor(dob + rng.uniform(.3, .9, n) * np.fmax(np.nan_to_num(in_care_start - dob), 60)))


def _former_upns(rng, dob) -> np.ndarray:
    """About 1% of children have had an earlier UPN (issued by another council)."""
    out = np.full(len(dob), "", dtype=object)
    had = np.flatnonzero(rng.random(len(dob)) < .01)
    out[had] = _upns(rng, "999", dob[had])
    return out


def _upn_or_unknown(kids, idx, ref_date) -> tuple[np.ndarray, np.ndarray]:
    """Pre-school children have no UPN yet (UN1); newly arrived UASC have none either (UN4)."""
    young = (ref_date - kids["dob"][idx]) < 4 * YEAR
    new_uasc = kids["uasc"][idx] & ((ref_date - kids["care_start"][idx]) < YEAR)
    unknown = np.where(young, "UN1", np.where(new_uasc, "UN4", "")).astype(object)
    return np.where(unknown == "", kids["upn"][idx], ""), unknown


def _sex(kids, idx, year: int) -> np.ndarray:
    """903 and CIN sex: 1/2 (CIN GenderCurrent) up to 2024, M/F with a few U from 2025."""
    male = kids["male"][idx]
    if year <= 2024:
        return np.where(male, "1", "2").astype(object)
    return np.where(kids["unknown_sex"][idx], "U", np.where(male, "M", "F")).astype(object)


# ---------------------------------------------------------------- yearly returns ------------------

def ssda903_tables(care, kids, year: int, rng) -> dict[str, dict[str, np.ndarray]]:
    """The 903 return for one year: episodes open at any time in the year, cut at 31 March."""
    ys, ye = year_bounds(year)
    P, E = care["P"], care["E"]
    dob_uk = _fmt(kids["dob"])

    def frame(table, p, **cols):
        cols.update(CHILD=kids["id"][p], DOB=dob_uk[p])
        return _frame({c: cols[c] for c in SSDA903_COLUMNS[table]}, _k=p)

    e = np.flatnonzero((E["decom"] <= ye) & (E["dec"] >= ys))
    open_ = E["dec"][e] > ye
    place = E["place"][e].copy()
    place[~np.isin(place, list(place_codes(year)))] = "K3"  # councils recode withdrawn H5/P2 placements
    p_e = E["p"][e]
    out = {"episodes": frame(
        "episodes", p_e, DECOM=_fmt(E["decom"][e]), RNE=E["rne"][e], LS=E["ls"][e], CIN=P["need"][p_e],
        PLACE=place, PLACE_PROVIDER=E["provider"][e], DEC=np.where(open_, "", _fmt(E["dec"][e])),
        REC=np.where(open_, "", E["rec"][e]), REASON_PLACE_CHANGE=np.where(open_, "", E["rpc"][e]),
        HOME_POST=kids["home"][p_e], PL_POST=np.where(place == "P1", kids["home"][p_e], E["pl_post"][e]),
        URN=E["urn"][e])}
    in_year = np.unique(p_e)

    R = care["R"]
    r = np.flatnonzero((R["date"] >= ys) & (R["date"] <= ye))
    out["reviews"] = frame("reviews", R["p"][r], REVIEW=_fmt(R["date"][r]), REVIEW_CODE=R["code"][r])

    M = care["M"]
    m = np.flatnonzero((M["start"] >= ys) & (M["start"] <= ye))
    out["missing"] = frame("missing", M["p"][m], MISSING=M["kind"][m], MIS_START=_fmt(M["start"][m]),
                           MIS_END=_fmt(np.where(M["end"][m] > ye, np.nan, M["end"][m])))

    u = in_year[P["uasc"][in_year]]
    out["uasc"] = frame("uasc", u, SEX=_sex(kids, u, year), DUC=_fmt(P["eighteen"][u]))

    # OC2: looked after continuously for 12 months at 31 March
    o2 = np.flatnonzero((P["start"] <= ye - 365) & (P["exit"] > ye))
    n2 = len(o2)
    age = (ye - P["dob"][o2]) / YEAR
    sdq_due = (age >= 4) & (age < 17)
    scored = sdq_due & (rng.random(n2) < .75)
    misuse = (age >= 10) & (rng.random(n2) < .04)
    flag = lambda p_: (rng.random(n2) < p_).astype(int).astype(str).astype(object)
    out["oc2"] = frame(
        "oc2", o2, SDQ_SCORE=np.where(scored, np.clip(np.round(rng.normal(14, 7, n2)), 0, 40).astype(int).astype(str), ""),
        SDQ_REASON=np.where(scored, "", np.where(sdq_due, _pick(rng, {"SDQ2": 2, "SDQ3": 1, "SDQ4": 3, "SDQ5": 2}, n2), "SDQ1")),
        CONVICTED=np.where(age >= 10, flag(.03), "0"), HEALTH_CHECK=flag(.9), IMMUNISATIONS=flag(.85),
        TEETH_CHECK=flag(.8), HEALTH_ASSESSMENT=flag(.88), SUBSTANCE_MISUSE=misuse.astype(int).astype(str),
        INTERVENTION_RECEIVED=np.where(misuse, flag(.6), ""), INTERVENTION_OFFERED=np.where(misuse, flag(.3), ""))

    # OC3: care leavers whose 17th-21st birthday falls in the year
    leaver = ((P["exit"] - P["dob"]) >= 16 * YEAR) & (P["dur"] >= 91) & ~np.isin(P["rec"], ["E2", "E11", "E12"])
    age_k = np.zeros(len(leaver), int)
    for k in range(17, 22):
        bday = _add_years(P["dob"], k)
        age_k[(bday >= ys) & (bday <= ye) & (P["exit"] <= bday)] = k
    o3 = np.flatnonzero(leaver & (age_k > 0))
    n3 = len(o3)
    touch = _pick(rng, IN_TOUCH, n3)
    known = np.isin(touch, ["YES", "NREQ", "RHOM"])
    activ = np.where(age_k[o3] <= 18, _pick(rng, ACTIV_17_18, n3), _pick(rng, ACTIV_19_21, n3))
    letter = _pick(rng, ACCOM, n3)
    suitable = np.where(np.isin(letter, ["S", "X", "W"]), "2", np.where(rng.random(n3) < .96, "1", "2"))
    out["oc3"] = frame("oc3", o3, IN_TOUCH=touch, ACTIV=np.where(known, activ, "0"),
                       ACCOM=np.where(known, letter + suitable.astype(object), "0"))

    adopted = np.flatnonzero(P["adopt"] & (P["exit"] >= ys) & (P["exit"] <= ye))
    na = len(adopted)
    sex_ad = _pick(rng, SEX_ADOPTERS, na)
    single = np.isin(sex_ad, ["F1", "M1"])
    out["ad1"] = frame(
        "ad1", adopted, DATE_INT=_fmt(P["start"][adopted] + P["decision"][adopted]),
        DATE_MATCH=_fmt(P["start"][adopted] + P["match"][adopted]), FOSTER_CARE=(rng.random(na) < .15).astype(int).astype(str),
        NB_ADOPTR=np.where(single, "1", "2"),
        SEX_ADOPTR=sex_ad, LS_ADOPTR=np.where(single, "L4", _pick(rng, {"L0": 60, "L11": 10, "L12": 10, "L2": 20}, na)))

    plan = P["adopt"] | P["reverse"]
    decided = P["start"] + P["decision"]
    gone = P["start"] + P["ceased"]
    pa = np.flatnonzero(plan & (decided <= ye) & (P["exit"] >= ys) & ~(gone < ys))
    ceased = np.where(gone[pa] <= ye, gone[pa], np.nan)
    out["placed_for_adoption"] = frame(
        "placed_for_adoption", pa, DATE_PLACED=_fmt(decided[pa]), DATE_PLACED_CEASED=_fmt(ceased),
        REASON_PLACED_CEASED=np.where(np.isnan(ceased), "", _pick(rng, {"RD1": 3, "RD2": 2, "RD3": 2, "RD4": 3}, len(pa))))

    if year >= SW_EPISODES_FROM:
        S = care["S"]
        s = np.flatnonzero((S["start"] <= ye) & (S["end"] >= ys))
        out["sw_episodes"] = frame("sw_episodes", S["p"][s], SW_ID=S["sw"][s], SW_DECOM=_fmt(S["start"][s]),
                                   SW_DEC=_fmt(np.where(S["end"][s] > ye, np.nan, S["end"][s])),
                                   SW_REASON=S["reason"][s])

    h = np.union1d(in_year, o3)
    upn, unknown = _upn_or_unknown(kids, h, ye)
    female = ~kids["male"][h]
    mc = kids["mc_dob"][h]
    is_mother = female & (mc <= ye)
    out["header"] = frame("header", h, SEX=_sex(kids, h, year), ETHNIC=kids["ethnic"][h],
                          UPN=np.where(upn == "", unknown, upn), MOTHER=np.where(female, is_mother.astype(int).astype(str), ""),
                          MC_DOB=_fmt(np.where(is_mother, mc, np.nan)))
    perm = kids["perm"][h]
    out["previous_permanence"] = frame(
        "previous_permanence", h, PREV_PERM=perm, LA_PERM=np.where(perm == "Z1", "", kids["perm_la"][h]),
        DATE_PERM=_fmt(np.where(perm == "Z1", np.nan, kids["perm_date"][h])))
    return out


def cin_frames(cin, kids, year: int) -> tuple[dict, dict, dict]:
    """CIN episodes open at any time in the year, as known at 31 March; later dates are blank."""
    ys, ye = year_bounds(year)
    R = cin["R"]
    i = np.flatnonzero((R["ref"] <= ye) & ~(R["closure"] < ys))
    g = {k: v[i] for k, v in R.items()}
    known = lambda d: np.where(d <= ye, d, np.nan)
    iso = lambda d: _fmt(known(d), iso=True)
    closed = g["closure"] <= ye
    a_in = (g["a_start"] <= ye) & ~(g["a_auth"] < ys)
    s47_in = (g["s47"] <= ye) & ~(np.fmax(g["icpc"], g["s47"] + 30) < ys)
    plan_in = (g["plan_start"] <= ye) & ~(g["plan_end"] < ys)
    cpp_in = (g["cpp_start"] <= ye) & ~(g["cpp_end"] < ys)
    icpc = known(g["icpc"])
    ep = _frame({
        "CINreferralDate": iso(g["ref"]), "ReferralSource": g["source"],
        "PrimaryNeedCode": g["need"], "CINclosureDate": iso(g["closure"]),
        "ReasonForClosure": np.where(closed, g["rc"], ""), "DateOfInitialCPC": _fmt(icpc, iso=True),
        "ReferralNFA": np.where(g["nfa"], "true", "false"),
        "AssessmentActualStartDate": np.where(a_in, iso(g["a_start"]), ""),
        "AssessmentInternalReviewDate": np.where(a_in, iso(g["a_review"]), ""),
        "AssessmentAuthorisationDate": np.where(a_in, iso(g["a_auth"]), ""),
        "CINPlanStartDate": np.where(plan_in, iso(g["plan_start"]), ""),
        "CINPlanEndDate": np.where(plan_in, iso(g["plan_end"]), ""),
        "S47ActualStartDate": np.where(s47_in, iso(g["s47"]), ""),
        "InitialCPCtarget": np.where(s47_in, iso(g["icpc_target"]), ""),
        "S47DateOfInitialCPC": np.where(s47_in, _fmt(icpc, iso=True), ""),
        "ICPCnotRequired": np.where(s47_in & ((g["icpc_not_required"] == "true") | ~np.isnan(icpc)),
                                    g["icpc_not_required"], ""),
        "CPPstartDate": np.where(cpp_in, iso(g["cpp_start"]), ""),
        "CPPendDate": np.where(cpp_in, iso(g["cpp_end"]), ""),
        "InitialCategoryOfAbuse": np.where(cpp_in, g["cat"], ""),
        "LatestCategoryOfAbuse": np.where(cpp_in, g["cat_latest"], ""),
        "NumberOfPreviousCPP": np.where(cpp_in, g["prev_cpp"].astype(str), ""),
    }, _k=g["child"], _factors=a_in & (g["a_auth"] <= ye))
    k = np.unique(g["child"])
    upn, unknown = _upn_or_unknown(kids, k, ye)
    dob = kids["dob"][k]
    unborn = dob > ye
    died = pd.Series(g["death"]).groupby(g["child"]).min().reindex(k).to_numpy()
    sex = _sex(kids, k, year)
    sex[unborn] = "U" if year >= 2025 else "0"
    ch = _frame({
        "LAchildID": kids["id"][k], "UPN": upn, "FormerUPN": np.where(upn == "", "", kids["former_upn"][k]),
        "UPNunknown": unknown, "PersonBirthDate": np.where(unborn, "", _fmt(dob, iso=True)),
        "ExpectedPersonBirthDate": np.where(unborn, _fmt(dob, iso=True), ""), "Sex": sex,
        "PersonDeathDate": _fmt(known(died), iso=True), "Ethnicity": kids["ethnic"][k],
        "_disab": kids["disab"][k]}, _k=k)
    F = cin["factors"]
    rows = np.searchsorted(i, F["row"])
    hit = (rows < len(i)) & (i[np.minimum(rows, len(i) - 1)] == F["row"])
    factors = dict(row=rows[hit], code=F["code"][hit])
    rv = cin["cpp_reviews"]
    rrows = np.searchsorted(i, rv["row"])
    rhit = (rrows < len(i)) & (i[np.minimum(rrows, len(i) - 1)] == rv["row"]) & (rv["date"] >= ys) & (rv["date"] <= ye)
    reviews = dict(row=rrows[rhit], date=_fmt(rv["date"][rhit], iso=True))
    return ch, ep, dict(factors=factors, reviews=reviews)


# ---------------------------------------------------------------- faults --------------------------

def inject_faults(table: dict, rate: float, rng, id_col: str | None, iso: bool = False) -> int:
    """Give a small share of rows one realistic fault in a value they hold: an invalid code, an
    impossible or textual date, or a missing child id. Returns the number of faulted rows."""
    n = len(table["_k"])
    if rate <= 0 or not n:
        return 0
    codes = [c for c in table if c in BAD_CODE]
    dates = [c for c in table if c in DATE_COLUMNS]
    faulted = 0
    for row in np.flatnonzero(rng.random(n) < rate):
        candidates = {"code": [c for c in codes if table[c][row] != ""],
                      "date": [c for c in dates if table[c][row] != ""], "id": [id_col] if id_col else []}
        kinds = [k for k, cols in candidates.items() if cols]
        if not kinds:
            continue
        kind = kinds[rng.integers(len(kinds))]
        col = candidates[kind][rng.integers(len(candidates[kind]))]
        value = table[col][row]
        if kind == "code":
            value = BAD_CODE[col]
        elif kind == "date":
            yyyy = value[:4] if iso else value[-4:]
            value = (f"{yyyy}-02-30" if iso else f"31/02/{yyyy}") if yyyy.isdigit() and rng.random() < .6 \
                else BAD_TEXT[rng.integers(len(BAD_TEXT))]
        else:
            value = ""
        table[col][row] = value
        faulted += 1
    return faulted


# ---------------------------------------------------------------- writers -------------------------

def _write_903_csv(folder: Path, tables: dict, c: Council) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        cols = SSDA903_COLUMNS[name]
        with open(folder / f"{name}.csv", "w", encoding=c.encoding, newline="") as f:
            out = csv.writer(f, lineterminator=c.newline)
            out.writerow(cols)
            out.writerows(zip(*(table[col].tolist() for col in cols)))
    return len(tables)


def _write_903_xml(path: Path, tables: dict) -> None:
    """One CHILD per child in the shape of the DfE 903 XML export (samples/ssda903/fake_903.xml):
    AMISSING, AREVIEW, PERMANENCE, OC2 and AD_PLACED blocks, OC3 and AD1 fields flat in HEADER, UASC
    a flag followed by DUC. SW episodes are not in the sample: they are written as <SW_EPISODE>
    blocks holding the CSV column names, last in HEADER (where schemas/ssda903.yaml looks for them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = tables["header"]
    order = h["_k"]

    def block(name, wrap, cols, keep_empty=True):  # a table's rows as elements, joined per child
        table = tables.get(name)
        if table is None or not len(table["_k"]):
            return [("%s", np.full(len(order), "", dtype=object), None)]
        cols = {"PL" if c == "PLACE" else c: table[c] for c in cols}
        items = [item for tag, v in cols.items() for item in _el(tag, v, keep_empty)]
        if wrap:
            items = [(f"<{wrap}>", None, None), *items, (f"</{wrap}>", None, None)]
        frag = _by_child(table["_k"], _render(len(table["_k"]), items), order)
        return [("%s", frag, frag != "")]

    duc = block("uasc", None, ["DUC"])[0][1]  # a UASC child has one row, so this is its <DUC>
    items = [("<CHILD><HEADER>", None, None), *_el("CHILDID", h["CHILD"], True), *_el("UPN", h["UPN"], True),
             *_el("SEX", h["SEX"], True), *_el("DOB", h["DOB"], True), *_el("ETHNIC", h["ETHNIC"], True),
             ("<UASC>1</UASC>%s", duc, duc != ""), ("<UASC />", None, duc == ""),
             *block("missing", "AMISSING", ["MISSING", "MIS_START", "MIS_END"]),
             *block("oc3", None, ["IN_TOUCH", "ACTIV", "ACCOM"]),
             *block("ad1", None, ["DATE_INT", "DATE_MATCH", "FOSTER_CARE", "NB_ADOPTR", "SEX_ADOPTR", "LS_ADOPTR"]),
             *block("reviews", "AREVIEW", ["REVIEW", "REVIEW_CODE"]),
             *_el("MOTHER", h["MOTHER"], True), *_el("MC_DOB", h["MC_DOB"], True),
             *block("previous_permanence", "PERMANENCE", ["PREV_PERM", "LA_PERM", "DATE_PERM"], False),
             *block("oc2", "OC2", SSDA903_COLUMNS["oc2"][2:], False),
             *block("placed_for_adoption", "AD_PLACED", ["DATE_PLACED", "DATE_PLACED_CEASED", "REASON_PLACED_CEASED"]),
             *block("sw_episodes", "SW_EPISODE", ["SW_ID", "SW_DECOM", "SW_DEC", "SW_REASON"]), ("</HEADER>", None, None),
             *block("episodes", "EPISODE", ["DECOM", "RNE", "LS", "CIN", "PLACE", "PL_POST", "HOME_POST", "URN",
                                            "PLACE_PROVIDER", "DEC", "REC", "REASON_PLACE_CHANGE"]),
             ("</CHILD>\n", None, None)]
    text = "<?xml version='1.0' encoding='utf-8'?>\n<EXPSSDA903>" + "".join(_render(len(order), items))
    path.write_text(text + "</EXPSSDA903>\n", encoding="utf-8")


def _write_cin_xml(path: Path, c: Council, year: int, ch: dict, ep: dict, extra: dict) -> None:
    """The CIN census in the shape of samples/cin_census/CIN_Census_2024.xml (GenderCurrent before 2025)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(ep["_k"])

    def el(tag, values, depth):
        return _el(tag, values, pad="  " * depth, end="\n")

    def block(tag, present, *items):
        return [(f"        <{tag}>\n", None, present), *items, (f"        </{tag}>\n", None, present)]

    f, rv = extra["factors"], extra["reviews"]
    factors = _by_child(f["row"], _render(len(f["row"]), el("AssessmentFactors", f["code"], 6)), np.arange(n))
    reviews = _by_child(rv["row"], _render(len(rv["row"]), el("CPPreviewDate", rv["date"], 6)), np.arange(n))
    authorised = ep["_factors"]
    details = _render(n, [
        ("      <CINdetails>\n", None, None), *el("CINreferralDate", ep["CINreferralDate"], 4),
        *el("ReferralSource", ep["ReferralSource"], 4), *el("PrimaryNeedCode", ep["PrimaryNeedCode"], 4),
        *el("CINclosureDate", ep["CINclosureDate"], 4), *el("ReasonForClosure", ep["ReasonForClosure"], 4),
        *el("DateOfInitialCPC", ep["DateOfInitialCPC"], 4), *el("ReferralNFA", ep["ReferralNFA"], 4),
        *block("Assessments", ep["AssessmentActualStartDate"] != "",
               *el("AssessmentActualStartDate", ep["AssessmentActualStartDate"], 5),
               *el("AssessmentInternalReviewDate", ep["AssessmentInternalReviewDate"], 5),
               *el("AssessmentAuthorisationDate", ep["AssessmentAuthorisationDate"], 5),
               ("          <FactorsIdentifiedAtAssessment>\n%s          </FactorsIdentifiedAtAssessment>\n",
                factors, authorised & (factors != "")),
               ("          <FactorsIdentifiedAtAssessment/>\n", None, authorised & (factors == ""))),
        *block("CINPlanDates", ep["CINPlanStartDate"] != "", *el("CINPlanStartDate", ep["CINPlanStartDate"], 5),
               *el("CINPlanEndDate", ep["CINPlanEndDate"], 5)),
        *block("Section47", ep["S47ActualStartDate"] != "", *el("S47ActualStartDate", ep["S47ActualStartDate"], 5),
               *el("InitialCPCtarget", ep["InitialCPCtarget"], 5), *el("DateOfInitialCPC", ep["S47DateOfInitialCPC"], 5),
               *el("ICPCnotRequired", ep["ICPCnotRequired"], 5)),
        *block("ChildProtectionPlans", ep["CPPstartDate"] != "", *el("CPPstartDate", ep["CPPstartDate"], 5),
               *el("CPPendDate", ep["CPPendDate"], 5), *el("InitialCategoryOfAbuse", ep["InitialCategoryOfAbuse"], 5),
               *el("LatestCategoryOfAbuse", ep["LatestCategoryOfAbuse"], 5),
               *el("NumberOfPreviousCPP", ep["NumberOfPreviousCPP"], 5),
               ("          <Reviews>\n%s          </Reviews>\n", reviews, reviews != "")),
        ("      </CINdetails>\n", None, None)])
    kinds, which = np.unique(ch["_disab"].astype(str), return_inverse=True)
    disab = np.array(["".join(f"          <Disability>{x}</Disability>\n" for x in d.split(",") if x)
                      for d in kinds], dtype=object)[which]
    children = _render(len(ch["_k"]), [
        ("    <Child>\n      <ChildIdentifiers>\n", None, None), *el("LAchildID", ch["LAchildID"], 4),
        *el("UPN", ch["UPN"], 4), *el("FormerUPN", ch["FormerUPN"], 4), *el("UPNunknown", ch["UPNunknown"], 4),
        *el("PersonBirthDate", ch["PersonBirthDate"], 4),
        *el("ExpectedPersonBirthDate", ch["ExpectedPersonBirthDate"], 4),
        *el("Sex" if year >= 2025 else "GenderCurrent", ch["Sex"], 4), *el("PersonDeathDate", ch["PersonDeathDate"], 4),
        ("      </ChildIdentifiers>\n      <ChildCharacteristics>\n", None, None), *el("Ethnicity", ch["Ethnicity"], 4),
        ("        <Disabilities>\n%s        </Disabilities>\n", disab, disab != ""),
        ("      </ChildCharacteristics>\n%s    </Child>\n", _by_child(ep["_k"], details, ch["_k"]), None)])
    head = (f"<?xml version='1.0' encoding='utf-8'?>\n<Message>\n  <Header>\n    <CollectionDetails>\n"
            f"      <Collection>CIN</Collection>\n      <Year>{year}</Year>\n"
            f"      <ReferenceDate>{year}-03-31</ReferenceDate>\n    </CollectionDetails>\n    <Source>\n"
            f"      <SourceLevel>L</SourceLevel>\n      <LEA>{c.code}</LEA>\n"
            f"      <SoftwareCode>Local Authority</SoftwareCode>\n      <Release>csreturns synthetic 1</Release>\n"
            f"      <SerialNo>001</SerialNo>\n"
            f"      <DateTime>{year}-05-{10 + zlib.crc32(c.code.encode()) % 18:02d}T09:30:00</DateTime>\n"
            f"    </Source>\n  </Header>\n  <Children>\n")
    path.write_text(head + "".join(children) + "  </Children>\n</Message>\n", encoding="utf-8")


# ---------------------------------------------------------------- driver --------------------------

def _generate_council(landing: Path, c: Council, years: list[int], seed: int, error_rate: float,
                      linked_returns: bool = True) -> dict:
    key = zlib.crc32(c.code.encode())
    rng = np.random.default_rng([seed, key])
    fault_rng = np.random.default_rng([seed, key, 1])
    w0, w1 = year_bounds(years[0])[0], year_bounds(years[-1])[1]
    care = _simulate_care(rng, c, w0, w1, years)
    cin = _simulate_cin(rng, c, w0, w1, years, care)
    kids = _children(rng, c, care, cin)
    stats = dict(ssda903=0, cin_census=0, episodes=0, referrals=0, faults=0, children=set(), cla={})
    for y in years:
        ys, ye = year_bounds(y)
        tables = ssda903_tables(care, kids, y, np.random.default_rng([seed, key, y]))
        for table in tables.values():
            stats["faults"] += inject_faults(table, error_rate, fault_rng, "CHILD")
        folder = landing / c.code / "ssda903" / f"year={y}"
        if c.xml_903:
            _write_903_xml(folder / f"ssda903_{y}.xml", tables)
            stats["ssda903"] += 1
        else:
            stats["ssda903"] += _write_903_csv(folder, tables, c)
        ch, ep, extra = cin_frames(cin, kids, y)
        stats["faults"] += inject_faults(ep, error_rate, fault_rng, None, iso=True)
        stats["faults"] += inject_faults(ch, error_rate, fault_rng, "LAchildID", iso=True)
        _write_cin_xml(landing / c.code / "cin_census" / f"CIN_Census_{y}.xml", c, y, ch, ep, extra)
        stats["cin_census"] += 1
        stats["episodes"] += len(tables["episodes"]["_k"])
        stats["referrals"] += int(((cin["R"]["ref"] >= ys) & (cin["R"]["ref"] <= ye)).sum())
        stats["cla"][y] = int(((care["P"]["start"] <= ye) & (care["P"]["exit"] > ye)).sum())
        stats["children"] |= set(tables["header"]["_k"].tolist()) | set(ch["_k"].tolist())
    stats["children"] = len(stats["children"])
    if linked_returns:  # Annex A, CSWW and SEN2 for the same children and social workers
        stats["linked"] = write_linked_returns(landing, c, years, care, cin, kids, seed)
    return stats


def generate_landing(landing: Path, *, n_las: int = 10, years: Sequence[int] = (2023, 2024, 2025),
                     seed: int = 0, scale: float = 1.0, la_codes: Sequence[str] | None = None,
                     ees_source: Path | None = None, error_rate: float = 0.002,
                     xml_903_every: int = 4, councils: Sequence[Council] | None = None,
                     linked_returns: bool = True) -> dict:
    """Write a synthetic landing area and return what was written (files, children, episodes,
    referrals, CLA at 31 March per year, seconds). Deterministic for a given seed. ``councils``: explicit
    councils (a scenario with a known truth, transforms/scenarios.py) instead of random ones;
    ``linked_returns``: also Annex A, CSWW and SEN2 for the same children and social workers."""
    t0 = time.perf_counter()
    landing = Path(landing)
    years = sorted({int(y) for y in years})
    councils = list(councils) if councils is not None else _councils(n_las, la_codes, seed, scale, xml_903_every)
    summary = dict(las=[c.code for c in councils], la_names={c.code: c.name for c in councils}, years=years,
                   files=dict(ssda903=0, cin_census=0, published=0), children=0, episodes=0,
                   referrals=0, faulty_rows=0, cla_31_march={y: 0 for y in years})
    # councils are independent (each has its own random stream), so use the cores when there are many
    workers = min(os.cpu_count() or 1, 4) if len(councils) >= 8 else 1
    jobs = [(landing, c, years, seed, error_rate, linked_returns)
            for c in sorted(councils, key=lambda c: -c.cla)]  # big first
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_generate_council, *zip(*jobs)))
    else:
        results = [_generate_council(*job) for job in jobs]
    for s in results:
        summary["files"]["ssda903"] += s["ssda903"]
        summary["files"]["cin_census"] += s["cin_census"]
        for key, out in (("children", "children"), ("episodes", "episodes"), ("referrals", "referrals"),
                         ("faults", "faulty_rows")):
            summary[out] += s[key]
        for y, v in s["cla"].items():
            summary["cla_31_march"][y] += v
    if ees_source is not None and Path(ees_source).exists():
        published = landing / "published"
        published.mkdir(parents=True, exist_ok=True)
        for f in sorted(Path(ees_source).glob("*.csv")):
            shutil.copyfile(f, published / f.name)
            summary["files"]["published"] += 1
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("landing", type=Path)
    ap.add_argument("--las", type=int, default=10, help="number of councils")
    ap.add_argument("--la-codes", nargs="*", help="explicit 3-digit council codes (overrides --las)")
    ap.add_argument("--years", type=int, nargs="+", default=[2023, 2024, 2025])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ees-source", type=Path, help="folder of published EES CSVs to copy")
    ap.add_argument("--error-rate", type=float, default=0.002)
    ap.add_argument("--xml-903-every", type=int, default=4)
    ap.add_argument("--no-linked-returns", action="store_true", help="only SSDA903 and the CIN census")
    a = ap.parse_args(argv)
    summary = generate_landing(a.landing, n_las=a.las, years=a.years, seed=a.seed, scale=a.scale,
                               la_codes=a.la_codes, ees_source=a.ees_source, error_rate=a.error_rate,
                               xml_903_every=a.xml_903_every, linked_returns=not a.no_linked_returns)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
