"""Global networks: one network trained on the windows of every series of a panel (``lstm-global``, ...).

For each fold of a panel backtest a global network (one per seed) trains on every series' training
windows of that fold, each series scaled by its own scaler (fitted on its own training rows), early
stopping on all series' validation windows together; it then forecasts every series. With
``--series-embedding`` every day of a window also carries its series' one-hot code: the input
weights of those channels are a vector per series added to each step's input, a learned series
embedding. It trains on the population engine (its seeds and folds are members; alone, a population
of one); restarts, which judge one series against a linear model, do not apply. On one series a
global network is its local cell.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from ..data.windows import FeatureSeries, Split, make_inputs, make_targets
from ..models.baselines import NaiveBaseline
from ..models.recurrent import NetShape, ScaledNetwork
from .convergence import check_converged
from .forecasters import Attempt, NetworkForecaster, SeedEnsemble


class GlobalNetworkForecaster(NetworkForecaster):
    """A network of ``entry``'s cell trained on ``sources``: ``(series, split, code)`` of every series (``code``:
    its index in the panel, the one-hot channel it sets with ``embed`` channels)."""

    def __init__(self, entry, network, train, ctx, sources: list[tuple[FeatureSeries, Split, int]], embed: int,
                 progress: bool = False, on_epoch=None):
        super().__init__(entry, network, train, ctx, None, progress, on_epoch)
        self.sources, self.embed = sources, embed

    @property
    def shape(self) -> NetShape:
        return NetShape.of(self.entry.cell, len(self.ctx.feature_names) + self.embed, self.ctx.horizon, self.network)

    def fit(self, series: FeatureSeries, split: Split) -> "GlobalNetworkForecaster":
        """Alone: a population of one (the population engine trains on several series)."""
        from .population import Member, fit_networks, population_device

        fit_networks([Member(self, series, split)], 1, population_device(self.train) or torch.device("cpu"))
        return self

    def wants_restart(self, best: Attempt, restart: int, series: FeatureSeries, split: Split) -> bool:
        return False

    def adopt(self, best: Attempt, restarts: int, series: FeatureSeries, split: Split) -> "GlobalNetworkForecaster":
        """Keep the trained network, one scaled copy per series, each held to the divergence rule on its series."""
        self.restarts_, self.module_, self.history_ = 0, best.module, best.history
        self.best_epoch_, self.best_val_loss_ = best.best_epoch, best.best_loss
        scalers = best.scaler if isinstance(best.scaler, list) else [best.scaler]
        self.scaler_ = scalers[0]
        net = copy.deepcopy(self.module_.net).cpu().eval()
        pad = np.zeros(self.embed)
        self.scaled_ = [ScaledNetwork(net, np.r_[s.feature_mean_, pad], np.r_[s.feature_scale_, pad + 1],
                                      s.target_mean_, s.target_scale_).eval() for s in scalers]
        self.network_ = self.scaled_[0]
        for series_, split_, _ in self.sources:
            self._check(series_, split_)
        return self

    def _check(self, series: FeatureSeries, split: Split) -> None:
        x = make_inputs(series.features, split.val, self.ctx.lookback)
        y = make_targets(series.target, split.val, self.ctx.horizon)
        naive = NaiveBaseline(tuple(series.feature_names), self.ctx.target, self.ctx.horizon).fit(x, y).predict(x)
        with np.errstate(over="ignore", invalid="ignore"):
            val_mse = float(np.mean((self.predict(series, split.val) - y) ** 2))
        check_converged(self.entry.name, self.ctx.fold, self.train.seed, self.best_val_loss_, val_mse,
                        float(np.mean((naive - y) ** 2)))

    def output(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        """The forecasts of ``series`` (one of its sources) on the windows of ``origins``, in target units."""
        k = next(i for i, (own, _, _) in enumerate(self.sources) if own is series)
        x = make_inputs(series.features, origins, self.ctx.lookback)                      # [N, L, F]
        if self.embed:
            code = np.zeros((*x.shape[:2], self.embed), dtype=x.dtype)                   # [N, L, E]
            code[..., self.sources[k][2]] = 1.0
            x = np.concatenate([x, code], axis=-1)
        with torch.no_grad():
            return self.scaled_[k](torch.from_numpy(x)).double().numpy()


def make_global(entry, network, train, ctx, sources: list[tuple], embed: int, progress: bool = False,
                on_epoch=None):
    """A global network of every source, once per seed (a seed ensemble with several)."""
    seeds = train.seed_list
    members = [GlobalNetworkForecaster(entry, network, replace(train, seed=s, seeds=[]), ctx, sources, embed, progress,
                                       on_epoch) for s in seeds]
    return members[0] if len(members) == 1 else SeedEnsemble(members)
