"""Every registry entry as a forecaster with ``fit(series, split)`` / ``predict(series, origins)``.

Networks train with Lightning (the one recipe of ``TrainSettings``: Adam, gradient
clipping, early stopping on the validation loss, best weights restored), once per
seed when there are several (a seed ensemble forecasts with their mean); baselines
fit on the same windows. Models that forecast a distribution (networks with
``--distribution``, the distribution baselines) also have ``predict_distribution``,
whose mean is their ``predict``. Nothing here talks to MLflow: epoch losses go to an
optional ``on_epoch`` callback and the history is returned.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from ..config.settings import NetworkSettings, TrainSettings
from ..data.datamodule import WindowDataModule
from ..data.windows import FeatureSeries, Split, make_inputs, make_targets
from ..stats.distributions import Distribution
from ..errors import ForecastError
from ..models import ModelEntry, baselines, distribution_baselines
from ..models.recurrent import MeanNetwork, NetShape, ScaledNetwork
from ..models.training import TrainingModule
from .convergence import check_network

EpochHook = Callable[[dict], None]
RESTART_SEED_STEP = 10_007   # restart k trains with seed + k * this: far from the seeds users give
LEARNABLE = 0.97             # a linear model below this share of the naive forecast's validation loss: signal
SHORT_OF = 0.5               # a network that found less than this share of the linear model's gain stopped short


def plateau_losses(scaler, series: FeatureSeries, split: Split, ctx: "FitContext", network) -> tuple[float, float]:
    """``(naive, linear)``: the validation losses (MSE on the targets scaled by ``scaler``) of the zero-return
    forecast and of ridge on the same training windows. They tell a training that stopped short, on the naive
    forecast's plateau, from a series with nothing to learn: where ridge finds no signal there is nothing to
    restart for (a market index), and no network is held to a linear model's standard. Both infinite (never
    restart) where the loss is not an MSE of returns (the volatility target, distributions)."""
    if ctx.target != "return" or network.distribution:
        return float("inf"), float("inf")
    s = scaler
    y = s.transform_y(make_targets(series.target, split.val, ctx.horizon)).astype(np.float64)    # [N, H] scaled
    zero = (0.0 - s.target_mean_) / s.target_scale_
    probe = baselines.RidgeBaseline(ctx.feature_names, ctx.target, ctx.horizon).fit(
        make_inputs(series.features, split.train, ctx.lookback), make_targets(series.target, split.train, ctx.horizon))
    linear = (probe.predict(make_inputs(series.features, split.val, ctx.lookback)) - s.target_mean_) / s.target_scale_
    return float(np.mean((y - zero) ** 2)), float(np.mean((y - linear) ** 2))


def stopped_short(best_loss: float, naive: float, linear: float) -> bool:
    """Did a training end on the plateau although the data has a signal a linear model finds?"""
    gain = naive - linear
    return gain > (1 - LEARNABLE) * naive and best_loss > linear + SHORT_OF * gain


@dataclass(frozen=True)
class FitContext:
    """What every model needs to know about its data."""

    feature_names: tuple[str, ...]
    target: str
    lookback: int
    horizon: int
    fold: int = 0          # the walk-forward fold being fitted (0: fit's single split), for messages


class EpochRecorder(Callback):
    """Keeps per-epoch train/val loss (and hands each row to ``on_epoch``) and the best epoch's weights."""

    def __init__(self, seed: int, on_epoch: EpochHook | None = None, restart: int = 0):
        self.seed, self.restart, self.history = seed, restart, []
        self.best_loss, self.best_state, self.best_epoch = float("inf"), None, -1
        self.on_epoch = on_epoch

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "seed": self.seed}
        if self.restart:            # a restart's epochs are a curve of their own, not a second pass over the first
            row["restart"] = self.restart
        for key in ("train_loss", "val_loss"):
            if key in metrics:
                row[key] = float(metrics[key])
        self.history.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)
        val = row.get("val_loss", float("inf"))
        if val < self.best_loss:
            self.best_loss, self.best_epoch = val, trainer.current_epoch
            self.best_state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer, pl_module):
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)


