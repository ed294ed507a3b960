"""Distribution baselines of the daily return: what risk managers use, to judge the networks' distributions.

- ``RiskMetrics``: zero mean, EWMA variance ``s2_(t+1) = 0.94 s2_t + 0.06 r_t^2``, normal (J.P. Morgan, 1996).
- ``GarchT``: GARCH(1,1) with a constant mean and Student-t innovations, fitted by ``arch``.
- ``HistoricalSimulation``: tomorrow's return is drawn from the last 250 returns (empirical distribution).
- ``HarDistribution``: zero mean, standard deviation from HAR (Corsi, 2009) on the volatility proxy,
  normal or Student t (the family of ``--distribution``).

They speak scikit-learn as far as the data allows: ``__init__`` stores parameters, fitted state
ends in ``_``, ``predict_distribution`` before ``fit`` raises ``NotFittedError``. They see whole
series rather than windows, because their memory is longer than a network's lookback (250 days for
``hist``, the whole past for an EWMA or GARCH filter): ``fit(returns, proxy)`` takes the
training stretch; ``predict_distribution(returns, proxy, origins)`` takes the series up to the
last origin (the caller cuts it there) and forecasts day ``t+1 .. t+H`` of each origin ``t`` from
``returns[:t+1]`` and ``proxy[:t+1]`` only. Variances filtered through the past start from the
training data's variance, far enough back to be forgotten.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal, stats
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..stats.distributions import Distribution
from ..errors import ForecastError
from .baselines import HAR_DAYS, HarBaseline

PERCENT = 100.0   # arch's optimiser prefers returns in percent


class _DistributionBaseline(BaseEstimator):
    def __init__(self, horizon: int = 1):
        self.horizon = horizon

    def _flat(self, values: np.ndarray) -> np.ndarray:
        """``[N] -> [N, H]``: the same value for every step."""
        return np.repeat(np.asarray(values, dtype=np.float64)[:, None], self.horizon, axis=1)


def _filter(inputs: np.ndarray, decay: float, start: float) -> np.ndarray:
    """``s[t] = decay * s[t-1] + inputs[t]`` with ``s[-1] = start``, vectorised (``s[t]``: the variance of day t+1)."""
    out, _ = signal.lfilter([1.0], [1.0, -decay], inputs, zi=[decay * start])
    return out


class RiskMetrics(_DistributionBaseline):
    """Zero mean, EWMA variance with ``lam`` (0.94 for daily data), normal; a flat term structure."""

    def __init__(self, horizon: int = 1, lam: float = 0.94):
        super().__init__(horizon)
        self.lam = lam

    def fit(self, returns: np.ndarray, proxy: np.ndarray | None = None) -> "RiskMetrics":
        self.start_variance_ = float(np.mean(np.asarray(returns, dtype=np.float64) ** 2))
        return self

    def predict_distribution(self, returns, proxy, origins) -> Distribution:
        check_is_fitted(self)
        r2 = np.asarray(returns, dtype=np.float64) ** 2
        variance = _filter((1 - self.lam) * r2, self.lam, self.start_variance_)    # [T]: day t+1's variance
        sd = np.sqrt(variance[np.asarray(origins)])
        return Distribution("normal", np.zeros((len(sd), self.horizon)), self._flat(sd))


class GarchT(_DistributionBaseline):
    """GARCH(1,1), constant mean, Student-t innovations (``arch``): ``e_t = r_t - mu``,
    ``s2_(t+1) = omega + alpha e_t^2 + beta s2_t``; steps ahead revert to the unconditional variance."""

    def fit(self, returns: np.ndarray, proxy: np.ndarray | None = None) -> "GarchT":
        from arch import arch_model

        r = np.asarray(returns, dtype=np.float64) * PERCENT
        fitted = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(disp="off")
        p = fitted.params
        self.mu_, self.omega_, self.alpha_, self.beta_, self.nu_ = (
            float(p[k]) for k in ("mu", "omega", "alpha[1]", "beta[1]", "nu"))
        self.start_variance_ = float(np.var(r))
        return self

    def predict_distribution(self, returns, proxy, origins) -> Distribution:
        check_is_fitted(self)
        e2 = (np.asarray(returns, dtype=np.float64) * PERCENT - self.mu_) ** 2
        variance = _filter(self.omega_ + self.alpha_ * e2, self.beta_, self.start_variance_)[np.asarray(origins)]
        persistence = self.alpha_ + self.beta_
        steps = np.arange(self.horizon)
        if persistence < 1:
            long_run = self.omega_ / (1 - persistence)
            path = long_run + persistence ** steps[None, :] * (variance[:, None] - long_run)    # [N, H]
        else:
            path = np.repeat(variance[:, None], self.horizon, axis=1)
        n = len(variance)
        return Distribution("student-t", np.full((n, self.horizon), self.mu_ / PERCENT), np.sqrt(path) / PERCENT,
                            np.full((n, self.horizon), max(self.nu_, 2.05)))


class HistoricalSimulation(_DistributionBaseline):
    """The empirical distribution of the last ``window`` returns (250: about a year), for every step."""

    def __init__(self, horizon: int = 1, window: int = 250):
        super().__init__(horizon)
        self.window = window

    def fit(self, returns: np.ndarray, proxy: np.ndarray | None = None) -> "HistoricalSimulation":
        self.n_returns_ = len(returns)
        return self

    def predict_distribution(self, returns, proxy, origins) -> Distribution:
        check_is_fitted(self)
        origins = np.asarray(origins)
        _enough(origins, self.window, "hist", "returns")
        samples = sliding_window_view(np.asarray(returns, dtype=np.float64), self.window)[origins - self.window + 1]
        return Distribution("empirical", self._flat(samples.mean(axis=1)), self._flat(samples.std(axis=1, ddof=1)),
                            samples=samples)


class HarDistribution(_DistributionBaseline):
    """Zero mean and the standard deviation ``k * v_hat``, ``v_hat`` HAR's forecast of the volatility proxy
    (``HarBaseline``), normal or Student t. ``k`` (and the t's degrees of freedom) are fitted by maximum
    likelihood to the training returns divided by HAR's in-sample forecasts: the proxy (the high-low
    range) misses the overnight move, so its level differs from the return's standard deviation."""

    def __init__(self, horizon: int = 1, family: str = "normal"):
        super().__init__(horizon)
        self.family = family

    @staticmethod
    def _windows(proxy: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """``[N, 22, 1]`` proxy windows ending at each origin."""
        days = HAR_DAYS[-1]
        return sliding_window_view(np.asarray(proxy, dtype=np.float64), days)[origins - days + 1][:, :, None]

    def fit(self, returns: np.ndarray, proxy: np.ndarray | None = None) -> "HarDistribution":
        if proxy is None:
            raise ValueError("HarDistribution needs the volatility proxy")
        h, days = self.horizon, HAR_DAYS[-1]
        origins = np.arange(days - 1, len(returns) - h)
        if len(origins) < 30:
            raise ForecastError(f"har needs at least {days + h + 30} training days, got {len(returns)}")
        X = self._windows(proxy, origins)
        targets = sliding_window_view(np.asarray(proxy, dtype=np.float64), h)[origins + 1]           # [N, H]
        self.har_ = HarBaseline(("volatility",), "volatility", h).fit(X, targets)
        z = np.asarray(returns, dtype=np.float64)[origins + 1] / self.har_.predict(X)[:, 0]        # [N]
        if self.family == "student-t":
            df, _, scale = stats.t.fit(z, floc=0)
            self.df_ = max(float(df), 2.05)
            self.k_ = float(scale) * np.sqrt(self.df_ / (self.df_ - 2))
        else:
            self.df_, self.k_ = None, float(np.sqrt(np.mean(z ** 2)))
        return self

    def predict_distribution(self, returns, proxy, origins) -> Distribution:
        check_is_fitted(self)
        origins = np.asarray(origins)
        _enough(origins, HAR_DAYS[-1], "har", "days of the volatility proxy")
        sd = self.k_ * self.har_.predict(self._windows(proxy, origins))                            # [N, H]
        df = None if self.df_ is None else np.full(sd.shape, self.df_)
        return Distribution(self.family, np.zeros_like(sd), sd, df)


def _enough(origins: np.ndarray, days: int, name: str, what: str) -> None:
    if len(origins) and origins.min() < days - 1:
        raise ForecastError(f"{name} needs {days} {what} up to each forecast's origin; the first has only "
                            f"{int(origins.min()) + 1}: use a later --test-start (or more history)")
