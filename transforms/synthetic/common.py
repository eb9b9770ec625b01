"""Helpers every synthetic return shares: dates as days since 1970, working days, weighted codes, XML
rendering by template, postcodes and UPNs. The generator and the linked returns both import them, so
neither imports the other's internals."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from transforms import workdays

YEAR = 365.25
EPOCH = np.datetime64("1970-01-01", "D")
UPN_LETTERS = np.array(list("ABCDEFGHJKLMNPQRTUVWXYZ"))


# ---------------------------------------------------------------- dates ---------------------------

def _d(iso: str) -> float:
    return float((np.datetime64(iso, "D") - EPOCH).astype(np.int64))


_T0, _T1 = _d("1980-01-01"), _d("2060-12-31")


def year_bounds(year: int) -> tuple[float, float]:
    """First and last day of return year `year` (1 April year-1 .. 31 March year)."""
    return _d(f"{year - 1}-04-01"), _d(f"{year}-03-31")


@lru_cache(maxsize=1)
def _date_tables() -> tuple[np.ndarray, np.ndarray]:
    iso = np.datetime_as_string(np.arange(_T0, _T1 + 1).astype("datetime64[D]")).tolist()
    return (np.array(iso, dtype=object),
            np.array([f"{s[8:10]}/{s[5:7]}/{s[:4]}" for s in iso], dtype=object))


def _fmt(days, iso: bool = False) -> np.ndarray:
    """Days since 1970 (NaN = unknown) to 'dd/mm/yyyy' (903) or 'yyyy-mm-dd' (CIN) strings."""
    days = np.asarray(days, dtype=float)
    ok = ~np.isnan(days)
    table = _date_tables()[0 if iso else 1]
    idx = np.clip(np.where(ok, days, _T0) - _T0, 0, len(table) - 1).astype(np.int64)
    return np.where(ok, table[idx], "")


def _add_years(days, k) -> np.ndarray:
    """Calendar anniversaries (29 Feb rolls to 1 Mar), e.g. the 18th birthday."""
    days = np.asarray(days, dtype=float)
    out = np.full(days.shape, np.nan)
    ok = ~np.isnan(days)
    d = days[ok].astype(np.int64).astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    k = np.broadcast_to(np.asarray(k, dtype=np.int64), days.shape)[ok]
    out[ok] = ((m + 12 * k).astype("datetime64[D]") + (d - m.astype("datetime64[D]"))).astype(np.int64)
    return out


@lru_cache(maxsize=1)
def _bank_holidays() -> np.ndarray:
    """English bank holidays 1990-2060: working-day timeliness (assessments, ICPCs) depends on them."""
    return workdays.bank_holidays(1990, 2060)


def _return_year(days) -> np.ndarray:
    d = np.asarray(days).astype(np.int64).astype("datetime64[D]")
    return d.astype("datetime64[Y]").astype(np.int64) + 1970 + (d.astype("datetime64[M]").astype(np.int64) % 12 >= 3)


def _add_working_days(days, n) -> np.ndarray:
    days = np.asarray(days, dtype=float)
    out = np.full(days.shape, np.nan)
    ok = ~np.isnan(days)
    out[ok] = np.busday_offset(days[ok].astype(np.int64).astype("datetime64[D]"),
                               np.asarray(n)[ok].astype(np.int64), roll="forward",
                               holidays=_bank_holidays()).astype(np.int64)
    return out


# ---------------------------------------------------------------- helpers -------------------------

def _pick(rng, weights: dict, n: int) -> np.ndarray:
    codes = np.array(list(weights), dtype=object)
    p = np.fromiter(weights.values(), float)
    return codes[rng.choice(len(codes), n, p=p / p.sum())] if n else codes[:0]


def _el(tag: str, values, keep_empty: bool = False, pad: str = "", end: str = "") -> list[tuple]:
    """Render items for `<tag>value</tag>`; a blank value omits the element, or writes `<tag />`
    when `keep_empty` (as the 903 XML export does)."""
    v = np.asarray(values, dtype=object)
    has = v != ""
    items = [(f"{pad}<{tag}>%s</{tag}>{end}", v, has)]
    return items + [(f"{pad}<{tag} />{end}", None, ~has)] if keep_empty else items


def _render(n: int, items: list[tuple]) -> np.ndarray:
    """n rows of text from items (text, values, present): `text` holds one %s when `values` is
    given; `present` (None: always) says per row whether the item appears. Rows sharing a pattern
    of present items share one template, so each row costs a single string format."""
    out = np.empty(n, dtype=object)
    if not n:
        return out
    present = np.stack([np.ones(n, bool) if on is None else np.asarray(on, bool) for _, _, on in items], 1)
    keys = [present[:, j:j + 62] @ (1 << np.arange(min(62, present.shape[1] - j), dtype=np.int64))
            for j in range(0, present.shape[1], 62)]  # the pattern as bits
    order = np.lexsort(keys)
    pattern_key = np.stack([key[order] for key in keys], 1)
    starts = np.flatnonzero(np.r_[True, (pattern_key[1:] != pattern_key[:-1]).any(1)])
    for a, b in zip(starts, np.r_[starts[1:], n]):
        rows = order[a:b]
        on = present[rows[0]]
        template = "".join(text for (text, _, _), shown in zip(items, on) if shown)
        cols = [values[rows].tolist() for (_, values, _), shown in zip(items, on) if shown and values is not None]
        out[rows] = [template % row for row in zip(*cols)] if cols else template
    return out


def _by_child(keys, fragments, order) -> np.ndarray:
    """Concatenate per-row XML fragments per key (child or CIN episode), aligned to `order`
    ('' where a key has none); row order within a key is kept."""
    keys, order = np.asarray(keys), np.asarray(order)
    out = np.full(len(order), "", dtype=object)
    if not len(keys):
        return out
    o = np.argsort(keys, kind="stable")
    k, frag = keys[o], np.asarray(fragments, dtype=object)[o].tolist()
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)]
    sorter = np.argsort(order)
    out[sorter[np.searchsorted(order, k[starts], sorter=sorter)]] = np.array(
        ["".join(frag[a:b]) for a, b in zip(starts.tolist(), ends.tolist())], dtype=object)
    return out


def _frame(columns: dict, **internal) -> dict[str, np.ndarray]:
    """A return table: text columns in file order, then internal `_` columns (child index, flags)."""
    return {**{k: np.asarray(v, dtype=object) for k, v in columns.items()}, **internal}


def _postcodes(rng, areas) -> np.ndarray:
    n = len(areas)
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"), dtype=object)
    return (np.asarray(areas, dtype=object) + rng.integers(1, 21, n).astype(str).astype(object) + " "
            + rng.integers(0, 10, n).astype(str).astype(object)
            + letters[rng.integers(0, 20, n)] + letters[rng.integers(0, 20, n)])


def _upns(rng, la_code: str, dob) -> np.ndarray:
    """Unique pupil numbers with a valid DfE check letter: LA code, school, year of issue, serial."""
    n = len(dob)
    issued = (1970 + np.floor(np.nan_to_num(dob) / YEAR).astype(np.int64) + 5) % 100
    num = (int(la_code) % 1000 * 10**9 + rng.integers(1000, 8000, n).astype(np.int64) * 10**5
           + issued.astype(np.int64) * 1000 + rng.integers(0, 1000, n))
    digits = (num[:, None] // 10 ** np.arange(11, -1, -1)) % 10
    check = UPN_LETTERS[(digits * np.arange(2, 14)).sum(axis=1) % 23]
    return np.strings.add(check, np.strings.zfill(num.astype(str), 12)).astype(object)
