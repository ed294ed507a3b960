"""Baselines that speak scikit-learn: ``fit(X, y)`` / ``predict(X)`` on the same windows.

``X`` is ``[N, L, F]`` (unscaled windows, the last row is the origin day), ``y`` is
``[N, H]``. A forecast sees its own window only, so no baseline can look ahead.
They are ``BaseEstimator`` subclasses: ``__init__`` only stores its parameters,
fitted state (ending in ``_``) is set only in ``fit``, and ``predict`` before ``fit``
raises ``NotFittedError`` (``check_is_fitted``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted


class _Baseline(RegressorMixin, BaseEstimator):
    def __init__(self, feature_names: tuple[str, ...] = ("returns",), target: str = "return", horizon: int = 1):
        self.feature_names = feature_names
        self.target = target
        self.horizon = horizon

    def _column(self, name: str) -> int:
        return tuple(self.feature_names).index(name)


class NaiveBaseline(_Baseline):
    """Random walk: a zero return; for volatility, the last observed value."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "NaiveBaseline":
        self.n_features_in_ = X.shape[-1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        if self.target == "volatility":
            last = X[:, -1, self._column("volatility")]
            return np.repeat(last[:, None], self.horizon, axis=1).astype(np.float64)
        return np.zeros((len(X), self.horizon))


class MeanBaseline(_Baseline):
    """The training targets' historical mean, per horizon step."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "MeanBaseline":
        self.mean_ = np.asarray(y, dtype=np.float64).mean(axis=0)  # [H]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return np.tile(self.mean_, (len(X), 1))


class RidgeBaseline(_Baseline):
    """Ridge regression on the flattened window (all lags of all features), alpha by CV."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RidgeBaseline":
        self.model_ = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))
        self.model_.fit(X.reshape(len(X), -1), y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.model_.predict(X.reshape(len(X), -1))).reshape(len(X), -1)


class EwmaBaseline(_Baseline):
    """RiskMetrics: ``s2_{t+1} = lam * s2_t + (1 - lam) * v_t^2`` on the volatility proxy ``v``.

    Run over the window; the weight left beyond the window (``lam^L``) goes to the
    window's mean square, so a short window still gives an unbiased level.
    """

    def __init__(self, feature_names=("returns",), target="volatility", horizon=1, lam: float = 0.94):
        super().__init__(feature_names, target, horizon)
        self.lam = lam

    def fit(self, X: np.ndarray, y: np.ndarray) -> "EwmaBaseline":
        self.n_features_in_ = X.shape[-1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        v2 = X[:, :, self._column("volatility")].astype(np.float64) ** 2  # [N, L]
        s2 = v2.mean(axis=1)
        for step in range(v2.shape[1]):  # loop over L time steps, vectorised over windows
            s2 = self.lam * s2 + (1 - self.lam) * v2[:, step]
        return np.repeat(np.sqrt(s2)[:, None], self.horizon, axis=1)  # flat term structure


class GarchBaseline(_Baseline):
    """GARCH(1,1) of the daily return (``arch`` package), fit on the training returns.

    Training windows come from consecutive origins, so the training return series is
    the first window plus each later window's last day. Forecasts filter each window
    from the unconditional variance, then iterate the GARCH recursion ``H`` steps.
    GARCH models the close-to-close return's volatility, whose level differs from the
    target's proxy (the high-low range misses overnight moves), so the forecasts are
    scaled by ``mean(target) / mean(in-sample forecast)`` over the training windows.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> "GarchBaseline":
        from arch import arch_model

        r = X[:, :, self._column("returns")].astype(np.float64)
        returns = np.concatenate([r[0], r[1:, -1]]) * 100.0  # percent: arch's optimiser prefers it
        fitted = arch_model(returns, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
        self.omega_, self.alpha_, self.beta_ = (float(fitted.params[k]) for k in ("omega", "alpha[1]", "beta[1]"))
        self.level_ = float(np.mean(y) / np.mean(self._forecast(X)))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.level_ * self._forecast(X)

    def _forecast(self, X: np.ndarray) -> np.ndarray:
        persistence = min(self.alpha_ + self.beta_, 0.999)
        unconditional = self.omega_ / (1 - persistence)
        r2 = (X[:, :, self._column("returns")].astype(np.float64) * 100.0) ** 2  # [N, L]
        s2 = np.full(len(X), unconditional)
        for step in range(r2.shape[1]):
            s2 = self.omega_ + self.alpha_ * r2[:, step] + self.beta_ * s2  # variance of day step+1
        steps = persistence ** np.arange(self.horizon)                      # [H]
        path = unconditional + steps[None, :] * (s2[:, None] - unconditional)
        return np.sqrt(path) / 100.0


HAR_DAYS = (1, 5, 22)   # today, the last week, the last month


class HarBaseline(_Baseline):
    """HAR (Corsi, 2009) in logs: tomorrow's volatility on today's, the last week's and the last month's.

    ``log v_(t+h) = b0 + b_d log v_t + b_w log mean(v_(t-4..t)) + b_m log mean(v_(t-21..t)) + e``, one
    least-squares fit per step ``h`` on the training windows of the volatility proxy ``v``; the
    forecast is the log-normal mean ``exp(fit + var(e) / 2)``. Days whose proxy is zero (no
    range, or no move) are floored at 5% of the training median, so the logs stay finite. With a
    window shorter than 22 days the monthly average is over the whole window.
    """

    def __init__(self, feature_names=("returns",), target="volatility", horizon=1, column: str = "volatility"):
        super().__init__(feature_names, target, horizon)
        self.column = column

    def regressors(self, X: np.ndarray) -> np.ndarray:
        """``[N, L, F]`` windows -> ``[N, 4]``: 1 and the logs of the daily, weekly and monthly averages."""
        v = np.maximum(np.asarray(X[:, :, self._column(self.column)], dtype=np.float64), self.floor_)   # [N, L]
        return np.column_stack([np.ones(len(v))] + [np.log(v[:, -days:].mean(axis=1)) for days in HAR_DAYS])

    def fit(self, X: np.ndarray, y: np.ndarray) -> "HarBaseline":
        v = np.asarray(X[:, :, self._column(self.column)], dtype=np.float64)
        positive = v[v > 0]
        self.floor_ = 0.05 * float(np.median(positive)) if positive.size else 1e-8
        Z, logy = self.regressors(X), np.log(np.maximum(np.asarray(y, dtype=np.float64), self.floor_))   # [N, H]
        self.coef_, *_ = np.linalg.lstsq(Z, logy, rcond=None)                                         # [4, H]
        self.residual_var_ = np.var(logy - Z @ self.coef_, axis=0)                                    # [H]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return np.exp(self.regressors(X) @ self.coef_ + self.residual_var_ / 2)
