"""From forecasts to judgements: the predictions frame, metrics per model, leaderboard, verdicts, trading.

The frame is the contract of the design notes: ``date, model, fold, y_true, y_pred``
(plus ``step`` when ``--horizon`` > 1), where ``date`` is the day forecast and the
forecast used data up to the previous trading day only. With distribution forecasts it
also has ``q01 ... q99`` (the quantile levels asked for), ``scale`` (the standard deviation)
and ``df``, empty for point forecasts.

The verdicts answer "which model has skill" with the tests meant for many models at
once, so that comparing ten models does not let one pass by chance:

- Hansen's SPA test: is *any* model better than the naive forecast?
- the Model Confidence Set at 90%: which models cannot be told apart from the best?

Both run on the daily squared errors of the one-day-ahead forecasts, with a
stationary block bootstrap. Diebold-Mariano stays in the table as the pairwise test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.windows import FeatureSeries, make_targets
from ..stats.distributions import Distribution, column_names
from ..stats.metrics import forecast_metrics, model_confidence_set, spa_test, trading_metrics, trading_returns

NAIVE = "naive"


def prediction_frame(series: FeatureSeries, origins: np.ndarray, forecasts: dict[str, np.ndarray], horizon: int,
                     fold: int = 0, distributions: dict[str, Distribution] | None = None,
                     levels: list[float] | None = None) -> pd.DataFrame:
    """Long frame, one row per model, forecast day (and step). With ``levels``, the distribution columns
    too: each model's from ``distributions``, empty (NaN) for a model without one."""
    y = make_targets(series.target, origins, horizon).astype(np.float64)  # [N, H]
    parts = []
    for model, pred in forecasts.items():
        for step in range(1, horizon + 1):
            part = pd.DataFrame({
                "date": series.target_dates(origins, step), "model": model, "fold": fold,
                "y_true": y[:, step - 1], "y_pred": np.asarray(pred, dtype=np.float64)[:, step - 1]})
            if horizon > 1:
                part["step"] = step
            if levels:
                dist = (distributions or {}).get(model)
                columns = dist.columns(levels, step) if dist is not None else {}
                part = part.assign(**{c: columns.get(c, np.nan) for c in column_names(levels)})
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def first_step(frame: pd.DataFrame) -> pd.DataFrame:
    """The one-day-ahead rows (all rows unless ``--horizon`` > 1 added a ``step`` column)."""
    return frame[frame["step"] == 1] if "step" in frame else frame


def score_points(frame: pd.DataFrame, target: str, horizon: int = 1) -> dict[str, dict[str, float]]:
    """Metrics of every model against the naive rows of the same frame (step 1 when multi-step).

    For the volatility target the direction is the change against the last value
    (the naive forecast); for returns it is the sign.
    """
    step1 = first_step(frame)
    naive = step1[step1["model"] == NAIVE].set_index("date")
    out: dict[str, dict[str, float]] = {}
    for model, rows in step1.groupby("model", sort=False):
        rows = rows.set_index("date")
        base = naive.loc[rows.index, "y_pred"].to_numpy()
        reference = base if target == "volatility" else 0.0
        out[model] = forecast_metrics(rows["y_true"].to_numpy(), rows["y_pred"].to_numpy(), base, target, 1, reference)
        if horizon > 1:
            for step, part in frame[frame["model"] == model].groupby("step"):
                out[model][f"rmse_step{step}"] = float(np.sqrt(np.mean((part["y_true"] - part["y_pred"]) ** 2)))
    return out


# ---------------------------------------------------------------- many models at once

SPA_LEVEL = 0.05
TRADING_COLUMNS = ("cagr", "ann_vol", "sharpe", "max_drawdown", "total_return", "turnover")
MCS_SIZE = 0.10
HIGHER_IS_BETTER = {"r2_oos", "dir_acc", "sharpe_long_flat", "sharpe_long_short", "cagr_long_flat", "cagr_long_short"}


