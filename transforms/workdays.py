"""English working days: bank holidays in England and Wales, computed by rule, and working-day counts.

Timeliness indicators count working days (assessments within 45, initial child protection conferences
within 15), so weekends and bank holidays must be skipped. The holidays follow the Banking and Financial
Dealings Act rules as applied since 1978, with the substitute days and the moves and one-off days
proclaimed since:

- New Year's Day (substitute: the next Monday when it falls at a weekend)
- Good Friday and Easter Monday (Western Easter)
- early May bank holiday: the first Monday of May (moved to Monday 8 May in 1995 and Friday 8 May in 2020)
- spring bank holiday: the last Monday of May (moved to 4 June in 2002 and 2012, Thursday 2 June in 2022)
- summer bank holiday: the last Monday of August
- Christmas Day and Boxing Day (substitutes: the next weekdays not already a holiday)
- one-off days: royal weddings, jubilees, the millennium, a state funeral and a coronation.
"""
from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

# Bank holidays proclaimed on another day that year (the rule's day -> the day actually taken).
MOVED = {
    "1995-05-01": "1995-05-08",   # VE Day 50th anniversary
    "2002-05-27": "2002-06-04",   # Golden Jubilee
    "2012-05-28": "2012-06-04",   # Diamond Jubilee
    "2020-05-04": "2020-05-08",   # VE Day 75th anniversary
    "2022-05-30": "2022-06-02",   # Platinum Jubilee
}
# Additional one-off bank holidays.
ONE_OFF = (
    "1973-11-14",  # wedding of Princess Anne
    "1977-06-07",  # Silver Jubilee
    "1981-07-29",  # wedding of the Prince of Wales
    "1999-12-31",  # millennium
    "2002-06-03",  # Golden Jubilee
    "2011-04-29",  # wedding of the Duke and Duchess of Cambridge
    "2012-06-05",  # Diamond Jubilee
    "2022-06-03",  # Platinum Jubilee
    "2022-09-19",  # state funeral of Queen Elizabeth II
    "2023-05-08",  # coronation of King Charles III
)


def easter_sunday(year: int) -> np.datetime64:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return np.datetime64(f"{year}-{month:02d}-{day + 1:02d}")


def _monday_on_or_after(day: str) -> np.datetime64:
    return np.busday_offset(np.datetime64(day), 0, roll="forward", weekmask="Mon")


def _last_monday_before(day: str) -> np.datetime64:
    return np.busday_offset(np.datetime64(day), -1, roll="forward", weekmask="Mon")


@lru_cache(maxsize=None)
def holidays_in(year: int) -> tuple[np.datetime64, ...]:
    """The bank holidays of one calendar year in England and Wales, sorted."""
    easter = easter_sunday(year)
    days = [easter - 2, easter + 1]
    if year >= 1978:
        days.append(_monday_on_or_after(f"{year}-05-01"))
    days.append(_last_monday_before(f"{year}-06-01"))
    days.append(_last_monday_before(f"{year}-09-01"))
    fixed = [f"{year}-12-25", f"{year}-12-26"]
    if year >= 1974:
        fixed.insert(0, f"{year}-01-01")
    for name in fixed:  # at a weekend, the next weekday not already taken (so 25 Sat, 26 Sun -> 27, 28)
        day = np.datetime64(name)
        while not np.is_busday(day) or day in days:
            day += 1
        days.append(day)
    days = [np.datetime64(MOVED.get(str(d), str(d))) for d in days]
    days += [np.datetime64(d) for d in ONE_OFF if d.startswith(f"{year}-")]
    return tuple(sorted(set(days)))


@lru_cache(maxsize=None)
def bank_holidays(first_year: int = 1990, last_year: int = 2060) -> np.ndarray:
    """Every bank holiday from 1 January `first_year` to 31 December `last_year` (datetime64[D])."""
    return np.array([d for y in range(first_year, last_year + 1) for d in holidays_in(y)], dtype="datetime64[D]")


def _days(values) -> np.ndarray:
    """Dates of any usual kind (date, str, datetime64, pandas) as datetime64[D], NaT where missing."""
    return np.asarray(pd.to_datetime(pd.Series(np.atleast_1d(np.asarray(values, dtype=object))),
                                     errors="coerce").to_numpy(), dtype="datetime64[D]")


def working_days_between(start, end):
    """Working days after `start` up to and including `end`: 1 when `end` is the first working day
    after `start`, 45 when it is the 45th (so "within 45 working days" is `<= 45`); 0 on the same day.
    Weekends and English bank holidays are not working days. Vectorised over arrays (float, NaN where
    a date is missing); scalars give an int (or None)."""
    scalar = np.ndim(start) == 0 and np.ndim(end) == 0
    s, e = _days(start), _days(end)
    s, e = np.broadcast_arrays(s, e)
    ok = ~(np.isnat(s) | np.isnat(e))
    out = np.full(s.shape, np.nan)
    if ok.any():
        years = np.concatenate([s[ok], e[ok]]).astype("datetime64[Y]").astype(int) + 1970
        holidays = bank_holidays(int(years.min()), int(years.max()) + 1)
        out[ok] = np.busday_count(s[ok] + 1, e[ok] + 1, holidays=holidays)
    if scalar:
        return None if np.isnan(out[0]) else int(out[0])
    return out


def add_working_days(start, n):
    """The `n`th working day after `start` (vectorised; `start` on a non-working day counts from the
    next working day)."""
    s = _days(start)
    years = s[~np.isnat(s)].astype("datetime64[Y]").astype(int) + 1970
    holidays = bank_holidays(int(years.min()), int(years.max()) + 2) if len(years) else bank_holidays()
    return np.busday_offset(s, n, roll="forward", holidays=holidays)


def working_day_calendar(first: date | str = "1980-01-01", last: date | str = "2080-12-31") -> pd.DataFrame:
    """One row per day with `workday_index`, the number of working days from `first` up to and
    including that day, so working days in (a, b] = index(b) - index(a): a join instead of a loop."""
    days = np.arange(np.datetime64(str(first), "D"), np.datetime64(str(last), "D") + 1)
    years = days.astype("datetime64[Y]").astype(int) + 1970
    is_working = np.is_busday(days, holidays=bank_holidays(int(years.min()), int(years.max())))
    return pd.DataFrame({"day": days, "workday_index": np.cumsum(is_working).astype(np.int32)})
