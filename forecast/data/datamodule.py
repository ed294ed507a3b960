"""LightningDataModule over in-memory windows; the scaler sees training rows only.

Batches are sliced from tensors already in memory (``TensorBatches``): a
``DataLoader`` fetching one window at a time spends more time in Python than the
small networks here spend computing.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.preprocessing import StandardScaler

from .windows import FeatureSeries, Split, make_inputs, make_targets, time_split


class TensorBatches:
    """Iterable of ``(x [B, L, F], y [B, H])`` batches sliced from whole tensors."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        # One generator per loader, seeded once: epoch k's order is the same in every run.
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        x, y = self.x, self.y
        if self.shuffle:
            order = torch.randperm(len(x), generator=self.generator).to(x.device)
            x, y = x[order], y[order]
        for start in range(0, len(x), self.batch_size):
            yield x[start:start + self.batch_size], y[start:start + self.batch_size]


class WindowScaler:
    """Standardises features and target with statistics of the training rows alone.

    scikit-learn conventions: fitted state ends in ``_``; a fresh deep copy is fitted
    per fold so folds never share statistics.
    """

    def __init__(self):
        self.features = StandardScaler()
        self.target = StandardScaler()

    def fit(self, feature_rows: np.ndarray, target_values: np.ndarray) -> "WindowScaler":
        self.features.fit(feature_rows)
        self.target.fit(target_values.reshape(-1, 1))
        self.feature_mean_, self.feature_scale_ = self.features.mean_, self.features.scale_
        self.target_mean_, self.target_scale_ = float(self.target.mean_[0]), float(self.target.scale_[0])
        return self

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.feature_mean_) / self.feature_scale_).astype(np.float32)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def inverse_y(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_scale_ + self.target_mean_


def training_rows(train_origins: np.ndarray, lookback: int) -> slice:
    """The feature rows that training windows read: the scaler is fit on these only."""
    return slice(int(train_origins.min()) - lookback + 1, int(train_origins.max()) + 1)


def fit_scaler(series: FeatureSeries, split: Split, lookback: int, horizon: int,
               scaler: WindowScaler | None = None) -> WindowScaler:
    """A fresh copy of ``scaler`` (a new one by default) fitted on the training rows and targets of ``split``."""
    fresh = copy.deepcopy(scaler) if scaler is not None else WindowScaler()
    return fresh.fit(series.features[training_rows(split.train, lookback)],
                     make_targets(series.target, split.train, horizon))


class WindowDataModule(pl.LightningDataModule):
    """Load in ``prepare_data`` (``source``: a FeatureSeries, or a function that returns one); split, scale
    and window in ``setup``."""

    def __init__(self, source: FeatureSeries | Callable[[], FeatureSeries], lookback: int, horizon: int, batch_size: int = 64,
                 split: Split | None = None, val_fraction: float = 0.15, test_fraction: float = 0.15,
                 seed: int = 0, scaler: WindowScaler | None = None, sequence: bool = False):
        super().__init__()
        self.source, self.lookback, self.horizon, self.batch_size = source, lookback, horizon, batch_size
        self.split, self.val_fraction, self.test_fraction, self.seed = split, val_fraction, test_fraction, seed
        self.series: FeatureSeries | None = source if isinstance(source, FeatureSeries) else None
        self.scaler = scaler
        self.sequence = sequence  # truncated BPTT: the training part as one ordered sequence

    def prepare_data(self) -> None:
        if self.series is None:
            self.series = self.source()

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_x"):
            return
        self.prepare_data()
        s = self.series
        if self.split is None:
            self.split = time_split(len(s), self.lookback, self.horizon, self.val_fraction, self.test_fraction)
        self.scaler = fit_scaler(s, self.split, self.lookback, self.horizon, self.scaler)
        self.train_x, self.train_y = self.tensors(self.split.train)
        self.val_x, self.val_y = self.tensors(self.split.val)

    def tensors(self, origins: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled ``x [N, L, F]`` and ``y [N, H]`` for the given origins."""
        s = self.series
        x = torch.from_numpy(self.scaler.transform_x(make_inputs(s.features, origins, self.lookback)))
        return x, torch.from_numpy(self.scaler.transform_y(make_targets(s.target, origins, self.horizon)))

    def training_sequence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [1, T, F]``, ``y [1, T, H]``: every training row in order, each with its next-days target."""
        rows = training_rows(self.split.train, self.lookback)
        days = np.arange(rows.start, rows.stop)
        x = self.scaler.transform_x(self.series.features[rows])
        y = self.scaler.transform_y(make_targets(self.series.target, days, self.horizon))
        return torch.from_numpy(x)[None], torch.from_numpy(y)[None]

    def _on_device(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """The tensors on the trainer's device, moved once: on a GPU, copying every small batch from host
        memory would cost more than the step itself."""
        trainer = self.trainer
        return [t.to(trainer.strategy.root_device) if trainer is not None else t for t in tensors]

    def train_dataloader(self):
        if self.sequence:
            return TensorBatches(*self._on_device(*self.training_sequence()), batch_size=1)  # the whole sequence
        return TensorBatches(*self._on_device(self.train_x, self.train_y), self.batch_size, shuffle=True,
                             seed=self.seed)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(*self._on_device(self.val_x, self.val_y), max(self.batch_size, 1024))
