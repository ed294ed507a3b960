"""Verdicts across the series of a panel.

Each series has its own leaderboard, SPA and MCS (``backtest.judge``, as one series has). Across
series: pooled scores over every series' forecast days; Holm's correction of the per-series SPA
p-values (with many series, one that "beats naive at 5%" is what chance gives); the series x model
table of R2 vs naive behind the report's heatmap; with five series or more, cross-sectional skill:
the daily rank information coefficient between forecasts and outcomes and, for distributions, the
ranked probability score of each series' quintile rank over the horizon (M6's score); and trading an
equal-weight portfolio of the series by each model's sign rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats.cross_section import (MIN_SERIES_IC, UNINFORMED_RPS, holm, newey_west_t, rank_ic,
                                   ranked_probability_score)
from ..stats.metrics import TRADING_DAYS, directional_accuracy, mae, r2_oos, rmse, trading_metrics, trading_returns
from .scores import NAIVE, SPA_LEVEL, first_step


def pooled_scores(frame: pd.DataFrame, target: str = "return") -> dict[str, dict[str, float]]:
    """Every model's one-day-ahead RMSE, MAE, R2 vs naive and directional accuracy over all series' days (the
    direction of a volatility forecast is against the last value, as for one series)."""
    step1 = first_step(frame)
    naive = step1[step1["model"] == NAIVE].set_index(["series", "date"])["y_pred"]
    out = {}
    for model, rows in step1.groupby("model", sort=False):
        rows = rows.set_index(["series", "date"])
        y, p, base = rows["y_true"].to_numpy(), rows["y_pred"].to_numpy(), naive.loc[rows.index].to_numpy()
        reference = base if target == "volatility" else 0.0
        out[model] = {"rmse": rmse(y, p), "mae": mae(y, p), "r2_oos": r2_oos(y, p, base),
                      "dir_acc": directional_accuracy(y, p, reference)[0], "days": len(rows)}
    return out


def holm_table(spa_pvalues: dict[str, float]) -> pd.DataFrame:
    """Per series: SPA p-value of "some model beats naive", Holm-adjusted across series, and its verdict."""
    names = list(spa_pvalues)
    adjusted = holm([spa_pvalues[n] for n in names])
    return pd.DataFrame({"series": names, "spa_pvalue": [spa_pvalues[n] for n in names], "holm_pvalue": adjusted,
                         "verdict": ["a model beats naive (SPA, Holm across series)" if a < SPA_LEVEL else
                                     "no model beats naive after Holm" for a in adjusted]})


def r2_table(metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Series down, models across: each model's R2 vs naive on each series (``metrics[series][model]``)."""
    return pd.DataFrame({name: {m: v["r2_oos"] for m, v in by_model.items()} for name, by_model in metrics.items()}).T


