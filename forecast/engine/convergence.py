"""Has a training converged? The one rule for every network the toolkit trains.

A network whose validation loss is not finite, or whose validation error at its best epoch is above
``DIVERGED_RATIO`` times the naive forecast's on the same windows, has diverged: its forecasts cannot be
right, and the command fails in one line naming the model, fold and seed (its MLflow run ends FAILED),
instead of reporting garbage as a model with "no skill". A network merely worse than naive converged:
it keeps its "no skill" verdict. ``check_converged`` is the rule on plain numbers, for every trainer
(one network, a population of networks, a cluster task); ``check_network`` measures a trained network
on its validation windows and applies it.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.windows import FeatureSeries, Split, make_inputs, make_targets
from ..errors import ForecastError
from ..models.baselines import NaiveBaseline

DIVERGED_RATIO = 10.0      # a validation MSE above this many times the naive forecast's: diverged


class Diverged(ForecastError):
    """A training that diverged: one line naming the model, fold and seed, and what to change."""


def check_converged(model: str, fold: int, seed: int, best_loss: float, val_mse: float, naive_mse: float) -> None:
    """Raise ``Diverged`` when ``best_loss`` (the training's own validation loss at its best epoch) or
    ``val_mse`` (the network's validation MSE, target units) is not finite, or when ``val_mse`` is above
    ``DIVERGED_RATIO`` times ``naive_mse`` (the naive forecast's validation MSE on the same windows and
    units). A naive forecast without error (``naive_mse == 0``) leaves no ratio to judge by: only the
    non-finite rule applies then."""
    where = f"{model} diverged on fold {fold}, seed {seed}"
    if not (math.isfinite(best_loss) and math.isfinite(val_mse)):
        bad = best_loss if not math.isfinite(best_loss) else val_mse
        raise Diverged(f"{where}: validation loss is {bad} (not finite); lower --learning-rate, keep "
                       f"--gradient-clip on, or check the data for values that cannot be right")
    if naive_mse > 0 and val_mse > DIVERGED_RATIO * naive_mse:
        raise Diverged(f"{where}: validation MSE {val_mse:.3g} is {val_mse / naive_mse:.3g}x the naive forecast's "
                       f"({naive_mse:.3g}), above {DIVERGED_RATIO:g}x; lower --learning-rate or keep "
                       f"--gradient-clip on")


def check_network(model: str, seed: int, best_loss: float, network, series: FeatureSeries, split: Split, ctx) -> None:
    """``check_converged`` for a trained network (raw windows in, target units out: a ``ScaledNetwork``) on
    the validation windows of ``split``; ``ctx`` (a ``FitContext``) says the fold, lookback, horizon, target.

    The ratio compares mean squared errors of point forecasts on the validation windows: the network's
    (for a distribution network, its mean's: its own loss is a negative log-likelihood, which has no
    ratio to the naive forecast's MSE) and the naive forecast's (a zero return; for the volatility target
    the last value). The training's point loss is this MSE on scaled targets, and a ratio does not
    depend on the scale, so a point network is judged exactly by its best validation loss."""
    import torch

    x = make_inputs(series.features, split.val, ctx.lookback)           # [N, L, F]
    y = make_targets(series.target, split.val, ctx.horizon)             # [N, H]
    with torch.no_grad():
        out = network(torch.from_numpy(x)).double().numpy()            # [N, H] or [N, H, P]
    point = out[..., 0] if out.ndim == 3 else out
    naive = NaiveBaseline(tuple(ctx.feature_names), ctx.target, ctx.horizon).fit(x, y).predict(x)
    with np.errstate(over="ignore", invalid="ignore"):
        val_mse = float(np.mean((point - y) ** 2))
    check_converged(model, ctx.fold, seed, best_loss, val_mse, float(np.mean((naive - y) ** 2)))
