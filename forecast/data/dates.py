"""Reading a date column without guessing: ISO dates as written, other forms only when unambiguous.

``2013-01-16`` and ``2010-01-04T16:00-05:00`` are read as the calendar date written (the
time and its offset are dropped: each timestamp's date in its own offset). Slashed dates
such as ``16/01/2013`` are read day-first or month-first only when the data itself says
which (a first number above 12 somewhere: day-first; a second number above 12: month-
first); when every row could be either, the user says how with ``--date-format``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import ForecastError

ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:$|[T ])")
SLASHED = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})$")


def _first(mask: pd.Series) -> int:
    """Position of the first true row (e.g. the first date that did not parse)."""
    return int(np.flatnonzero(mask.to_numpy())[0])


def _cell(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def parse_dates(values: pd.Series, label: str, date_format: str | None = None) -> pd.Series:
    """The column's dates (naive, day precision), or a one-line error naming the offending cell."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
        return dates.dt.normalize()
    if values.isna().any():
        row = _first(values.isna())
        raise ForecastError(f"{label}: the date on data row {row + 1} is empty; every row needs a date")
    strings = values.astype(str).str.strip()
    if date_format:
        parsed = pd.to_datetime(strings, format=date_format, errors="coerce")
        if parsed.isna().any():
            row = _first(parsed.isna())
            raise ForecastError(f"{label}: date {_cell(strings.iloc[row])} on data row {row + 1} does not match "
                                f"--date-format {date_format}")
        return parsed.dt.normalize()
    iso = strings.str.match(ISO_DAY)
    if iso.all():
        parsed = pd.to_datetime(strings.str[:10], format="%Y-%m-%d", errors="coerce")
        if parsed.isna().any():
            row = _first(parsed.isna())
            raise ForecastError(f"{label}: date {_cell(strings.iloc[row])} on data row {row + 1} is not a real date")
        return parsed
    slashed = strings.str.extract(SLASHED)
    if slashed.notna().all(axis=None):
        return _slashed(strings, slashed, label)
    # Month names, YYYYMMDD and the like read one way only; numbers first (03/04...) could be either.
    ambiguous = ~iso & strings.str.match(r"^\d{1,2}\D\d{1,2}\D")
    parsed = pd.to_datetime(strings, format="mixed", errors="coerce")
    bad = parsed.isna() | ambiguous
    if bad.any():
        row = _first(bad)
        raise ForecastError(f"{label}: date {_cell(strings.iloc[row])} on data row {row + 1} is not a date the "
                            f"toolkit reads without guessing; use YYYY-MM-DD or give --date-format (e.g. %d/%m/%Y)")
    return parsed.dt.normalize()


def _slashed(strings: pd.Series, parts: pd.DataFrame, label: str) -> pd.Series:
    """``a/b/year``: day-first or month-first, decided by the data, never guessed."""
    a, b = parts[0].astype(int), parts[2].astype(int)
    sep, year = parts[1].iloc[0], "%Y" if parts[3].str.len().eq(4).all() else "%y"
    day_first, month_first = (a > 12).any(), (b > 12).any()
    if day_first and month_first:
        row = int(np.flatnonzero(((a > 12) | (b > 12)).to_numpy())[-1])
        raise ForecastError(f"{label}: dates are written both day-first and month-first (e.g. {_cell(strings.iloc[row])} "
                            f"on data row {row + 1}); write them one way, ideally YYYY-MM-DD")
    if not day_first and not month_first and (a != b).any():
        row = _first(a != b)
        raise ForecastError(f"{label}: dates such as {_cell(strings.iloc[row])} read as day-first or month-first; "
                            f"say which with --date-format %d{sep}%m{sep}{year} or --date-format %m{sep}%d{sep}{year}")
    fmt = f"%d{sep}%m{sep}{year}" if day_first or not month_first else f"%m{sep}%d{sep}{year}"
    parsed = pd.to_datetime(strings, format=fmt, errors="coerce")
    if parsed.isna().any():
        row = _first(parsed.isna())
        raise ForecastError(f"{label}: date {_cell(strings.iloc[row])} on data row {row + 1} is not a real date "
                            f"(read as {fmt})")
    return parsed
