"""Metric definitions against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from forecast.metrics import (diebold_mariano, directional_accuracy, forecast_metrics, qlike, r2_oos, rmse,
                              trading_metrics, trading_returns)


def test_error_metrics_by_hand():
    y, p = np.array([0.01, -0.02, 0.03, 0.0]), np.array([0.0, -0.01, 0.01, 0.01])
    assert rmse(y, p) == pytest.approx(math.sqrt((1e-4 + 1e-4 + 4e-4 + 1e-4) / 4))
    assert r2_oos(y, p, np.zeros(4)) == pytest.approx(1 - 7e-4 / 14e-4)
    acc, pval, n = directional_accuracy(y, p)
    assert (acc, n) == (pytest.approx(2 / 3), 3)        # the day with y == 0 is left out; p=0 at day 1 is a miss
    assert pval == pytest.approx(stats.binomtest(2, 3).pvalue)
    assert math.isnan(directional_accuracy(y, np.zeros(4))[0])


def test_diebold_mariano_with_hln_correction():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    good, bad = y + rng.normal(scale=0.5, size=200), np.zeros(200)
    stat, p = diebold_mariano(y, good, bad)
    d = (y - good) ** 2 - y ** 2
    dm = d.mean() / math.sqrt(d.var() / 200)
    assert stat == pytest.approx(dm * math.sqrt((200 + 1 - 2) / 200))
    assert stat < 0 and p < 1e-6
    assert diebold_mariano(y, bad, bad) == (pytest.approx(float("nan"), nan_ok=True), 1.0)


def test_qlike_is_minimised_by_the_true_variance():
    sigma = np.full(1000, 0.01)
    y = np.abs(np.random.default_rng(1).normal(scale=0.01, size=1000))
    values = {s: qlike(y, sigma * s) for s in (0.5, 1.0, 2.0)}
    assert values[1.0] < values[0.5] and values[1.0] < values[2.0]
    assert "qlike" in forecast_metrics(y, sigma, sigma, target="volatility")


def test_trading_rules_positions_costs_and_drawdown():
    y = np.log(np.array([1.01, 0.98, 1.02, 1.0]))
    p = np.array([1.0, -1.0, 1.0, -1.0])
    flat, pos = trading_returns(y, p, "long_flat", cost_bps=0)
    np.testing.assert_allclose(pos, [1, 0, 1, 0])
    np.testing.assert_allclose(flat, np.log([1.01, 1.0, 1.02, 1.0]))
    ls, _ = trading_returns(y, p, "long_short", cost_bps=10)
    # long_short turnover: 1, 2, 2, 2 units -> 10, 20, 20, 20 bps
    np.testing.assert_allclose(np.expm1(ls), [0.01 - 0.001, 0.02 - 0.002, 0.02 - 0.002, 0.0 - 0.002])
    m = trading_metrics(np.log([1.1, 0.5, 1.2]))
    assert m["max_drawdown"] == pytest.approx(-0.5)
    assert m["total_return"] == pytest.approx(1.1 * 0.5 * 1.2 - 1)
