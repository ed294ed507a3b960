"""Error metrics, significance tests and trading metrics (definitions as in the design notes).

All functions take 1-D arrays aligned by forecast day, except the tests of many models at
once (SPA, MCS), which take a frame of daily losses with one column per model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    import pandas as pd

TRADING_DAYS = 252


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(p)) ** 2)))


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(p))))


def r2_oos(y: np.ndarray, p: np.ndarray, naive: np.ndarray) -> float:
    """Out-of-sample R^2 against the naive forecast: ``1 - SSE_model / SSE_naive``."""
    sse_naive = float(np.sum((y - naive) ** 2))
    return float("nan") if sse_naive == 0 else 1.0 - float(np.sum((y - p) ** 2)) / sse_naive


def directional_accuracy(y: np.ndarray, p: np.ndarray, reference: np.ndarray | float = 0.0) -> tuple[float, int]:
    """Share of days where the forecast's direction (vs ``reference``) matches the outcome's.

    Days whose outcome equals the reference are left out; a forecast equal to the reference
    has no direction and counts as a miss. Returns ``(accuracy, days counted)``; the accuracy
    is NaN for a forecast with no direction at all (the naive one). Its significance is
    :func:`pesaran_timmermann`, its yardstick :func:`always_up_hit_rate`.
    """
    dy, dp = np.sign(np.asarray(y) - reference), np.sign(np.asarray(p) - reference)
    keep = dy != 0
    n = int(keep.sum())
    if n == 0 or not np.any(dp[keep] != 0):
        return float("nan"), n
    return int(np.sum(dy[keep] == dp[keep])) / n, n


def always_up_hit_rate(y: np.ndarray, reference: np.ndarray | float = 0.0) -> float:
    """Hit rate of a forecast that always says "up": the share of outcomes above ``reference``.

    Counted over the same days as :func:`directional_accuracy` (outcome != reference);
    NaN when there are none. In a rising market this is the number a directional
    accuracy has to beat before it means anything.
    """
    dy = np.asarray(y, dtype=np.float64) - reference
    keep = dy != 0
    return float(np.mean(dy[keep] > 0)) if keep.any() else float("nan")


def pesaran_timmermann(y: np.ndarray, p: np.ndarray, reference: np.ndarray | float = 0.0) -> tuple[float, float]:
    """Pesaran-Timmermann (1992) test of directional predictability.

    Over the days whose outcome differs from ``reference`` (as in :func:`directional_accuracy`),
    the outcome is "up" when ``y > reference`` and the forecast is "up" when ``p > reference``;
    a forecast at or below the reference (a zero forecast included) counts as "not up", the
    same rule as the long/flat position of :func:`trading_returns`. With ``P`` the share of
    days where the two agree, ``Py``, ``Px`` the shares of "up" outcomes and forecasts and
    ``P* = Py Px + (1-Py)(1-Px)`` the agreement expected if they were independent::

        V(P)  = P* (1 - P*) / n
        V(P*) = (2Py-1)^2 Px(1-Px)/n + (2Px-1)^2 Py(1-Py)/n + 4 Py Px (1-Py)(1-Px)/n^2
        S     = (P - P*) / sqrt(V(P) - V(P*))  ~  N(0, 1) under independence.

    Returns ``(S, one-sided p-value)``, the p-value ``P(N(0,1) > S)`` for H1: the forecast's
    direction agrees with the outcome's more often than independence implies. ``(nan, nan)``
    when the test is undefined: fewer than 3 days, a forecast that never changes direction
    (always "up", or a zero forecast: no testable directional skill), outcomes all one way,
    or a non-positive variance.
    """
    dy = np.asarray(y, dtype=np.float64) - reference
    dp = np.broadcast_to(np.asarray(p, dtype=np.float64) - reference, dy.shape)
    keep = dy != 0
    up_y, up_p = dy[keep] > 0, dp[keep] > 0                   # [n] bools
    n = len(up_y)
    if n < 3:
        return float("nan"), float("nan")
    py, px = float(up_y.mean()), float(up_p.mean())
    if py in (0.0, 1.0) or px in (0.0, 1.0):
        return float("nan"), float("nan")
    hit = float(np.mean(up_y == up_p))
    star = py * px + (1 - py) * (1 - px)
    v_hit = star * (1 - star) / n
    v_star = ((2 * py - 1) ** 2 * px * (1 - px) / n + (2 * px - 1) ** 2 * py * (1 - py) / n
              + 4 * py * px * (1 - py) * (1 - px) / n ** 2)
    if not v_hit - v_star > 0:
        return float("nan"), float("nan")
    stat = (hit - star) / math.sqrt(v_hit - v_star)
    return float(stat), float(stats.norm.sf(stat))


def diebold_mariano(y: np.ndarray, p: np.ndarray, naive: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal squared error vs naive, Harvey-Leybourne-Newbold corrected.

    ``d_t = e_model^2 - e_naive^2``; the long-run variance uses autocovariances up to
    lag ``h-1``; the statistic is scaled by HLN's small-sample factor and compared to a
    Student t with ``T-1`` degrees of freedom. Negative: the model's errors are smaller.
    Returns ``(statistic, two-sided p-value)``.
    """
    return diebold_mariano_losses((np.asarray(y) - p) ** 2, (np.asarray(y) - naive) ** 2, horizon)