class EpochProgress(Callback):
    """One progress bar over epochs with the latest losses (hidden when not on a terminal)."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def on_train_start(self, trainer, pl_module):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.max_epochs, desc=f"training {self.label}", unit="epoch", disable=None,
                        dynamic_ncols=True, leave=True)

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        self.bar.set_postfix({k: f"{float(metrics[k]):.4f}" for k in ("train_loss", "val_loss") if k in metrics})
        self.bar.update(1)

    def on_train_end(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.close()


def network_output(network: torch.nn.Module, series: FeatureSeries, origins: np.ndarray, lookback: int) -> np.ndarray:
    """A trained network's output on the windows of ``origins``, one batched pass without gradients (float64)."""
    x = torch.from_numpy(make_inputs(series.features, origins, lookback))
    with torch.no_grad():
        return network(x).double().numpy()


@dataclass
class Attempt:
    """One training of a network: its module (holding the best epoch's weights), its scaler and its losses."""

    module: TrainingModule
    scaler: object                 # the WindowScaler fitted on the training rows
    history: list
    best_loss: float
    best_epoch: int

    @staticmethod
    def better(best: "Attempt | None", attempt: "Attempt") -> "Attempt":
        """The one with the lower validation loss (the earlier on a tie)."""
        return attempt if best is None or attempt.best_loss < best.best_loss else best


