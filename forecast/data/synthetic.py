"""Simulated return series whose best possible forecast error is known.

Each is driven by i.i.d. noise ``e_t ~ N(0, noise^2)``, so no forecast can have a
lower RMSE than ``noise``; a model's RMSE divided by it says how much of the
learnable signal the model found:

- ``rw``:      ``r_t = e_t`` (a random walk in the price: nothing to learn)
- ``ar2``:     ``r_t = 0.5 r_(t-1) - 0.3 r_(t-2) + e_t``
- ``longmem``: ``r_t = 0.8 r_(t-L) + e_t`` (one dependency ``L`` days back)
- ``tar``:     ``r_t = 0.6 r_(t-1) if r_(t-1) > 0 else -0.6 r_(t-1)``, plus ``e_t``: a threshold AR
  whose coefficient switches with the sign of the last return. Its mean given the past is
  ``0.6 |r_(t-1)|``: nonlinear, so a linear model on the lags (ridge) cannot find it all.
- ``garch``:   ``r_t = sigma_t z_t``, ``z_t ~ N(0, 1)``, ``sigma_t^2 = w + 0.1 r_(t-1)^2 + 0.85 sigma_(t-1)^2``
  with ``w`` set so that the unconditional standard deviation is ``noise``: no point forecast beats
  zero, but tomorrow's distribution is known exactly, ``N(0, sigma_t^2)`` (``garch_volatility``
  gives ``sigma_t``), so the coverage of an interval forecast can be checked against the truth.

Prices are ``100 * exp(cumsum r)`` on business days.

``panel`` (``simulate_panel``) is a panel of three series and one covariate on one calendar, each driven by
its own noise ``e`` (standard deviation ``noise``):

- ``sim-lead``:   ``r_t = e_t``
- ``sim-follow``: ``r_t = 0.6 lead_(t-2) + e_t`` (it follows lead two days later)
- ``sim-led``:    ``r_t = 0.6 signal_(t-1) + e_t`` (the covariate ``sim-signal``, itself ``e_t``, leads it)

Each series is white noise on its own (the lagged term is independent of the series' own past), so the
best forecast from a series' own past is zero (its *univariate optimum*); with the other series and the
covariate as inputs the best forecast is the lagged term, whose error is the noise (the *full optimum*).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .history import PriceHistory

PANEL_LEAD, PANEL_FOLLOW, PANEL_LED, PANEL_SIGNAL = "sim-lead", "sim-follow", "sim-led", "sim-signal"
PANEL_LINKS = {PANEL_FOLLOW: (PANEL_LEAD, 2, 0.6), PANEL_LED: (PANEL_SIGNAL, 1, 0.6)}   # series: (driver, lag, coef)

AR2 = (0.5, -0.3)
LONGMEM_COEF = 0.8
TAR_COEF = 0.6
GARCH = (0.10, 0.85)   # alpha, beta: persistence 0.95, volatility clusters lasting weeks


def garch_volatility(length: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(r, sigma)`` of the ``garch`` series, each ``[length]``: ``sigma[t]`` is the standard deviation of
    ``r[t]`` given ``r[:t]``, so the true conditional quantile of day t at level p is ``sigma[t] * Phi^-1(p)``."""
    alpha, beta = GARCH
    omega = noise ** 2 * (1 - alpha - beta)
    burn = 500
    z = np.random.default_rng(seed).standard_normal(length + burn)
    r, s2 = np.zeros_like(z), np.full_like(z, noise ** 2)
    for t in range(len(z)):        # sequential by nature
        if t:
            s2[t] = omega + alpha * r[t - 1] ** 2 + beta * s2[t - 1]
        r[t] = np.sqrt(s2[t]) * z[t]
    return r[burn:], np.sqrt(s2[burn:])


def simulate_returns(kind: str, length: int, noise: float, seed: int, lag: int = 40) -> np.ndarray:
    if kind == "garch":
        return garch_volatility(length, noise, seed)[0]
    rng = np.random.default_rng(seed)
    burn = 200 + lag
    e = rng.normal(0.0, noise, length + burn)
    if kind == "rw":
        return e[burn:]
    # The recursions are sequential by nature (each value needs the previous ones).
    r = np.zeros_like(e)
    if kind == "ar2":
        for t in range(2, len(e)):
            r[t] = AR2[0] * r[t - 1] + AR2[1] * r[t - 2] + e[t]
    elif kind == "longmem":
        for t in range(len(e)):
            r[t] = (LONGMEM_COEF * r[t - lag] if t >= lag else 0.0) + e[t]
    elif kind == "tar":
        for t in range(1, len(e)):
            r[t] = TAR_COEF * abs(r[t - 1]) + e[t]
    else:
        raise ValueError(f"kind must be one of rw, ar2, longmem, tar, garch, got {kind!r}")
    return r[burn:]


def simulate(kind: str, length: int = 3000, noise: float = 0.01, seed: int = 0, lag: int = 40) -> PriceHistory:
    """A simulated daily history named ``synthetic-<kind>``."""
    r = simulate_returns(kind, length, noise, seed, lag)
    prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, r]))
    dates = pd.bdate_range("2000-01-03", periods=len(prices), name="date")
    frame = pd.DataFrame({"close": prices, "adj_close": prices}, index=dates)
    detail = f"noise {noise}, seed {seed}" + (f", lag {lag}" if kind == "longmem" else "")
    return PriceHistory(frame, f"synthetic-{kind}", f"simulation ({detail})")


@dataclass(frozen=True)
class SimulatedPanel:
    """The ``panel`` simulation: its series, its covariate, and each series' true conditional mean by date."""

    histories: tuple[PriceHistory, ...]
    covariate: PriceHistory
    means: dict[str, pd.Series]


@functools.lru_cache(maxsize=4)
def simulate_panel(length: int = 3000, noise: float = 0.01, seed: int = 0) -> SimulatedPanel:
    """The panel of the module's doc: ``length`` days of each series, all on one business-day calendar. Kept for
    the same arguments: a panel's series and its covariate are loaded apart, and a bench reads its truth again
    (the result is never changed)."""
    burn = 10
    e = np.random.default_rng(seed).normal(0.0, noise, (4, length + burn))
    returns = {PANEL_LEAD: e[0], PANEL_SIGNAL: e[3]}
    means = {PANEL_LEAD: np.zeros(length + burn), PANEL_SIGNAL: np.zeros(length + burn)}
    for (name, (driver, lag, coef)), noise_row in zip(PANEL_LINKS.items(), e[1:3]):
        means[name] = np.r_[np.zeros(lag), coef * returns[driver][:-lag]]
        returns[name] = means[name] + noise_row
    dates = pd.bdate_range("2000-01-03", periods=length + 1, name="date")
    detail = f"noise {noise}, seed {seed}"

    def history(name: str) -> PriceHistory:
        prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, returns[name][burn:]]))
        frame = pd.DataFrame({"close": prices, "adj_close": prices}, index=dates)
        return PriceHistory(frame, name, f"simulated panel ({detail})")

    return SimulatedPanel(tuple(history(n) for n in (PANEL_LEAD, PANEL_FOLLOW, PANEL_LED)), history(PANEL_SIGNAL),
                          {n: pd.Series(m[burn:], index=dates[1:]) for n, m in means.items() if n != PANEL_SIGNAL})
