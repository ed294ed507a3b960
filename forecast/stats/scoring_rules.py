"""Scores of distribution forecasts and backtests of their value-at-risk (numpy/scipy only).

Families: the normal ``N(mu, sigma^2)`` and the Student t with location ``mu``, scale ``s`` and
``nu > 2`` degrees of freedom (standard deviation ``s * sqrt(nu / (nu - 2))``), plus empirical
distributions given as samples (historical simulation: one row of past returns per day).
Arrays broadcast like numpy; ``N`` is the number of forecast days, ``M`` the sample size,
``L`` the number of quantile levels. Lower scores are better everywhere.

References: Gneiting & Raftery (2007), "Strictly proper scoring rules, prediction and
estimation", JASA; Jordan, Krueger & Lerch (2019), "Evaluating probabilistic forecasts with
scoringRules", J. Stat. Software; Kupiec (1995); Christoffersen (1998).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

# ---------------------------------------------------------------- checks


def _positive(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    bad = ~(arr > 0)
    if bad.any():
        raise ValueError(f"{name} must be > 0, got {arr[bad].flat[0]}")
    return arr


def _dof(nu) -> np.ndarray:
    arr = np.asarray(nu, dtype=np.float64)
    bad = ~(arr > 2)
    if bad.any():
        raise ValueError(f"nu must be > 2 (a Student t with a finite variance), got {arr[bad].flat[0]}")
    return arr


def _levels(levels) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    bad = ~((arr > 0) & (arr < 1))
    if arr.ndim != 1 or bad.any():
        raise ValueError(f"levels must be a list of numbers in (0, 1), got {levels}")
    return arr


def student_t_scale(sd, nu) -> np.ndarray:
    """The scale ``s`` of a Student t with standard deviation ``sd``: ``sd * sqrt((nu - 2) / nu)``."""
    nu = _dof(nu)
    return _positive("sd", sd) * np.sqrt((nu - 2) / nu)


# ---------------------------------------------------------------- CRPS


def crps_normal(y, mu, sigma) -> np.ndarray:
    """CRPS of ``N(mu, sigma^2)`` at ``y``, per observation, in the units of ``y``.

    Closed form (Gneiting & Raftery 2007, eq. 21), ``z = (y - mu) / sigma``:
    ``sigma * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))``.
    """
    sigma = _positive("sigma", sigma)
    z = (np.asarray(y, dtype=np.float64) - mu) / sigma
    return sigma * (z * (2 * special.ndtr(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


def crps_student_t(y, mu, s, nu) -> np.ndarray:
    """CRPS of the Student t (location ``mu``, scale ``s``, ``nu`` > 2) at ``y``, per observation.

    Closed form of Jordan, Krueger & Lerch (scoringRules ``crps_t``), ``z = (y - mu) / s``,
    ``F``, ``f`` the standard t's CDF and density with ``nu`` degrees of freedom:
    ``s * (z (2 F(z) - 1) + 2 f(z) (nu + z^2) / (nu - 1)
    - 2 sqrt(nu) B(1/2, nu - 1/2) / ((nu - 1) B(1/2, nu/2)^2))``.
    The beta-function ratio is taken in logs, so large ``nu`` tends to the normal's CRPS.
    """
    s, nu = _positive("s", s), _dof(nu)
    z = (np.asarray(y, dtype=np.float64) - mu) / s
    ratio = np.exp(special.betaln(0.5, nu - 0.5) - 2 * special.betaln(0.5, nu / 2))
    return s * (z * (2 * stats.t.cdf(z, nu) - 1) + 2 * stats.t.pdf(z, nu) * (nu + z ** 2) / (nu - 1)
                - 2 * np.sqrt(nu) * ratio / (nu - 1))


def crps_sample(y, samples) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` [..., M] at ``y`` [...], exact.

    Energy form (Gneiting & Raftery 2007, eq. 22): ``E|X - y| - 0.5 E|X - X'|`` with X, X'
    drawn independently from the M values (each with weight 1/M, so no 1/(M-1) correction:
    this is the CRPS of the empirical CDF itself). With the sorted values ``x_(1..M)``,
    ``0.5 E|X - X'| = sum_i (2i - M - 1) x_(i) / M^2``: O(M log M) per row, vectorised over
    rows. The values must not contain NaN.
    """
    xs = np.sort(np.asarray(samples, dtype=np.float64), axis=-1)           # [..., M]
    m = xs.shape[-1]
    if m == 0:
        raise ValueError("samples must hold at least one value per row, got 0")
    y = np.asarray(y, dtype=np.float64)[..., None]                        # [..., 1]
    spread = xs @ (2 * np.arange(1, m + 1) - m - 1) / m ** 2              # [...]: 0.5 E|X - X'|
    return np.mean(np.abs(xs - y), axis=-1) - spread


