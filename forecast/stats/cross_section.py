"""Statistics across the series of a panel: multiple testing and cross-sectional skill (numpy, scipy).

- Holm's step-down correction of p-values (one test per series: "one series of twenty beats naive at 5%"
  is what chance gives).
- The rank information coefficient: on each day, the Spearman correlation across series between the
  forecasts and what happened; its mean over days, with a Newey-West t-statistic (the daily ICs are
  autocorrelated when forecasts are persistent).
- The ranked probability score of quintile ranks (the M6 forecasting competition's score): each day, the
  probability that each series' return ranks in each quintile of the panel, against the quintile it fell in;
  0.16 for the uninformed forecast (every quintile 20%).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MIN_SERIES_IC = 5           # cross-sectional scores need at least this many series on a day
QUINTILES = 5
UNINFORMED_RPS = 0.16       # every quintile at 20%: the M6 competition's benchmark


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=np.float64)
    known = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    m = len(known)
    order = known[np.argsort(p[known], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def newey_west_t(x: np.ndarray, lags: int | None = None) -> float:
    """t-statistic of the mean of ``x`` with a Newey-West (Bartlett) long-run variance; the default lag is
    ``floor(4 (T/100)^(2/9))``. NaN for fewer than 3 values or no variance."""
    x = np.asarray(x, dtype=np.float64)
    t = len(x)
    if t < 3:
        return float("nan")
    lags = int(4 * (t / 100) ** (2 / 9)) if lags is None else lags
    centred = x - x.mean()
    lrv = np.dot(centred, centred) / t
    for k in range(1, min(lags, t - 1) + 1):
        lrv += 2 * (1 - k / (lags + 1)) * np.dot(centred[k:], centred[:-k]) / t
    return float(x.mean() / math.sqrt(lrv / t)) if lrv > 0 else float("nan")


def rank_ic(forecasts: np.ndarray, outcomes: np.ndarray, min_series: int = MIN_SERIES_IC) -> dict[str, float]:
    """``forecasts``, ``outcomes``: ``[days, series]`` (NaN where a series has no forecast that day). Each day
    with at least ``min_series`` series: the Spearman correlation across series; returns the mean IC, its
    Newey-West t-statistic and two-sided p-value, and the number of days."""
    ics = []
    for f, y in zip(np.asarray(forecasts, dtype=np.float64), np.asarray(outcomes, dtype=np.float64)):
        both = ~(np.isnan(f) | np.isnan(y))
        if both.sum() >= min_series and np.ptp(f[both]) > 0 and np.ptp(y[both]) > 0:
            ics.append(stats.spearmanr(f[both], y[both]).statistic)
    if not ics:
        return {"rank_ic": float("nan"), "rank_ic_t": float("nan"), "rank_ic_pvalue": float("nan"), "ic_days": 0}
    tstat = newey_west_t(np.asarray(ics))
    pvalue = float(2 * stats.norm.sf(abs(tstat))) if math.isfinite(tstat) else float("nan")
    return {"rank_ic": float(np.mean(ics)), "rank_ic_t": tstat, "rank_ic_pvalue": pvalue, "ic_days": len(ics)}


def quintiles(values: np.ndarray) -> np.ndarray:
    """The quintile (0 lowest .. 4 highest) of each entry's rank along the last axis (``S`` series: rank r is in
    quintile ``floor(5 r / S)``)."""
    ranks = np.argsort(np.argsort(values, axis=-1, kind="stable"), axis=-1, kind="stable")
    return ranks * QUINTILES // values.shape[-1]


def ranked_probability_score(draws: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """``draws``: ``[D, S, M]`` simulated returns of ``S`` series on ``D`` days (``M`` draws each, the draws of a
    day's series taken together as one joint draw); ``outcomes``: ``[D, S]``. Each day's RPS, averaged over
    the series: the mean over quintiles of (forecast cumulative probability - observed) squared."""
    q = quintiles(np.moveaxis(draws, -1, 1))                                        # [D, M, S]
    probability = np.stack([(q == k).mean(axis=1) for k in range(QUINTILES)], axis=-1)   # [D, S, 5]
    observed = np.eye(QUINTILES)[quintiles(outcomes)]                              # [D, S, 5]
    gap = np.cumsum(probability, axis=-1) - np.cumsum(observed, axis=-1)
    return (gap ** 2).mean(axis=-1).mean(axis=-1)
