"""Windows and splits: shapes, date alignment on a hand-checked series, purging, short histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.history import PriceHistory
from forecast.data.windows import (build_series, forecastable_origins, make_inputs, make_targets, time_split,
    volatility_proxy)
from forecast.errors import ForecastError


def history(prices, high=None, low=None):
    dates = pd.bdate_range("2021-03-01", periods=len(prices), name="date")
    frame = pd.DataFrame({"close": prices, "adj_close": prices}, index=dates)
    if high is not None:
        frame["high"], frame["low"] = high, low
    return PriceHistory(frame, "toy", "test")


def test_series_alignment_on_a_hand_checked_series():
    prices = [100.0, 110.0, 99.0, 99.0, 108.9]
    s = build_series(history(prices))
    # Day 0 has no return and is dropped; row i is day i+1.
    assert list(s.dates) == list(pd.bdate_range("2021-03-02", periods=4))
    np.testing.assert_allclose(s.returns, np.log([1.1, 0.9, 1.0, 1.1]))
    np.testing.assert_allclose(s.target, s.returns)
    assert s.feature_names == ("returns",)


def test_window_of_origin_t_ends_at_t_and_targets_start_at_t_plus_1():
    features = np.arange(10, dtype=float)[:, None] * np.array([1.0, 10.0])  # [T=10, F=2]
    target = np.arange(10, dtype=float) + 100
    origins = np.array([2, 5, 8])
    x = make_inputs(features, origins, lookback=3)
    y = make_targets(target, origins, horizon=1)
    assert x.shape == (3, 3, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x[1, :, 0], [3, 4, 5])           # rows t-2..t
    np.testing.assert_array_equal(x[1, :, 1], [30, 40, 50])
    np.testing.assert_array_equal(y[:, 0], [103, 106, 109])        # day t+1
    y3 = make_targets(target, np.array([2, 5]), horizon=3)
    np.testing.assert_array_equal(y3, [[103, 104, 105], [106, 107, 108]])
    with pytest.raises(ForecastError):
        make_targets(target, np.array([8]), horizon=2)              # day 10 does not exist


def test_forecast_date_is_the_day_after_the_window():
    s = build_series(history(100 * np.exp(np.cumsum(np.full(40, 0.001)))))
    origins = np.array([9, 20])
    assert list(s.target_dates(origins)) == [s.dates[10], s.dates[21]]
    x = make_inputs(s.features, origins, 5)
    assert x[0, -1, 0] == pytest.approx(s.returns[9])            # last input: the day before the forecast day


def test_split_is_time_ordered_and_purged_for_multi_day_targets():
    split = time_split(1000, lookback=20, horizon=3, val_fraction=0.15, test_fraction=0.15)
    assert split.train.max() < split.val.min() < split.val.max() < split.test.min()
    # No training target (days t+1..t+3) reaches the first validation target day.
    assert split.train.max() + 3 <= split.val.min()
    assert split.val.max() + 3 <= split.test.min()
    assert split.test.max() == 1000 - 3 - 1
    assert len(split.test) == round(len(forecastable_origins(1000, 20, 3)) * 0.15)


def test_history_too_short_for_the_window_is_a_clear_error():
    with pytest.raises(ForecastError, match=r"history too short: 60 days.*--lookback 30.*shorter --lookback"):
        time_split(60, lookback=30, horizon=1, val_fraction=0.15, test_fraction=0.15)


def test_optional_features_and_volatility_target():
    prices = np.array([100, 101, 102, 101, 103.0])
    high, low = prices * 1.01, prices * 0.99
    s = build_series(history(prices, high, low), target="volatility", features=["returns", "range"])
    assert s.feature_names == ("returns", "range", "volatility")
    np.testing.assert_allclose(s.features[:, 1], np.log(1.01 / 0.99))
    proxy, kind = volatility_proxy(history(prices, high, low).frame, np.zeros(5))
    assert kind == "parkinson"
    np.testing.assert_allclose(s.target, np.log(1.01 / 0.99) / np.sqrt(4 * np.log(2)))
    with pytest.raises(ForecastError, match="--features range needs High and Low"):
        build_series(history(prices), features=["returns", "range"])
    with pytest.raises(ForecastError, match="--features volume needs a positive Volume"):
        build_series(history(prices), features=["returns", "volume"])
