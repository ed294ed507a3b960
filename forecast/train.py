"""Training: every registry entry becomes a forecaster with ``fit(series, split)`` / ``predict(series, origins)``.

Networks train with Lightning (Adam, gradient clipping, early stopping on the
validation loss, best weights restored); baselines fit on the same windows.
Nothing here talks to MLflow: the epoch history is returned and tracked later.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping

from .config import ModelConfig, TrainConfig
from .data.datamodule import WindowDataModule
from .data.windows import Series, Split, make_inputs, make_targets
from .models import ModelEntry, baselines
from .models.recurrent import RecurrentRegressor, ScaledNetwork

for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|isinstance.*treespec|_pytree).*")


@dataclass(frozen=True)
class FitContext:
    """What every model needs to know about its data."""

    feature_names: tuple[str, ...]
    target: str
    lookback: int
    horizon: int


class EpochRecorder(Callback):
    """Keeps per-epoch train/val loss and the weights of the best validation epoch."""

    def __init__(self):
        self.history: list[dict[str, float]] = []
        self.best_loss, self.best_state, self.best_epoch = float("inf"), None, -1

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch}
        for key in ("train_loss", "val_loss"):
            if key in metrics:
                row[key] = float(metrics[key])
        self.history.append(row)
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
    """A recurrent network trained by Lightning on scaled windows."""

    def __init__(self, entry: ModelEntry, model_cfg: ModelConfig, train_cfg: TrainConfig, ctx: FitContext,
                 init_state: dict | None = None, progress: bool = True):
        self.entry, self.model_cfg, self.train_cfg, self.ctx = entry, model_cfg, train_cfg, ctx
        self.init_state, self.progress = init_state, progress

    def build_module(self) -> RecurrentRegressor:
        m, t, c = self.model_cfg, self.train_cfg, self.ctx
        return RecurrentRegressor(cell=self.entry.cell, input_size=len(c.feature_names), hidden_size=m.hidden_size,
                                  num_layers=m.num_layers, dropout=m.dropout, horizon=c.horizon,
                                  learning_rate=t.learning_rate, weight_decay=t.weight_decay,
                                  gradient_clip=t.gradient_clip, chrono=c.lookback if m.chrono else 0,
                                  tbptt_k1=t.tbptt_k1, tbptt_k2=t.tbptt_k2)

    def fit(self, series: Series, split: Split) -> "NetworkForecaster":
        t = self.train_cfg
        pl.seed_everything(t.seed, workers=False, verbose=False)
        datamodule = WindowDataModule(series, self.ctx.lookback, self.ctx.horizon, t.batch_size, split=split, seed=t.seed,
                                      sequence=t.tbptt_k1 > 0)
        module = self.build_module()
        if self.init_state is not None:
            module.load_state_dict(self.init_state)
        recorder = EpochRecorder()
        callbacks = [recorder, EarlyStopping("val_loss", patience=t.patience, mode="min")]
        if self.progress:
            callbacks.append(EpochProgress(self.entry.name))
        trainer = pl.Trainer(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=1, logger=False,
                             enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                             enable_progress_bar=False,
                             callbacks=callbacks)
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


def make_forecaster(entry: ModelEntry, model_cfg: ModelConfig, train_cfg: TrainConfig, ctx: FitContext,
                    init_state: dict | None = None, progress: bool = True):
    if entry.kind == "network":
        return NetworkForecaster(entry, model_cfg, train_cfg, ctx, init_state, progress)
    return BaselineForecaster(entry, ctx)
