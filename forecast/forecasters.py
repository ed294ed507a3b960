"""Every registry entry as a forecaster with ``fit(series, split)`` / ``predict(series, origins)``.

Networks train with Lightning (the one recipe of ``TrainConfig``: Adam, gradient
clipping, early stopping on the validation loss, best weights restored), once per
seed when there are several (a seed ensemble forecasts with their mean); baselines
fit on the same windows. Nothing here talks to MLflow: epoch losses go to an
optional ``on_epoch`` callback and the history is returned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from .config import NetworkConfig, TrainConfig
from .data.datamodule import WindowDataModule
from .data.windows import Series, Split, make_inputs, make_targets
from .errors import ForecastError
from .models import ModelEntry, baselines
from .models.recurrent import MeanNetwork, NetShape, ScaledNetwork
from .models.regressor import RecurrentRegressor

EpochHook = Callable[[dict], None]


@dataclass(frozen=True)
class FitContext:
    """What every model needs to know about its data."""

    feature_names: tuple[str, ...]
    target: str
    lookback: int
    horizon: int


class EpochRecorder(Callback):
    """Keeps per-epoch train/val loss (and hands each row to ``on_epoch``) and the best epoch's weights."""

    def __init__(self, seed: int, on_epoch: EpochHook | None = None):
        self.seed, self.history = seed, []
        self.best_loss, self.best_state, self.best_epoch = float("inf"), None, -1
        self.on_epoch = on_epoch

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "seed": self.seed}
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


class NetworkForecaster:
    """A recurrent network trained by Lightning on scaled windows, with ``train.seed``."""

    def __init__(self, entry: ModelEntry, network: NetworkConfig, train: TrainConfig, ctx: FitContext,
                 init_state: dict | None = None, progress: bool = True, on_epoch: EpochHook | None = None):
        self.entry, self.network, self.train, self.ctx = entry, network, train, ctx
        self.init_state, self.progress, self.on_epoch = init_state, progress, on_epoch

    @property
    def shape(self) -> NetShape:
        return NetShape.of(self.entry.cell, len(self.ctx.feature_names), self.ctx.horizon, self.network)

    def build_module(self) -> RecurrentRegressor:
        return RecurrentRegressor(self.shape, self.train, chrono=self.ctx.lookback if self.network.chrono else 0)

    def fit(self, series: Series, split: Split) -> "NetworkForecaster":
        t = self.train
        pl.seed_everything(t.seed, workers=False, verbose=False)
        datamodule = WindowDataModule(series, self.ctx.lookback, self.ctx.horizon, t.batch_size, split=split, seed=t.seed,
                                      sequence=t.tbptt_k1 > 0)
        module = self.build_module()
        if self.init_state is not None:
            module.load_state_dict(self.init_state)
        recorder = EpochRecorder(t.seed, self.on_epoch)
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
        self.module_, self.scaler_, self.history_ = module, datamodule.scaler, recorder.history
        self.best_epoch_ = recorder.best_epoch
        self.network_ = self.export()
        return self

    def export(self) -> ScaledNetwork:
        """CPU copy of the best network with its scaler inside: raw windows -> forecasts."""
        s = self.scaler_
        net = copy.deepcopy(self.module_.net).cpu().eval()
        return ScaledNetwork(net, s.feature_mean_, s.feature_scale_, s.target_mean_, s.target_scale_).eval()

    def state(self) -> dict:
        """Weights to warm-start the next fold from."""
        return copy.deepcopy(self.module_.state_dict())

    def predict(self, series: Series, origins: np.ndarray) -> np.ndarray:
        """Forecasts ``[N, H]`` for all origins in one batched pass."""
        x = torch.from_numpy(make_inputs(series.features, origins, self.ctx.lookback))
        with torch.no_grad():
            return self.network_(x).double().numpy()


class SeedEnsemble:
    """The same network trained once per seed; forecasts are the members' mean."""

    def __init__(self, members: list[NetworkForecaster]):
        self.members = members
        self.seeds = [m.train.seed for m in members]

    def fit(self, series: Series, split: Split) -> "SeedEnsemble":
        for member in self.members:
            member.fit(series, split)
        # One history for the whole ensemble: the members' epochs one after the other.
        self.history_ = [row for m in self.members for row in m.history_]
        self.best_epoch_ = self.members[0].best_epoch_
        self.network_ = MeanNetwork([m.network_ for m in self.members]).eval()
        return self

    def member_predictions(self, series: Series, origins: np.ndarray) -> np.ndarray:
        """``[S, N, H]``: each seed's forecasts."""
        return np.stack([m.predict(series, origins) for m in self.members])

    def predict(self, series: Series, origins: np.ndarray) -> np.ndarray:
        return self.member_predictions(series, origins).mean(axis=0)

    def state(self) -> list[dict]:
        return [m.state() for m in self.members]


class BaselineForecaster:
    """A scikit-learn-style baseline fitted on every window before the test part (train and validation)."""

    def __init__(self, entry: ModelEntry, ctx: FitContext):
        self.entry, self.ctx = entry, ctx
        self.estimator = getattr(baselines, entry.baseline)(ctx.feature_names, ctx.target, ctx.horizon)
        self.history_: list[dict[str, float]] = []

    def fit(self, series: Series, split: Split) -> "BaselineForecaster":
        origins = np.concatenate([split.train, split.val])
        self.estimator.fit(make_inputs(series.features, origins, self.ctx.lookback),
                           make_targets(series.target, origins, self.ctx.horizon))
        return self

    def predict(self, series: Series, origins: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(make_inputs(series.features, origins, self.ctx.lookback)), dtype=np.float64)


def make_forecaster(entry: ModelEntry, network: NetworkConfig, train: TrainConfig, ctx: FitContext,
                    init_state: dict | list | None = None, progress: bool = True, on_epoch: EpochHook | None = None):
    """The forecaster of a registry entry: a network (a seed ensemble with several seeds) or a baseline."""
    if entry.kind != "network":
        return BaselineForecaster(entry, ctx)
    seeds = train.seed_list
    if len(seeds) == 1:
        return NetworkForecaster(entry, network, replace(train, seed=seeds[0]), ctx, init_state, progress, on_epoch)
    states = init_state if isinstance(init_state, list) else [None] * len(seeds)
    return SeedEnsemble([NetworkForecaster(entry, network, replace(train, seed=s, seeds=[]), ctx, state, progress,
                                           on_epoch) for s, state in zip(seeds, states)])