class NetworkForecaster:
    """A recurrent network trained by Lightning on scaled windows, with ``train.seed``."""

    def __init__(self, entry: ModelEntry, network: NetworkSettings, train: TrainSettings, ctx: FitContext,
                 init_state: dict | None = None, progress: bool = True, on_epoch: EpochHook | None = None):
        self.entry, self.network, self.train, self.ctx = entry, network, train, ctx
        self.init_state, self.progress, self.on_epoch = init_state, progress, on_epoch
        self._plateau: tuple[float, float] | None = None     # the naive and linear losses, once asked for

    @property
    def shape(self) -> NetShape:
        shape = NetShape.of(self.entry.cell, len(self.ctx.feature_names), self.ctx.horizon, self.network)
        # Truncated BPTT runs statefully along the series: a day has no place in a window there.
        return replace(shape, position=0) if self.train.tbptt_k1 else shape

    def build_module(self) -> TrainingModule:
        return TrainingModule(self.shape, self.train, chrono=self.ctx.lookback if self.network.chrono else 0)

    def fit(self, series: FeatureSeries, split: Split) -> "NetworkForecaster":
        """Train. With ``--restarts K``, a training that stopped short (``stopped_short``: on the naive forecast's
        plateau while ridge finds a signal on the same windows) starts again from a new initialisation, up to
        K times; the best by validation loss is kept. On a series with nothing to learn nothing restarts.
        (A population trains many networks the same way: ``engine.population.fit_networks``.)"""
        best, restart = None, 0
        while True:
            best = Attempt.better(best, self.attempt(series, split, restart))
            if not self.wants_restart(best, restart, series, split):
                return self.adopt(best, restart, series, split)
            restart += 1

    def seed_for(self, restart: int) -> int:
        """Restart 0 is seeded by ``--seed`` alone; restart k by a seed of its own (new initialisation, shuffle)."""
        return self.train.seed + RESTART_SEED_STEP * restart

    def prepare(self, restart: int) -> TrainingModule:
        """The network of training ``restart``, initialised as every training of it is (alone or in a population)."""
        pl.seed_everything(self.seed_for(restart), workers=False, verbose=False)
        module = self.build_module()
        if self.init_state is not None:
            module.load_state_dict(self.init_state)
        return module

    def attempt(self, series: FeatureSeries, split: Split, restart: int) -> "Attempt":
        """One training on its own, by Lightning."""
        t = self.train
        module = self.prepare(restart)
        datamodule = WindowDataModule(series, self.ctx.lookback, self.ctx.horizon, t.batch_size, split=split,
                                      seed=self.seed_for(restart), sequence=t.tbptt_k1 > 0)
        recorder = EpochRecorder(t.seed, self.on_epoch, restart)
        callbacks = [recorder, EarlyStopping("val_loss", patience=t.patience, mode="min")]
        if self.progress:
            callbacks.append(EpochProgress(self.entry.name))
        try:
            trainer = pl.Trainer(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
                                 strategy=t.strategy, logger=False, enable_checkpointing=False,
                                 enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=False,
                                 callbacks=callbacks)
        except (MisconfigurationException, ValueError, TypeError) as err:   # Lightning judges its own values
            raise ForecastError(f"--accelerator {t.accelerator} --devices {t.devices} --strategy {t.strategy}: "
                                f"{str(err).splitlines()[0]}") from None
        trainer.fit(module, datamodule=datamodule)
        return Attempt(module, datamodule.scaler, recorder.history, recorder.best_loss, recorder.best_epoch)

    def wants_restart(self, best: "Attempt", restart: int, series: FeatureSeries, split: Split) -> bool:
        """Should training ``restart + 1`` follow, given the best attempt so far?"""
        if restart >= self.train.restarts:
            return False
        if self._plateau is None:
            self._plateau = plateau_losses(best.scaler, series, split, self.ctx, self.network)
        return stopped_short(best.best_loss, *self._plateau)

    def adopt(self, best: "Attempt", restarts: int, series: FeatureSeries, split: Split) -> "NetworkForecaster":
        """Keep ``best`` (after ``restarts`` restarts) as the trained network, and hold it to the divergence rule."""
        self.restarts_ = restarts
        self.module_, self.scaler_, self.history_ = best.module, best.scaler, best.history
        self.best_epoch_, self.best_val_loss_ = best.best_epoch, best.best_loss
        self.network_ = self.export()
        check_network(self.entry.name, self.train.seed, self.best_val_loss_, self.network_, series, split, self.ctx)
        return self

    def export(self) -> ScaledNetwork:
        """CPU copy of the best network with its scaler inside: raw windows -> forecasts."""
        s = self.scaler_
        net = copy.deepcopy(self.module_.net).cpu().eval()
        return ScaledNetwork(net, s.feature_mean_, s.feature_scale_, s.target_mean_, s.target_scale_).eval()

    def state(self) -> dict:
        """Weights to warm-start the next fold from."""
        return copy.deepcopy(self.module_.state_dict())

    def output(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        """The network's output in target units for all origins in one batched pass: ``[N, H]`` (``[N, H, P]``)."""
        return network_output(self.network_, series, origins, self.ctx.lookback)

    def predict(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        """Forecasts ``[N, H]`` (a distribution's mean)."""
        out = self.output(series, origins)
        return out[..., 0] if out.ndim == 3 else out

    def predict_distribution(self, series: FeatureSeries, origins: np.ndarray) -> Distribution | None:
        family = self.network.distribution
        return Distribution.from_output(family, self.output(series, origins)) if family else None


class SeedEnsemble:
    """The same network trained once per seed; forecasts are the members' mean."""

    def __init__(self, members: list[NetworkForecaster]):
        self.members = members
        self.seeds = [m.train.seed for m in members]

    def fit(self, series: FeatureSeries, split: Split) -> "SeedEnsemble":
        for member in self.members:
            member.fit(series, split)
        return self.assemble()

    def assemble(self) -> "SeedEnsemble":
        """The ensemble of members already trained (one at a time, or as a population)."""
        # One history for the whole ensemble: the members' epochs one after the other.
        self.history_ = [row for m in self.members for row in m.history_]
        self.best_epoch_ = self.members[0].best_epoch_
        self.network_ = MeanNetwork([m.network_ for m in self.members]).eval()
        return self

    def member_predictions(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        """``[S, N, H]``: each seed's forecasts."""
        return np.stack([m.predict(series, origins) for m in self.members])

    def predict(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        return self.member_predictions(series, origins).mean(axis=0)

    def predict_distribution(self, series: FeatureSeries, origins: np.ndarray) -> Distribution | None:
        """The members' distributions combined into one of the same family with their mixture's mean and
        variance (``MeanNetwork``, the network that gets logged)."""
        family = self.members[0].network.distribution
        if not family:
            return None
        return Distribution.from_output(family, network_output(self.network_, series, origins,
                                                               self.members[0].ctx.lookback))

    def state(self) -> list[dict]:
        return [m.state() for m in self.members]


class BaselineForecaster:
    """A scikit-learn-style baseline fitted on every window before the test part (train and validation)."""

    def __init__(self, entry: ModelEntry, ctx: FitContext):
        self.entry, self.ctx = entry, ctx
        self.estimator = getattr(baselines, entry.baseline)(ctx.feature_names, ctx.target, ctx.horizon)
        self.history_: list[dict[str, float]] = []

    def fit(self, series: FeatureSeries, split: Split) -> "BaselineForecaster":
        origins = np.concatenate([split.train, split.val])
        self.estimator.fit(make_inputs(series.features, origins, self.ctx.lookback),
                           make_targets(series.target, origins, self.ctx.horizon))
        return self

    def predict(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(make_inputs(series.features, origins, self.ctx.lookback)), dtype=np.float64)

    def predict_distribution(self, series: FeatureSeries, origins: np.ndarray) -> None:
        return None                              # a point forecast


class DistributionBaselineForecaster:
    """A distribution baseline of the return (``models.distribution_baselines``), fitted on the returns and
    volatility proxy of the days the networks train on (train and validation); each forecast sees the
    series up to its origin only."""

    def __init__(self, entry: ModelEntry, ctx: FitContext, family: str | None = None):
        self.entry, self.ctx = entry, ctx
        cls = getattr(distribution_baselines, entry.dist_baseline)
        options = {"family": family or "normal"} if "family" in inspect.signature(cls).parameters else {}
        self.estimator = cls(horizon=ctx.horizon, **options)
        self.history_: list[dict[str, float]] = []

    def fit(self, series: FeatureSeries, split: Split) -> "DistributionBaselineForecaster":
        origins = np.concatenate([split.train, split.val])
        first, last = int(origins.min()) - self.ctx.lookback + 1, int(origins.max()) + self.ctx.horizon
        self.estimator.fit(series.returns[first:last + 1], series.proxy[first:last + 1])
        return self

    def predict_distribution(self, series: FeatureSeries, origins: np.ndarray) -> Distribution:
        end = int(np.max(origins)) + 1           # nothing after the last origin reaches the estimator
        return self.estimator.predict_distribution(series.returns[:end], series.proxy[:end], origins)

    def predict(self, series: FeatureSeries, origins: np.ndarray) -> np.ndarray:
        return self.predict_distribution(series, origins).mean


def validation_nll(model: NetworkForecaster | SeedEnsemble) -> float:
    """A trained distribution network's mean negative log-likelihood on its validation windows at its best
    epoch, in the target's own units (the loss is on the scaled target: ``+ log(target scale)``), so that
    trials of a search with different settings compare on one scale (mean over a seed ensemble's members);
    lower is better. (A sweep with ``--distribution`` is scored on its validation folds' forecasts instead,
    ``sweep.validation``.)"""
    members = model.members if isinstance(model, SeedEnsemble) else [model]
    if not members[0].network.distribution:
        raise ValueError("validation_nll needs a network with a distribution head (--distribution)")
    return float(np.mean([m.best_val_loss_ + np.log(m.scaler_.target_scale_) for m in members]))


def make_forecaster(entry: ModelEntry, network: NetworkSettings, train: TrainSettings, ctx: FitContext,
                    init_state: dict | list | None = None, progress: bool = True, on_epoch: EpochHook | None = None):
    """The forecaster of a registry entry: a network (a seed ensemble with several seeds) or a baseline."""
    if entry.kind != "network":
        if entry.dist_baseline and ctx.target == "return":
            return DistributionBaselineForecaster(entry, ctx, network.distribution)
        return BaselineForecaster(entry, ctx)
    seeds = train.seed_list
    if len(seeds) == 1:
        return NetworkForecaster(entry, network, replace(train, seed=seeds[0]), ctx, init_state, progress, on_epoch)
    states = init_state if isinstance(init_state, list) else [None] * len(seeds)
    return SeedEnsemble([NetworkForecaster(entry, network, replace(train, seed=s, seeds=[]), ctx, state, progress,
                                           on_epoch) for s, state in zip(seeds, states)])