def diebold_mariano_losses(loss: np.ndarray, base_loss: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """The same test on any daily losses (e.g. CRPS): ``d_t = loss_t - base_loss_t``; see :func:`diebold_mariano`."""
    loss, base_loss = np.asarray(loss, dtype=np.float64), np.asarray(base_loss, dtype=np.float64)
    d = loss - base_loss
    t = len(d)
    if t < 3:
        return float("nan"), float("nan")
    # A difference without variance (up to rounding) has no t statistic; it is decided outright:
    # equal losses every day are no evidence of a difference, a model better (worse) by the same amount
    # every day is as strong evidence as there is.
    tol = tie_tolerance(loss, base_loss)
    if np.ptp(d) <= tol:
        if abs(d.mean()) <= tol:
            return float("nan"), 1.0
        return (float("-inf") if d.mean() < 0 else float("inf")), 0.0
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
    accuracy, _ = directional_accuracy(y, p, reference)
    pt, pt_p = pesaran_timmermann(y, p, reference)
    dm, dm_p = diebold_mariano(y, p, naive, horizon)
    out = {"rmse": rmse(y, p), "mae": mae(y, p), "r2_oos": r2_oos(y, p, naive),
           "dir_acc": accuracy, "pt_stat": pt, "pt_pvalue": pt_p, "always_up_hit_rate": always_up_hit_rate(y, reference),
           "dm_stat": dm, "dm_pvalue": dm_p, "n": float(len(y))}
    if target == "volatility":
        out["qlike"] = qlike(y, p)
    return out


# ---------------------------------------------------------------- many models at once (SPA, MCS)

MIN_DAYS = 10  # fewer complete days than this: no bootstrap test is worth its name
TIE = 1e-9     # daily loss differences within this share of the losses' mean size are rounding: a tie


def tie_tolerance(*losses: np.ndarray) -> float:
    """How far apart two daily losses may be and still count as equal: ``TIE`` times the mean absolute
    (finite) loss of ``losses``. Models that forecast perfectly differ by rounding only (1e-21 against
    losses of 1e-6): their differences have no variance to test, and must get the same verdict."""
    values = np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in losses])
    values = np.abs(values[np.isfinite(values)])
    return TIE * float(values.mean()) if len(values) else 0.0


def default_block_size(n_days: int) -> int:
    """Mean block length of the stationary bootstrap: ``max(5, round(T ** (1/3)))``.

    The MSE-optimal mean block of the stationary bootstrap grows like ``T^(1/3)``
    (Politis & White 2004); the floor of 5 trading days (a week) keeps enough of the
    volatility clustering of daily losses in each block on short samples.
    T = 250 -> 6, 1000 -> 10, 5000 -> 17 (arch's own default, sqrt(T), gives 31 at 1000).
    """
    return max(5, round(n_days ** (1 / 3)))


