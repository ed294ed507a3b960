"""Forecasts -> the ``predictions.csv`` frame -> metrics per model (and per fold).

The frame is the contract of the design notes: ``date, model, fold, y_true, y_pred``
(plus ``step`` when ``--horizon`` > 1), where ``date`` is the day forecast and the
forecast used data up to the previous trading day only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data.windows import Series, make_targets
from .metrics import forecast_metrics

NAIVE = "naive"


def prediction_frame(series: Series, origins: np.ndarray, forecasts: dict[str, np.ndarray], horizon: int,
                     fold: int = 0) -> pd.DataFrame:
    """Long frame, one row per model, forecast day (and step)."""
    y = make_targets(series.target, origins, horizon).astype(np.float64)  # [N, H]
    parts = []
    for model, pred in forecasts.items():
        for step in range(1, horizon + 1):
            part = pd.DataFrame({
                "date": series.target_dates(origins, step), "model": model, "fold": fold,
                "y_true": y[:, step - 1], "y_pred": np.asarray(pred, dtype=np.float64)[:, step - 1]})
            if horizon > 1:
                part["step"] = step
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def first_step(frame: pd.DataFrame) -> pd.DataFrame:
    """The one-day-ahead rows (all rows unless ``--horizon`` > 1 added a ``step`` column)."""
    return frame[frame["step"] == 1] if "step" in frame else frame


def score(frame: pd.DataFrame, target: str, horizon: int = 1) -> dict[str, dict[str, float]]:
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