def daily_losses(frame: pd.DataFrame) -> pd.DataFrame:
    """Squared error of every model's one-day-ahead forecast: ``[days, models]``, aligned by date."""
    step1 = first_step(frame)
    losses = (step1["y_true"] - step1["y_pred"]) ** 2
    return (step1.assign(loss=losses).pivot_table(index="date", columns="model", values="loss", sort=False)
            .reindex(columns=list(dict.fromkeys(step1["model"]))))


def multiple_comparison(frame: pd.DataFrame, seed: int = 0) -> tuple[dict, dict[str, dict]]:
    """``(spa, mcs)``: SPA of every model against naive, and each model's MCS membership and p-value."""
    losses = daily_losses(frame)
    spa = spa_test(losses, NAIVE, seed=seed) if losses.shape[1] > 1 else {"pvalue": float("nan"), "benchmark": NAIVE}
    mcs = model_confidence_set(losses, MCS_SIZE, seed=seed)
    return spa, mcs


def verdict(model: str, metrics: dict, naive_in_mcs: bool, spa_pvalue: float) -> str:
    """Plain words, naming the test that decided (SPA at 5%, MCS at 90%)."""
    if model == NAIVE:
        return "benchmark" if metrics["in_mcs"] else "benchmark, outside the best set (MCS)"
    if not metrics["in_mcs"]:
        return "outside the best set (MCS)"
    if naive_in_mcs:
        return "no better than naive (MCS)"
    if spa_pvalue < SPA_LEVEL:
        return "better than naive (SPA, MCS)"
    return "in the best set without naive (MCS), but SPA not significant"


def leaderboard(metrics: dict[str, dict[str, float]], trading: dict[str, dict[str, float]],
                spa: dict) -> pd.DataFrame:
    """One row per model, best R2 vs naive first, with its verdict. ``metrics`` holds ``in_mcs``."""
    naive_in = bool(metrics[NAIVE]["in_mcs"])
    rows = [{"model": m, **v, **{k: val for k, val in trading.get(m, {}).items() if k.startswith("sharpe")},
             "verdict": verdict(m, v, naive_in, spa["pvalue"])} for m, v in metrics.items()]
    board = pd.DataFrame(rows)
    return board.sort_values("r2_oos", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def trading_table(frame: pd.DataFrame, cost_bps: float) -> tuple[dict[str, dict[str, float]], dict[str, pd.Series]]:
    """Sign-of-forecast trading rules per model, and buy-and-hold, on the one-day-ahead forecasts."""
    step1 = first_step(frame)
    out, curves = {}, {}
    for model, rows in step1.groupby("model", sort=False):
        if model == NAIVE:
            continue
        y, p = rows["y_true"].to_numpy(), rows["y_pred"].to_numpy()
        for mode in ("long_flat", "long_short"):
            r, pos = trading_returns(y, p, mode, cost_bps)
            out.setdefault(model, {}).update({f"{k}_{mode}": v for k, v in trading_metrics(r, pos).items()})
            if mode == "long_flat":
                curves[f"{model} (long/flat)"] = pd.Series(np.exp(np.cumsum(r)), index=rows["date"].to_numpy())
    naive_rows = step1[step1["model"] == NAIVE]
    hold = naive_rows["y_true"].to_numpy()
    out["buy_and_hold"] = trading_metrics(hold, np.ones_like(hold))
    curves["buy_and_hold"] = pd.Series(np.exp(np.cumsum(hold)), index=naive_rows["date"].to_numpy())
    return out, curves


def trading_rows(trading: dict[str, dict[str, float]]) -> pd.DataFrame:
    """The trading table for people: one row per model and rule (long/flat, long/short, buy and hold)."""
    rows = []
    for model, values in trading.items():
        rules = [("buy and hold", "")] if model == "buy_and_hold" else [("long/flat", "_long_flat"),
                                                                          ("long/short", "_long_short")]
        for rule, suffix in rules:
            rows.append({"model": model, "rule": rule, **{k: values.get(f"{k}{suffix}") for k in TRADING_COLUMNS}})
    return pd.DataFrame(rows)
