"""The next NYSE trading day, holidays and unscheduled closures included, from 1999 to 2030."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.data.calendar import next_trading_day
from forecast.errors import ForecastError


@pytest.mark.parametrize("day, expected", [
    ("2018-12-31", "2019-01-02"),   # New Year's Day
    ("2021-12-30", "2021-12-31"),   # NYSE traded on New Year's Eve 2021 (the holiday was not observed on Friday)
    ("2012-10-26", "2012-10-31"),   # Hurricane Sandy: closed 2012-10-29 and 30
    ("2018-12-04", "2018-12-06"),   # national day of mourning, President G. H. W. Bush
    ("2001-09-10", "2001-09-17"),   # closed after the attacks of September 11
    ("2022-06-17", "2022-06-21"),   # weekend, then Juneteenth observed on Monday
    ("2019-07-03", "2019-07-05"),   # Independence Day
    ("2016-03-24", "2016-03-28"),   # Good Friday
    ("2030-12-30", "2030-12-31"),
    ("1999-01-01", "1999-01-04"),   # a holiday itself: the first session after it
])
def test_next_trading_day(day, expected):
    assert next_trading_day(pd.Timestamp(day)) == pd.Timestamp(expected)


def test_beyond_the_calendar_is_a_clear_error():
    with pytest.raises(ForecastError, match="covers 1999-01-01 to 2030-12-31"):
        next_trading_day(pd.Timestamp("2030-12-31"))


def test_predict_names_the_session_after_a_closure(isolated, capsys):
    """Prices up to Friday 2012-10-26: the next session is Wednesday 2012-10-31, after Sandy."""
    dates = pd.bdate_range(end="2012-10-26", periods=400)
    close = 1400 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, len(dates))))
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close}).to_csv("sandy.csv", index=False)
    assert main(["fit", "--csv", "sandy.csv", "--lookback", "5", "--hidden-size", "4", "--max-epochs", "1",
                 "--accelerator", "cpu", "--out", "fit"]) == 0
    assert main(["predict", "--csv", "sandy.csv"]) == 0
    out = capsys.readouterr().out
    assert "forecast for 2012-10-31" in out and "exchange_calendars" in out