def _complete_losses(losses: pd.DataFrame) -> pd.DataFrame:
    """``losses`` as floats with every day holding a NaN in any column dropped; checks its shape."""
    import pandas as pd

    if not isinstance(losses, pd.DataFrame):
        raise TypeError(f"losses must be a pandas DataFrame (one column per model), got {type(losses).__name__}")
    if losses.columns.has_duplicates:
        raise ValueError(f"losses has duplicate column names: {list(losses.columns[losses.columns.duplicated()])}")
    complete = losses.astype(np.float64).dropna(how="any")
    if len(complete) < MIN_DAYS:
        raise ValueError(f"losses has {len(complete)} days without NaN; SPA and MCS need at least {MIN_DAYS}")
    return complete


def _long_run_variance(d: np.ndarray, block_size: int) -> np.ndarray:
    """Long-run variance of each column of ``d`` [T, k] as the stationary bootstrap sees it.

    Politis & Romano (1994) kernel, the estimator of Hansen (2005, eq. 8) and of arch's SPA:
    ``gamma_0 + 2 sum_i kappa_i gamma_i`` with ``kappa_i = (1 - i/T) q^i + (i/T) q^(T-i)``,
    ``q = 1 - 1/block_size``. Autocovariances via a zero-padded FFT.
    """
    t = d.shape[0]
    centred = d - d.mean(axis=0)
    spectrum = np.fft.rfft(centred, n=2 * t, axis=0)
    gamma = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * t, axis=0)[:t] / t   # [T, k], lag 0..T-1
    i = np.arange(1, t)
    q = 1.0 - 1.0 / block_size
    kappa = (1 - i / t) * q ** i + (i / t) * q ** (t - i)                       # [T-1]
    return gamma[0] + 2 * kappa @ gamma[1:]


def spa_test(losses: pd.DataFrame, benchmark: str, *, block_size: int | None = None, reps: int = 1000,
             seed: int | None = 0, studentize: bool = True) -> dict:
    """Hansen's (2005) test of Superior Predictive Ability: is any model better than ``benchmark``?

    ``losses`` [T days, models]: daily losses (e.g. squared errors) aligned by day, one column
    per model, ``benchmark`` one of them. H0: no model has a lower expected loss than the
    benchmark. With ``d_k = L_benchmark - L_k`` the statistic is ``max_k sqrt(T) mean(d_k) / omega_k``
    (``omega_k``: long-run standard deviation, :func:`_long_run_variance`); its null distribution
    comes from ``arch.bootstrap.SPA`` (stationary bootstrap, ``reps`` draws, mean block
    ``block_size``, default :func:`default_block_size`, ``seed`` for reproducibility).

    arch 8.0's ``SPA`` never divides by ``omega_k`` (its ``studentize`` flag only names the
    method), so with ``studentize=True`` the loss differentials are studentized here before it
    sees them, which gives Hansen's statistic and his recentring rule unchanged; with ``False``
    arch's raw-mean statistic (White's Reality Check with Hansen's recentring).

    Returns ``{"pvalue": consistent p-value, "pvalue_lower", "pvalue_upper", "statistic",
    "benchmark", "block_size", "reps", "n_days"}``; ``statistic`` is the studentized maximum
    above either way (not truncated at 0: negative when every model is worse). Days with a NaN in any column are dropped
    first (``n_days`` counts those left). Models whose loss equals the benchmark's every day
    cannot be better and are left out (arch would report p = 0 for them); if no model is left,
    every p-value is 1.0. A model better by the same amount every day gives p-values 0.0 (both up to
    rounding: :func:`tie_tolerance`).
    """
    from arch.bootstrap import SPA  # arch is slow to import: only when asked

    complete = _complete_losses(losses)
    if benchmark not in complete.columns:
        raise ValueError(f"benchmark={benchmark!r} is not a column of losses: {list(complete.columns)}")
    if complete.shape[1] < 2:
        raise ValueError(f"losses needs the benchmark and at least one other model, got {list(complete.columns)}")
    t = len(complete)
    block = default_block_size(t) if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    d = complete[benchmark].to_numpy()[:, None] - complete.drop(columns=benchmark).to_numpy()   # [T, k]
    out = {"benchmark": benchmark, "block_size": block, "reps": int(reps), "n_days": t}
    tol = tie_tolerance(complete.to_numpy())
    constant = np.ptp(d, axis=0) <= tol                    # [k]: no variance (up to rounding): decided outright
    if np.any(constant & (d.mean(axis=0) > tol)):
        return {"pvalue": 0.0, "pvalue_lower": 0.0, "pvalue_upper": 0.0, "statistic": float("inf"), **out}
    d = d[:, ~constant]
    if d.shape[1] == 0:
        return {"pvalue": 1.0, "pvalue_lower": 1.0, "pvalue_upper": 1.0, "statistic": float("nan"), **out}
    omega = np.sqrt(np.maximum(_long_run_variance(d, block), 0.0))
    omega = np.where(omega > 0, omega, d.std(axis=0))                                           # [k], > 0
    scaled = d / omega if studentize else d
    # arch's SPA takes (benchmark, models) losses and tests benchmark - models: feed it 0 - (-scaled).
    spa = SPA(np.zeros(t), -scaled, block_size=block, reps=reps, bootstrap="stationary", seed=seed)
    spa.compute()
    p = spa.pvalues
    stat = float(np.max(math.sqrt(t) * d.mean(axis=0) / omega))
    return {"pvalue": float(p["consistent"]), "pvalue_lower": float(p["lower"]), "pvalue_upper": float(p["upper"]),
            "statistic": stat, **out}


