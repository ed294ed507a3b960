"""From the forecasts of work units to what every command reports: one path for ``fit`` (one fold)
and ``backtest`` (many).

A unit's result (``engine.walkforward.UnitResult``) holds one model's forecasts of one fold; here
they become the predictions frame of the design notes, each model's distribution over all its
folds, and each seed's RMSE for seed ensembles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.windows import FeatureSeries
from ..stats.distributions import Distribution
from ..stats.metrics import rmse
from .scores import first_step, prediction_frame


def collect(series: FeatureSeries, folds: list, models: list[str], results: list, horizon: int,
            levels: list[float] | None) -> tuple[pd.DataFrame, dict[str, Distribution]]:
    """The predictions frame (model by model, fold by fold) and, per model that forecasts one, its
    distribution over all folds in date order. ``levels``: the quantile columns to write, or None."""
    by_key = {(r.model, r.fold): r for r in results}
    frame = pd.concat([prediction_frame(series, f.split.test, {m: by_key[m, f.number].forecasts}, horizon, f.number,
                                        {m: by_key[m, f.number].distribution}, levels)
                       for m in models for f in folds], ignore_index=True)
    dists = {m: Distribution.concat([by_key[m, f.number].distribution for f in folds])
             for m in models if by_key[m, folds[0].number].distribution is not None}
    return frame, dists


def seed_rmse(results: list, frame: pd.DataFrame, folds: list) -> dict[str, dict[str, float]]:
    """For each seed ensemble, each seed's one-day-ahead RMSE over all folds: ``{model: {seed: rmse}}``."""
    step1 = first_step(frame)
    out = {}
    for model in dict.fromkeys(r.model for r in results if r.by_seed):
        parts = {r.fold: r for r in results if r.model == model}
        y = step1[step1["model"] == model]["y_true"].to_numpy()
        seeds = parts[folds[0].number].by_seed
        out[model] = {str(s): rmse(y, np.concatenate([parts[f.number].by_seed[s][:, 0] for f in folds]))
                      for s in seeds}
    return out