def cross_sectional(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per model: the rank IC across series, on days with at least ``MIN_SERIES_IC`` series (empty with fewer
    series in the panel)."""
    step1 = first_step(frame)
    if step1["series"].nunique() < MIN_SERIES_IC:
        return {}
    out = {}
    for model, rows in step1.groupby("model", sort=False):
        if model == NAIVE:
            continue
        forecasts = rows.pivot_table(index="date", columns="series", values="y_pred", sort=True)
        outcomes = rows.pivot_table(index="date", columns="series", values="y_true", sort=True)
        out[model] = rank_ic(forecasts.to_numpy(), outcomes.reindex_like(forecasts).to_numpy())
    return out


def portfolio_trading(frame: pd.DataFrame, cost_bps: float) -> tuple[dict[str, dict[str, float]], dict[str, pd.Series]]:
    """An equal-weight portfolio of the series, traded by each model's sign rule (long/flat, long/short) as one
    series is, with its costs; and buy-and-hold of the same portfolio. Each day every series with a forecast that
    day weighs the same (rebalanced daily; a series not trading that day is left out of that day's average).
    Metrics as ``trading_table``'s, keyed alike (``sharpe_long_flat``, ...); turnover is the portfolio's: the mean
    over series of each one's position changes. Curves: growth of 1, long/flat and buy-and-hold."""
    step1 = first_step(frame)
    out, curves = {}, {}
    for model, rows in step1.groupby("model", sort=False):
        if model == NAIVE:
            continue
        for mode in ("long_flat", "long_short"):
            daily = _portfolio_days(rows, mode, cost_bps)
            values = trading_metrics(np.log1p(daily["simple"].to_numpy()))
            values["turnover"] = float(daily["turnover"].mean() * TRADING_DAYS)
            out.setdefault(model, {}).update({f"{k}_{mode}": v for k, v in values.items()})
            if mode == "long_flat":
                curves[f"{model} (long/flat)"] = np.exp(np.log1p(daily["simple"]).cumsum())
    hold = step1[step1["model"] == NAIVE].assign(simple=lambda f: np.expm1(f["y_true"])).groupby("date")["simple"].mean()
    out["buy_and_hold"] = trading_metrics(np.log1p(hold.to_numpy()), np.ones(len(hold)))
    curves["buy_and_hold"] = np.exp(np.log1p(hold).cumsum())
    return out, curves


def _portfolio_days(rows: pd.DataFrame, mode: str, cost_bps: float) -> pd.DataFrame:
    """Per date: the mean over series of each one's strategy return (simple, after costs) and position change."""
    parts = []
    for _, part in rows.sort_values("date", kind="stable").groupby("series", sort=False):
        r, pos = trading_returns(part["y_true"].to_numpy(), part["y_pred"].to_numpy(), mode, cost_bps)
        parts.append(pd.DataFrame({"date": part["date"].to_numpy(), "simple": np.expm1(r),
                                   "turnover": np.abs(np.diff(np.r_[0.0, pos]))}))
    return pd.concat(parts).groupby("date").mean()


def ranked_probability(frame: pd.DataFrame, dists: dict[str, dict], horizon: int, draws: int = 500,
                       seed: int = 0) -> dict[str, dict[str, float]]:
    """Per model forecasting distributions on every series (``dists[series][model]``, over all folds in the
    frame's order), with five series or more: the ranked probability score of each series' quintile rank by
    its return over the ``horizon`` days after each origin (M6: 20 days), the probabilities drawn from the
    forecast distributions by simulation (``draws`` per series and day; the steps of a horizon drawn
    independently, as each is forecast). Scored on the days every series has a forecast; next to the
    uninformed 0.16, with a Newey-West t-statistic of the daily improvement (overlapping horizons: lag =
    ``horizon``)."""
    names = list(dists)
    if len(names) < MIN_SERIES_IC:
        return {}
    models = [m for m in dists[names[0]] if all(m in dists[n] for n in names)]
    rng = np.random.default_rng(seed)
    out = {}
    for model in models:
        outcomes, sims = {}, {}
        for name in names:
            rows = frame[(frame["series"] == name) & (frame["model"] == model)]
            steps = [rows[rows["step"] == s] if "step" in rows else rows for s in range(1, horizon + 1)]
            dates = pd.DatetimeIndex(steps[0]["date"])
            outcomes[name] = pd.Series(np.sum([s["y_true"].to_numpy() for s in steps], axis=0), index=dates)
            total = sum(dists[name][model].sample(s, draws, rng) for s in range(1, horizon + 1))
            sims[name] = pd.DataFrame(total, index=dates)
        days = outcomes[names[0]].index
        for name in names[1:]:
            days = days.intersection(outcomes[name].index)
        if len(days) < 3:
            continue
        daily = ranked_probability_score(np.stack([sims[n].loc[days].to_numpy() for n in names], axis=1),
                                         np.stack([outcomes[n].loc[days].to_numpy() for n in names], axis=1))
        out[model] = {"rps": float(daily.mean()), "rps_uninformed": UNINFORMED_RPS,
                      "rps_t": newey_west_t(UNINFORMED_RPS - daily, horizon), "rps_days": len(days)}
    return out
