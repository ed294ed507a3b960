"""The next NYSE trading day, from the exchange's own calendar (``exchange_calendars``, XNYS).

The calendar knows the regular holidays and the unscheduled closures (2012-10-29/30
for Hurricane Sandy, national days of mourning such as 2018-12-05). Closures announced
after the installed ``exchange_calendars`` release are unknown until it is updated.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from ..errors import ForecastError

# exchange_calendars' default range is shorter; open the span the toolkit supports.
FIRST, LAST = "1999-01-01", "2030-12-31"
CAVEAT = "closures announced after the installed exchange_calendars release are not known: update it to be sure"


@lru_cache(maxsize=1)
def nyse():
    import exchange_calendars

    return exchange_calendars.get_calendar("XNYS", start=FIRST, end=LAST)


def next_trading_day(day: pd.Timestamp) -> pd.Timestamp:
    """The first NYSE session strictly after ``day`` (any calendar date from 1999 to 2030)."""
    day = pd.Timestamp(day).normalize()
    calendar = nyse()
    following = day + pd.Timedelta(days=1)
    if day < pd.Timestamp(FIRST) or following > calendar.last_session:
        raise ForecastError(f"the NYSE calendar covers {FIRST} to {LAST}; no trading day after {day:%Y-%m-%d} "
                            f"is known (update exchange_calendars)")
    if following <= calendar.first_session:
        return pd.Timestamp(calendar.first_session)
    return pd.Timestamp(calendar.date_to_session(following, direction="next"))