def model_confidence_set(losses: pd.DataFrame, size: float = 0.10, *, block_size: int | None = None,
                         reps: int = 1000, seed: int | None = 0, method: str = "R") -> dict[str, dict]:
    """Hansen, Lunde & Nason's (2011) Model Confidence Set at level ``1 - size`` (90% by default).

    ``losses`` [T days, models]: daily losses aligned by day, one column per model. Models are
    eliminated one by one while the test of equal expected loss rejects (``arch.bootstrap.MCS``,
    range statistic ``T_R`` with ``method="R"``, stationary bootstrap with mean block
    ``block_size``, default :func:`default_block_size`, ``reps`` draws, ``seed``). Returns, per
    column, ``{"in_mcs": mcs_pvalue > size, "mcs_pvalue": the MCS p-value}``.

    Days with a NaN in any column are dropped first. Columns with identical losses every day (up to
    rounding, :func:`tie_tolerance`) cannot be told apart: they are tested as one model and share its
    result (arch itself fails on them). A model worse than another by the same amount every day is out
    (p-value 0.0): its difference has no variance to test. A single distinct model left is the whole set
    (p-value 1.0).
    """
    from arch.bootstrap import MCS  # arch is slow to import: only when asked

    if not 0 < size < 1:
        raise ValueError(f"size must be in (0, 1), got {size}")
    complete = _complete_losses(losses)
    block = default_block_size(len(complete)) if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    tol = tie_tolerance(complete.to_numpy())
    representative: dict[str, str] = {}      # column -> first column with the same losses (up to rounding: ``TIE``)
    for name in complete.columns:
        x = complete[name].to_numpy()
        representative[name] = next((r for r in dict.fromkeys(representative.values())
                                     if np.max(np.abs(x - complete[r].to_numpy())) <= tol), name)
    distinct = list(dict.fromkeys(representative.values()))
    # A model worse than another by the same amount every day (a difference without variance, which the
    # bootstrap cannot studentize) is out of the set outright, with p-value 0.
    pvalues: dict[str, float] = {}
    for name in distinct:
        x = complete[name].to_numpy()
        for other in distinct:
            d = x - complete[other].to_numpy()
            if other != name and np.ptp(d) <= tol and d.mean() > tol:
                pvalues[name] = 0.0
                break
    distinct = [name for name in distinct if name not in pvalues]
    if len(distinct) == 1:
        pvalues[distinct[0]] = 1.0
    else:
        # A plain array: arch maps positions to column names with an indexing that pandas 3's string
        # columns reject; positions are mapped back here.
        mcs = MCS(complete[distinct].to_numpy(), size, reps=reps, block_size=block, method=method,
                  bootstrap="stationary", seed=seed)
        mcs.compute()
        for index, p in mcs.pvalues["Pvalue"].items():
            for position in np.ravel(index):  # on an exact tie arch eliminates two models in one step
                pvalues.setdefault(distinct[int(position)], float(p))
    return {name: {"in_mcs": bool(pvalues[rep] > size), "mcs_pvalue": pvalues[rep]}
            for name, rep in representative.items()}


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
