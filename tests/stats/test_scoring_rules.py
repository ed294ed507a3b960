"""Scores of distribution forecasts and VaR backtests against integrals, brute force and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from forecast.stats.scoring_rules import (christoffersen_pvalue, conditional_coverage_pvalue, crps_normal,
    crps_sample, crps_student_t, kupiec_pvalue, nll_normal, nll_student_t, pinball_loss, quantile_column,
    quantiles_normal, quantiles_sample, quantiles_student_t, student_t_scale)

nan = pytest.approx(float("nan"), nan_ok=True)


def _crps_by_integration(cdf, y: float) -> float:
    """CRPS = integral of (F(x) - 1{x >= y})^2 dx, split at y."""
    below, _ = integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, epsabs=1e-11)
    above, _ = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, np.inf, epsabs=1e-11)
    return below + above


@pytest.mark.parametrize("y, mu, sigma", [(0.0, 0.0, 1.0), (0.013, -0.002, 0.011), (-3.0, 0.5, 2.0)])
def test_crps_normal_matches_the_integral(y, mu, sigma):
    expected = _crps_by_integration(lambda x: stats.norm.cdf(x, mu, sigma), y)
    assert crps_normal(y, mu, sigma) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("y, mu, s, nu", [(0.0, 0.0, 1.0, 3.0), (0.02, 0.001, 0.008, 4.5), (-4.0, 0.5, 1.5, 30.0)])
def test_crps_student_t_matches_the_integral(y, mu, s, nu):
    expected = _crps_by_integration(lambda x: stats.t.cdf(x, nu, mu, s), y)
    assert crps_student_t(y, mu, s, nu) == pytest.approx(expected, rel=1e-6)


def test_crps_closed_forms_vectorise_and_agree_in_the_limit():
    y, mu, sigma = np.array([-1.0, 0.0, 0.5, 2.0]), np.array([0.0, 0.1, 0.2, 0.3]), np.array([1.0, 0.5, 2.0, 1.0])
    normal = crps_normal(y, mu, sigma)
    assert normal.shape == (4,)
    np.testing.assert_allclose(crps_student_t(y, mu, sigma, 1e7), normal, rtol=1e-6)
    # the CRPS of a point forecast is the absolute error: a narrow normal tends to it
    np.testing.assert_allclose(crps_normal(y, mu, 1e-9), np.abs(y - mu), atol=1e-8)
    with pytest.raises(ValueError, match="sigma must be > 0, got 0.0"):
        crps_normal(y, mu, np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="nu must be > 2.*got 2.0"):
        crps_student_t(y, mu, sigma, 2.0)


def test_crps_sample_equals_the_brute_force_energy_form():
    rng = np.random.default_rng(0)
    samples = rng.standard_t(4, size=(6, 37))
    samples[0, :5] = samples[0, 5]                                   # ties
    y = rng.normal(size=6)
    brute = [np.mean(np.abs(x - yi)) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :])) for x, yi in zip(samples, y)]
    np.testing.assert_allclose(crps_sample(y, samples), brute, rtol=1e-12, atol=1e-15)
    assert crps_sample(0.3, np.array([1.0])) == pytest.approx(0.7)   # one value: the absolute error
    # two values {0, 1} at y = 0: E|X - y| = 0.5, E|X - X'| = 0.5 -> 0.5 - 0.25
    assert crps_sample(0.0, np.array([1.0, 0.0])) == pytest.approx(0.25)
    big = rng.normal(0.1, 2.0, size=(1, 20000))
    assert crps_sample(np.array([0.7]), big)[0] == pytest.approx(crps_normal(0.7, 0.1, 2.0), rel=0.02)


def test_negative_log_likelihoods_by_hand():
    # N(1, 2^2) at y = 2: 0.5 log(2 pi 4) + 1 / 8
    assert nll_normal(2.0, 1.0, 2.0) == pytest.approx(0.5 * math.log(8 * math.pi) + 0.125)
    # standard t with nu = 3 at 0: -log(Gamma(2) / (sqrt(3 pi) Gamma(1.5))) = log(sqrt(3 pi) * sqrt(pi) / 2)
    assert nll_student_t(0.0, 0.0, 1.0, 3.0) == pytest.approx(math.log(math.sqrt(3 * math.pi) * math.sqrt(math.pi) / 2))
    # location and scale: the density of mu + s T at y is f((y - mu) / s) / s
    assert nll_student_t(1.5, 1.0, 0.5, 3.0) == pytest.approx(nll_student_t(1.0, 0.0, 1.0, 3.0) + math.log(0.5))
    assert nll_normal(np.zeros(5), 0.0, 1.0).shape == (5,)           # per observation: callers average


def test_quantiles_are_ordered_and_named():
    levels = [0.01, 0.05, 0.5, 0.95, 0.99]
    mu, sigma = np.array([0.0, 0.001]), np.array([0.01, 0.02])
    qn = quantiles_normal(mu, sigma, levels)
    qt = quantiles_student_t(mu, student_t_scale(sigma, 5.0), 5.0, levels)
    qs = quantiles_sample(np.random.default_rng(0).normal(size=(2, 500)), levels)
    for q in (qn, qt, qs):
        assert q.shape == (2, 5) and np.all(np.diff(q, axis=1) > 0)
    np.testing.assert_allclose(qn[:, 2], mu)
    np.testing.assert_allclose(qn[:, 4], mu + 2.3263478740 * sigma)
    # same standard deviation, fatter tails: the t's 1% quantile lies further out, its 5% one closer in
    assert np.all(qt[:, 0] < qn[:, 0]) and np.all(qt[:, 1] > qn[:, 1])
    sd = student_t_scale(2.0, 5.0) * math.sqrt(5 / 3)
    assert sd == pytest.approx(2.0)
    assert quantiles_sample(np.arange(1.0, 101.0), [0.01, 0.5], method="inverted_cdf").tolist() == [[1.0, 50.0]]
    names = {0.01: "q01", 0.05: "q05", 0.5: "q50", 0.95: "q95", 0.99: "q99", 0.025: "q025", 0.975: "q975",
             0.001: "q001", 0.1: "q10", 0.07: "q07"}
    assert {level: quantile_column(level) for level in names} == names
    with pytest.raises(ValueError, match="level must be in"):
        quantile_column(1.0)
    with pytest.raises(ValueError, match="levels must be"):
        quantiles_normal(mu, sigma, [0.0, 0.5])


def test_pinball_loss_by_hand():
    # y = 1.0, levels 0.1 and 0.9, quantiles 0.0 and 2.0:
    #   tau 0.1, q 0.0 (y above q): (0 - 0.1) * (0.0 - 1.0) = 0.1
    #   tau 0.9, q 2.0 (y below q): (1 - 0.9) * (2.0 - 1.0) = 0.1
    # y = -1.0, same quantiles:
    #   tau 0.1, q 0.0 (y below q): (1 - 0.1) * (0.0 + 1.0) = 0.9
    #   tau 0.9, q 2.0 (y below q): (1 - 0.9) * (2.0 + 1.0) = 0.3
    # mean over 2 rows x 2 levels = (0.1 + 0.1 + 0.9 + 0.3) / 4 = 0.35 (not multiplied by 2)
    q = np.array([[0.0, 2.0], [0.0, 2.0]])
    assert pinball_loss(np.array([1.0, -1.0]), q, [0.1, 0.9]) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="q has 2 columns but levels has 3"):
        pinball_loss(np.array([1.0, -1.0]), q, [0.1, 0.5, 0.9])


def test_kupiec_by_hand():
    # 250 days, 6 hits, alpha = 1%: pi = 6/250 = 0.024
    # LR = -2 [244 log(0.99) + 6 log(0.01) - 244 log(0.976) - 6 log(0.024)] = 3.55535
    hits = np.zeros(250, dtype=int)
    hits[[10, 50, 51, 120, 200, 240]] = 1
    lr = -2 * (244 * math.log(0.99) + 6 * math.log(0.01) - 244 * math.log(0.976) - 6 * math.log(0.024))
    assert lr == pytest.approx(3.55535, abs=1e-5)
    assert kupiec_pvalue(hits, 0.01) == pytest.approx(stats.chi2.sf(lr, 1)) == pytest.approx(0.059354, abs=1e-6)
    # no hit at all: LR = -2 * 250 log(0.99) = 5.02517 (0 log 0 = 0), still a valid test
    assert kupiec_pvalue(np.zeros(250), 0.01) == pytest.approx(stats.chi2.sf(-500 * math.log(0.99), 1))
    assert kupiec_pvalue(np.r_[np.zeros(99), 1], 0.01) == pytest.approx(1.0)   # exactly 1%
    assert kupiec_pvalue(np.array([], dtype=int), 0.01) == nan
    with pytest.raises(ValueError, match="hits must be"):
        kupiec_pvalue(np.array([0, 2, 1]), 0.01)


def test_christoffersen_by_hand():
    # 0 0 1 1 0 0 0 0 1 1 0 0 -> transitions n00 = 5, n01 = 2, n10 = 2, n11 = 2
    # pi01 = 2/7, pi11 = 2/4, pi = 4/11
    # log L(pi)         = 7 log(7/11) + 4 log(4/11)
    # log L(pi01, pi11) = 5 log(5/7) + 2 log(2/7) + 2 log(1/2) + 2 log(1/2)
    # LR = -2 [log L(pi) - log L(pi01, pi11)] = 0.499647
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0])
    restricted = 7 * math.log(7 / 11) + 4 * math.log(4 / 11)
    markov = 5 * math.log(5 / 7) + 2 * math.log(2 / 7) + 4 * math.log(1 / 2)
    lr_ind = -2 * (restricted - markov)
    assert lr_ind == pytest.approx(0.499647, abs=1e-6)
    assert christoffersen_pvalue(hits) == pytest.approx(stats.chi2.sf(lr_ind, 1))
    # pi01 = pi11 = 1/3 (n00 = 4, n01 = 2, n10 = 2, n11 = 1): no dependence at all
    assert christoffersen_pvalue(np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0])) == pytest.approx(1.0)
    # joint test over the 11 transitions with alpha = 10%: Kupiec's LR on hits[1:] (11 days, 4 hits) + lr_ind
    lr_uc = -2 * (7 * math.log(0.9) + 4 * math.log(0.1) - restricted)
    assert conditional_coverage_pvalue(hits, 0.1) == pytest.approx(stats.chi2.sf(lr_uc + lr_ind, 2))
    assert conditional_coverage_pvalue(np.zeros(100), 0.01) == pytest.approx(stats.chi2.sf(-198 * math.log(0.99), 2))


def test_christoffersen_degenerate_series_are_not_testable():
    assert christoffersen_pvalue(np.zeros(250)) == nan                  # no hit
    assert christoffersen_pvalue(np.ones(20)) == nan                    # only hits
    assert christoffersen_pvalue(np.r_[np.zeros(99), 1]) == nan         # the one hit on the last day
    assert christoffersen_pvalue(np.array([1])) == nan
    assert not math.isnan(christoffersen_pvalue(np.r_[1, np.zeros(99)]))
    assert conditional_coverage_pvalue(np.array([0]), 0.01) == nan