# ---------------------------------------------------------------- likelihood


def nll_normal(y, mu, sigma) -> np.ndarray:
    """Negative log-likelihood of ``N(mu, sigma^2)`` at ``y``, per observation (callers average).

    ``0.5 log(2 pi sigma^2) + (y - mu)^2 / (2 sigma^2)``; depends on the units of ``y``.
    """
    return -stats.norm.logpdf(y, loc=mu, scale=_positive("sigma", sigma))


def nll_student_t(y, mu, s, nu) -> np.ndarray:
    """Negative log-likelihood of the Student t (location ``mu``, scale ``s``, ``nu`` > 2), per observation."""
    return -stats.t.logpdf(y, _dof(nu), loc=mu, scale=_positive("s", s))


# ---------------------------------------------------------------- quantiles


def quantile_column(level: float) -> str:
    """Column name of a quantile level: ``q`` then ``100 * level`` without its decimal point,
    with exactly two digits before it.

    0.01 -> q01, 0.05 -> q05, 0.5 -> q50, 0.95 -> q95, 0.99 -> q99, 0.025 -> q025,
    0.975 -> q975, 0.001 -> q001 (0.1%). The two leading digits keep the names
    unambiguous: q025 is 2.5%, q25 is 25%.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    whole, _, fraction = f"{100 * level:.8f}".rstrip("0").rstrip(".").partition(".")
    return f"q{whole.zfill(2)}{fraction}"


def quantiles_normal(mu, sigma, levels) -> np.ndarray:
    """Quantiles of ``N(mu, sigma^2)``: ``mu + sigma * Phi^-1(level)`` -> [N, L] for ``mu``, ``sigma`` [N]."""
    z = special.ndtri(_levels(levels))                                   # [L]
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))[:, None]         # [N, 1]
    return mu + np.atleast_1d(_positive("sigma", sigma))[:, None] * z


def quantiles_student_t(mu, s, nu, levels) -> np.ndarray:
    """Quantiles of the Student t: ``mu + s * t_nu^-1(level)`` -> [N, L] for ``mu``, ``s``, ``nu`` [N] (or scalars)."""
    nu = np.atleast_1d(_dof(nu))[:, None]                                # [N or 1, 1]
    z = stats.t.ppf(_levels(levels)[None, :], nu)                        # [N or 1, L]
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))[:, None]
    return mu + np.atleast_1d(_positive("s", s))[:, None] * z


def quantiles_sample(samples, levels, method: str = "linear") -> np.ndarray:
    """Quantiles of each row of ``samples`` [N, M] -> [N, L].

    ``method`` is numpy's: ``"linear"`` (the default, Hyndman & Fan type 7) interpolates
    between order statistics; ``"inverted_cdf"`` gives the empirical CDF's own quantile.
    """
    xs = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    return np.quantile(xs, _levels(levels), axis=-1, method=method).T


def pinball_loss(y, q, levels) -> float:
    """Mean pinball (quantile) loss of quantile forecasts ``q`` [N, L] at levels [L] for ``y`` [N].

    Per row and level: ``(1{y < q} - tau) (q - y)``, not multiplied by 2 (Gneiting &
    Raftery's quantile score is twice this; the CRPS is the integral over tau of twice it).
    Averaged over rows and levels; units of ``y``.
    """
    tau = _levels(levels)                                                # [L]
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))                   # [N, L]
    if q.shape[-1] != len(tau):
        raise ValueError(f"q has {q.shape[-1]} columns but levels has {len(tau)} entries")
    y = np.asarray(y, dtype=np.float64).reshape(-1, 1)                   # [N, 1]
    return float(np.mean(((y < q) - tau) * (q - y)))


# ---------------------------------------------------------------- VaR backtests


def _hits(hits) -> np.ndarray:
    arr = np.asarray(hits)
    if arr.ndim != 1 or not np.all((arr == 0) | (arr == 1)):
        raise ValueError("hits must be a 1-D series of 0/1 (or bool), one per day")
    return arr.astype(np.int64)


def _log_lik(counts_hit, counts_miss, prob) -> float:
    """``miss * log(1 - prob) + hit * log(prob)`` with ``0 * log 0 = 0``."""
    return float(special.xlogy(counts_miss, 1 - prob) + special.xlogy(counts_hit, prob))


def kupiec_pvalue(hits, alpha: float) -> float:
    """Kupiec's (1995) unconditional coverage test: is the hit rate ``alpha``?

    ``hits`` [T]: 1 on days the outcome fell below the ``alpha`` quantile (VaR). With ``x``
    hits in ``T`` days and ``pi = x / T``:
    ``LR = -2 [log L(alpha) - log L(pi)]``, ``log L(p) = (T - x) log(1 - p) + x log p``
    (``0 log 0 = 0``), against chi2(1). Defined with no hit or only hits too; NaN for T = 0.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    h = _hits(hits)
    t, x = len(h), int(h.sum())
    if t == 0:
        return float("nan")
    lr = -2 * (_log_lik(x, t - x, alpha) - _log_lik(x, t - x, x / t))
    return float(stats.chi2.sf(max(lr, 0.0), 1))


def _transitions(h: np.ndarray) -> tuple[int, int, int, int]:
    """Counts ``n00, n01, n10, n11`` of day-to-day transitions (``nij``: state i then j)."""
    prev, nxt = h[:-1], h[1:]
    return (int(np.sum((prev == 0) & (nxt == 0))), int(np.sum((prev == 0) & (nxt == 1))),
            int(np.sum((prev == 1) & (nxt == 0))), int(np.sum((prev == 1) & (nxt == 1))))


def _markov_log_lik(n00: int, n01: int, n10: int, n11: int) -> float:
    """Log-likelihood of the first-order Markov chain at its estimates ``pi01``, ``pi11``."""
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    return _log_lik(n01, n00, pi01) + _log_lik(n11, n10, pi11)


def christoffersen_pvalue(hits) -> float:
    """Christoffersen's (1998) independence test of VaR hits against a first-order Markov chain.

    With ``nij`` the number of days in state j after a day in state i (1 = hit),
    ``pi01 = n01 / (n00 + n01)``, ``pi11 = n11 / (n10 + n11)``, ``pi = (n01 + n11) / (T - 1)``:
    ``LR = -2 [log L(pi) - log L(pi01, pi11)]`` against chi2(1), ``0 log 0 = 0``.

    NaN when independence cannot be tested: fewer than 2 days, or no transition out of one of
    the two states (no hit, or a single hit on the last day; only hits; ...), where the LR is
    0 by construction and a p-value of 1 would read as a pass.
    """
    h = _hits(hits)
    if len(h) < 2:
        return float("nan")
    n00, n01, n10, n11 = _transitions(h)
    if n00 + n01 == 0 or n10 + n11 == 0:
        return float("nan")
    pi = (n01 + n11) / (len(h) - 1)
    lr = -2 * (_log_lik(n01 + n11, n00 + n10, pi) - _markov_log_lik(n00, n01, n10, n11))
    return float(stats.chi2.sf(max(lr, 0.0), 1))


def conditional_coverage_pvalue(hits, alpha: float) -> float:
    """Christoffersen's (1998) joint test of coverage ``alpha`` and independence, chi2(2).

    ``LR = -2 [log L(alpha) - log L(pi01, pi11)]`` over the ``T - 1`` transitions; it equals
    Kupiec's LR on ``hits[1:]`` plus the independence LR. Defined with no hit or only hits
    (it is then the coverage part alone); NaN for fewer than 2 days.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    h = _hits(hits)
    if len(h) < 2:
        return float("nan")
    n00, n01, n10, n11 = _transitions(h)
    lr = -2 * (_log_lik(n01 + n11, n00 + n10, alpha) - _markov_log_lik(n00, n01, n10, n11))
    return float(stats.chi2.sf(max(lr, 0.0), 2))
