"""Metric definitions against hand computations."""

from __future__ import annotations

import math

import time

import numpy as np
import pandas as pd
import pytest

from forecast.stats.metrics import (always_up_hit_rate, default_block_size, diebold_mariano, directional_accuracy,
    forecast_metrics, model_confidence_set, pesaran_timmermann, qlike, r2_oos, rmse, spa_test, trading_metrics,
    trading_returns)

nan = pytest.approx(float("nan"), nan_ok=True)


def test_error_metrics_by_hand():
    y, p = np.array([0.01, -0.02, 0.03, 0.0]), np.array([0.0, -0.01, 0.01, 0.01])
    assert rmse(y, p) == pytest.approx(math.sqrt((1e-4 + 1e-4 + 4e-4 + 1e-4) / 4))
    assert r2_oos(y, p, np.zeros(4)) == pytest.approx(1 - 7e-4 / 14e-4)
    acc, n = directional_accuracy(y, p)
    assert (acc, n) == (pytest.approx(2 / 3), 3)        # the day with y == 0 is left out; p=0 at day 1 is a miss
    assert math.isnan(directional_accuracy(y, np.zeros(4))[0])
    assert always_up_hit_rate(y) == pytest.approx(2 / 3)   # 0.01, 0.03 up, -0.02 down; the tie left out
    assert math.isnan(always_up_hit_rate(np.zeros(3)))


def test_pesaran_timmermann_by_hand():
    # 11 days; the last one (y == 0) is left out, leaving n = 10:
    #   outcome  U U D U D U U D U D   Py = 6/10
    #   forecast U U U D D U U D D U   Px = 6/10
    #   agree    Y Y N N Y Y Y Y N N   P  = 6/10
    # P* = .6*.6 + .4*.4 = .52;  V(P) = .52*.48/10 = .02496
    # V(P*) = (.2)^2*.24/10 + (.2)^2*.24/10 + 4*.6*.6*.4*.4/100 = .00096 + .00096 + .002304 = .004224
    # S = (.6 - .52) / sqrt(.02496 - .004224) = .08 / sqrt(.020736) = .08 / .144 = 5/9
    y = np.array([0.5, 1.2, -0.3, 0.8, -1.1, 0.4, 0.9, -0.2, 0.6, -0.7, 0.0])
    p = np.array([0.1, 0.3, 0.2, -0.1, -0.4, 0.2, 0.05, -0.3, -0.2, 0.1, 0.3])
    stat, pval = pesaran_timmermann(y, p)
    assert stat == pytest.approx(5 / 9)
    assert pval == pytest.approx(0.28925736, abs=1e-7)     # 1 - Phi(5/9): one-sided
    assert pesaran_timmermann(y + 1.0, p + 1.0, reference=1.0) == (pytest.approx(stat), pytest.approx(pval))
    assert pesaran_timmermann(-y, -p)[0] == pytest.approx(stat)


def test_pesaran_timmermann_degenerate_cases_and_skill():
    rising = np.random.default_rng(0).normal(0.001, 0.01, size=500)
    always_up = np.ones(500)
    assert pesaran_timmermann(rising, always_up) == (nan, nan)       # no testable directional skill
    acc, n = directional_accuracy(rising, always_up)
    assert acc == pytest.approx(always_up_hit_rate(rising)) and acc > 0.5 and n == 500
    assert pesaran_timmermann(rising, np.zeros(500)) == (nan, nan)   # the naive forecast: no direction
    assert pesaran_timmermann(rising[:2], -rising[:2]) == (nan, nan)  # n < 3
    assert pesaran_timmermann(np.ones(5), np.array([1, -1, 1, -1, 1.0])) == (nan, nan)  # outcomes all up
    skilled = rising + np.random.default_rng(1).normal(0, 0.005, size=500)
    stat, pval = pesaran_timmermann(rising, skilled)
    assert stat > 5 and pval < 1e-6
    m = forecast_metrics(rising, skilled, np.zeros(500))
    assert {"pt_stat", "pt_pvalue", "always_up_hit_rate"} <= set(m) and "dir_acc_pvalue" not in m
    assert (m["pt_stat"], m["pt_pvalue"]) == (pytest.approx(stat), pytest.approx(pval))


def test_diebold_mariano_with_hln_correction():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    good, bad = y + rng.normal(scale=0.5, size=200), np.zeros(200)
    stat, p = diebold_mariano(y, good, bad)
    d = (y - good) ** 2 - y ** 2
    dm = d.mean() / math.sqrt(d.var() / 200)
    assert stat == pytest.approx(dm * math.sqrt((200 + 1 - 2) / 200))
    assert stat < 0 and p < 1e-6
    assert diebold_mariano(y, bad, bad) == (nan, 1.0)


