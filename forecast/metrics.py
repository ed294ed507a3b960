"""Error metrics, significance tests and trading metrics (definitions as in the design notes).

All functions take 1-D arrays aligned by forecast day.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

TRADING_DAYS = 252


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(p)) ** 2)))


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(p))))


def r2_oos(y: np.ndarray, p: np.ndarray, naive: np.ndarray) -> float:
    """Out-of-sample R^2 against the naive forecast: ``1 - SSE_model / SSE_naive``."""
    sse_naive = float(np.sum((y - naive) ** 2))
    return float("nan") if sse_naive == 0 else 1.0 - float(np.sum((y - p) ** 2)) / sse_naive


def directional_accuracy(y: np.ndarray, p: np.ndarray, reference: np.ndarray | float = 0.0) -> tuple[float, float, int]:
    """Share of days where the forecast's direction (vs ``reference``) matches the outcome's.

    Days whose outcome equals the reference are left out. Returns ``(accuracy,
    two-sided binomial p-value against 0.5, days counted)``; NaN for a forecast with no
    direction at all (the naive one).
    """
    dy, dp = np.sign(np.asarray(y) - reference), np.sign(np.asarray(p) - reference)
    keep = dy != 0
    n = int(keep.sum())
    if n == 0 or not np.any(dp[keep] != 0):
        return float("nan"), float("nan"), n
    hits = int(np.sum(dy[keep] == dp[keep]))
    return hits / n, float(stats.binomtest(hits, n, 0.5).pvalue), n


def diebold_mariano(y: np.ndarray, p: np.ndarray, naive: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal squared error vs naive, Harvey-Leybourne-Newbold corrected.

    ``d_t = e_model^2 - e_naive^2``; the long-run variance uses autocovariances up to
    lag ``h-1``; the statistic is scaled by HLN's small-sample factor and compared to a
    Student t with ``T-1`` degrees of freedom. Negative: the model's errors are smaller.
    Returns ``(statistic, two-sided p-value)``.
    """
    d = (np.asarray(y) - p) ** 2 - (np.asarray(y) - naive) ** 2
    t = len(d)
    if t < 3:
        return float("nan"), float("nan")
    centred = d - d.mean()
    lrv = np.dot(centred, centred) / t
    for k in range(1, horizon):
        lrv += 2 * np.dot(centred[k:], centred[:-k]) / t
    if not lrv > 0:
        return float("nan"), 1.0  # identical errors: no evidence of a difference
    dm = d.mean() / math.sqrt(lrv / t)
    hln = math.sqrt((t + 1 - 2 * horizon + horizon * (horizon - 1) / t) / t)
    stat = dm * hln
    return float(stat), float(2 * stats.t.sf(abs(stat), df=t - 1))


def qlike(y: np.ndarray, p: np.ndarray) -> float:
    """QLIKE loss of a volatility forecast on variances: ``mean(log h + s2 / h)``.

    Patton's (2011) robust loss; this form stays finite on days with a zero proxy.
    """
    h = np.maximum(np.asarray(p, dtype=np.float64) ** 2, 1e-12)
    return float(np.mean(np.log(h) + np.asarray(y, dtype=np.float64) ** 2 / h))


def forecast_metrics(y: np.ndarray, p: np.ndarray, naive: np.ndarray, target: str = "return",
                     horizon: int = 1, reference: np.ndarray | float = 0.0) -> dict[str, float]:
    """The metric set every model gets, with the same names everywhere (MLflow's compare view)."""
    y, p, naive = (np.asarray(a, dtype=np.float64) for a in (y, p, naive))
    accuracy, accuracy_p, _ = directional_accuracy(y, p, reference)
    dm, dm_p = diebold_mariano(y, p, naive, horizon)
    out = {"rmse": rmse(y, p), "mae": mae(y, p), "r2_oos": r2_oos(y, p, naive),
           "dir_acc": accuracy, "dir_acc_pvalue": accuracy_p, "dm_stat": dm, "dm_pvalue": dm_p, "n": float(len(y))}
    if target == "volatility":
        out["qlike"] = qlike(y, p)
    return out


# ---------------------------------------------------------------- trading

def trading_returns(y: np.ndarray, p: np.ndarray, mode: str = "long_flat", cost_bps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Daily strategy log returns and positions from the forecast's sign.

    ``long_flat``: 1 when the forecast is positive, else 0; ``long_short``: its sign.
    The position for day t is decided at the close of t-1, so it earns day t's return;
    costs are ``cost_bps`` per unit of turnover ``|pos_t - pos_(t-1)|`` (start flat).
    """
    pos = (p > 0).astype(np.float64) if mode == "long_flat" else np.sign(p).astype(np.float64)
    turnover = np.abs(np.diff(np.r_[0.0, pos]))
    simple = pos * np.expm1(y) - turnover * cost_bps / 1e4
    return np.log1p(np.maximum(simple, -0.999999)), pos


def trading_metrics(log_returns: np.ndarray, positions: np.ndarray | None = None) -> dict[str, float]:
    """CAGR, annualised volatility, Sharpe (252 days, zero rate), max drawdown, turnover."""
    r = np.asarray(log_returns, dtype=np.float64)
    n = len(r)
    equity = np.exp(np.cumsum(r))
    years = n / TRADING_DAYS
    simple = np.expm1(r)
    vol = float(np.std(simple, ddof=1) * math.sqrt(TRADING_DAYS)) if n > 1 else float("nan")
    peak = np.maximum.accumulate(np.r_[1.0, equity])
    out = {
        "cagr": float(equity[-1] ** (1 / years) - 1) if n else float("nan"),
        "ann_vol": vol,
        "sharpe": float(np.mean(simple) * TRADING_DAYS / vol) if vol and vol > 0 else float("nan"),
        "max_drawdown": float(np.min(np.r_[1.0, equity] / peak - 1)),
        "total_return": float(equity[-1] - 1) if n else float("nan"),
    }
    if positions is not None:
        out["turnover"] = float(np.mean(np.abs(np.diff(np.r_[0.0, positions]))) * TRADING_DAYS)
    return out
