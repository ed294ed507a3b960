"""Cross-sectional scores of a panel: the ranked probability score of quintile ranks, and the draws behind it."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.stats.cross_section import UNINFORMED_RPS, quintiles, ranked_probability_score
from forecast.stats.distributions import Distribution


def test_quintiles_rank_along_the_series():
    assert quintiles(np.array([0.3, -1.0, 2.0, 0.0, 0.1])).tolist() == [3, 0, 4, 1, 2]
    assert quintiles(np.arange(10.0)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_the_uninformed_forecast_scores_0_16_and_a_sure_one_zero():
    rng = np.random.default_rng(0)
    outcomes = rng.normal(size=(50, 5))
    same = rng.normal(size=(50, 5, 4000))                      # one distribution for every series: 20% each
    assert ranked_probability_score(same, outcomes).mean() == pytest.approx(UNINFORMED_RPS, abs=0.003)
    sure = np.repeat(outcomes[..., None], 10, axis=-1)           # every draw is what happened
    np.testing.assert_allclose(ranked_probability_score(sure, outcomes), 0.0)
    # by hand: the draws put series 4 lowest, so series 0-3 one quintile above where they fell (each 1/5) and
    # series 4 four below (4/5)
    day = np.array([[[-9.0], [1.0], [2.0], [3.0], [-10.0]]])
    outcome = np.array([[-9.0, 1.0, 2.0, 3.0, 10.0]])
    expected = np.mean([1 / 5, 1 / 5, 1 / 5, 1 / 5, 4 / 5])
    assert ranked_probability_score(day, outcome)[0] == pytest.approx(expected)


@pytest.mark.parametrize("family", ["normal", "student-t", "empirical"])
def test_draws_follow_the_forecast_distribution(family):
    n = 3
    mean, sd = np.array([[0.0], [1.0], [-2.0]]), np.array([[1.0], [0.5], [2.0]])
    dist = Distribution(family, mean, sd, np.full((n, 1), 5.0) if family == "student-t" else None,
                        np.random.default_rng(1).normal(3.0, 1.0, (n, 2000)) if family == "empirical" else None)
    draws = dist.sample(1, 200_000, np.random.default_rng(2))
    assert draws.shape == (n, 200_000)
    expected_mean = np.full(n, 3.0) if family == "empirical" else mean[:, 0]
    expected_sd = np.full(n, 1.0) if family == "empirical" else sd[:, 0]
    np.testing.assert_allclose(draws.mean(axis=1), expected_mean, atol=0.03)
    np.testing.assert_allclose(draws.std(axis=1), expected_sd, rtol=0.03)