def test_diebold_mariano_horizon_two_by_hand():
    # naive = 0, forecast = 1 every day, y = 2 2 1 1 0 0  (T = 6, h = 2)
    # d = (y - 1)^2 - y^2 = 1 - 2y = -3 -3 -1 -1 1 1;  mean -1;  centred -2 -2 0 0 2 2
    # gamma0 = (4+4+0+0+4+4)/6 = 8/3;  gamma1 = (4+0+0+0+4)/6 = 4/3
    # long-run variance = gamma0 + 2 gamma1 = 16/3;  DM = -1 / sqrt((16/3)/6) = -3 / (2 sqrt 2)
    # HLN factor = sqrt((T + 1 - 2h + h(h-1)/T) / T) = sqrt((6 + 1 - 4 + 1/3) / 6) = sqrt(5/9)
    # statistic = -3/(2 sqrt 2) * sqrt(5)/3 = -sqrt(5/8);  p = 2 P(t_5 > sqrt(5/8))
    y, p = np.array([2, 2, 1, 1, 0, 0.0]), np.ones(6)
    stat, pval = diebold_mariano(y, p, np.zeros(6), horizon=2)
    assert stat == pytest.approx(-math.sqrt(5 / 8))
    assert pval == pytest.approx(0.46502264, abs=1e-7)
    # h = 1: variance gamma0 only, DM = -1 / sqrt((8/3)/6) = -1.5, HLN sqrt((6 + 1 - 2)/6)
    assert diebold_mariano(y, p, np.zeros(6))[0] == pytest.approx(-1.5 * math.sqrt(5 / 6))


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


# ---------------------------------------------------------------- SPA and MCS

def _losses(seed: int, skilled: bool, t: int = 500) -> pd.DataFrame:
    """Squared errors on a random walk's returns: naive, noise with no skill, and (if asked) a model
    that sees half of y's variance plus its contrarian twin."""
    rng = np.random.default_rng(seed)
    part, rest = rng.normal(scale=math.sqrt(0.5), size=(2, t))
    y = part + rest                                                   # y ~ N(0, 1) iid
    preds = {"naive": np.zeros(t), **{f"noise{i}": rng.normal(scale=0.1, size=t) for i in range(3)}}
    if skilled:
        preds |= {"sees_half": part, "contrarian": -part}
    return pd.DataFrame({name: (y - p) ** 2 for name, p in preds.items()})


def test_spa_and_mcs_find_no_skill_on_a_random_walk():
    losses = _losses(0, skilled=False)
    start = time.perf_counter()
    spa = spa_test(losses, "naive")
    mcs = model_confidence_set(losses)
    assert time.perf_counter() - start < 5
    assert set(spa) >= {"pvalue", "pvalue_lower", "pvalue_upper", "statistic", "benchmark", "block_size", "reps", "n_days"}
    assert (spa["benchmark"], spa["block_size"], spa["reps"], spa["n_days"]) == ("naive", 8, 1000, 500)
    assert spa["pvalue_lower"] <= spa["pvalue"] <= spa["pvalue_upper"]
    assert spa["pvalue"] > 0.05
    assert list(mcs) == list(losses.columns)
    assert all(set(v) == {"in_mcs", "mcs_pvalue"} for v in mcs.values())
    assert mcs["naive"]["in_mcs"] and max(v["mcs_pvalue"] for v in mcs.values()) == 1.0
    assert spa_test(losses, "naive") == spa and model_confidence_set(losses) == mcs     # seed=0 by default


def test_spa_rejects_and_mcs_keeps_only_the_model_that_sees_part_of_y():
    losses = _losses(1, skilled=True)
    spa = spa_test(losses, "naive")
    assert spa["pvalue"] < 0.05 and spa["statistic"] > 3
    mcs = model_confidence_set(losses)
    assert [name for name, v in mcs.items() if v["in_mcs"]] == ["sees_half"]
    assert mcs["naive"]["mcs_pvalue"] <= 0.10 and mcs["contrarian"]["mcs_pvalue"] <= 0.10


def test_spa_and_mcs_edge_cases():
    losses = _losses(2, skilled=False)[["naive", "noise0"]]
    assert 0 <= spa_test(losses, "naive", reps=200)["pvalue"] <= 1          # a single model besides the benchmark
    # a model identical to the benchmark cannot be better (arch alone reports p = 0 here)
    twin = losses.assign(naive_twin=losses["naive"])
    assert spa_test(twin[["naive", "naive_twin"]], "naive")["pvalue"] == 1.0
    mcs = model_confidence_set(twin, reps=200)                             # arch alone fails on identical columns
    assert mcs["naive"] == mcs["naive_twin"] and not math.isnan(mcs["naive"]["mcs_pvalue"])
    assert model_confidence_set(twin[["naive", "naive_twin"]]) == {
        "naive": {"in_mcs": True, "mcs_pvalue": 1.0}, "naive_twin": {"in_mcs": True, "mcs_pvalue": 1.0}}
    # days with a NaN anywhere are dropped before anything else
    holes = losses.copy()
    holes.iloc[[3, 10], 1] = np.nan
    dropped = spa_test(holes, "naive", reps=200)
    assert dropped == spa_test(holes.dropna(), "naive", reps=200) and dropped["n_days"] == 498
    with pytest.raises(ValueError, match="benchmark='garch' is not a column"):
        spa_test(losses, "garch")
    with pytest.raises(ValueError, match="at least 10"):
        model_confidence_set(losses.iloc[:9])
    with pytest.raises(ValueError, match="size must be in"):
        model_confidence_set(losses, size=10)
    assert [default_block_size(t) for t in (20, 250, 1000, 5000)] == [5, 6, 10, 17]
