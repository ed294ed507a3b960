"""The windows of a population's members, gathered by index: nothing is copied per window.

A member trains on one or more sources: a series, its split and its own scaler (fitted on that
series' training rows). A network of one series (a fold of a backtest) has one source; a global
network of a panel has one per series. What sits on the device is one scaled copy of each source's
daily rows, ``xs [S, T, F]`` and ``ys [S, T]``, and a batch is gathered from them by (source,
origin): ``x [m, B, L, F]``, ``y [m, B, H]``. The scaled values are exactly those a network trained
alone sees (``WindowScaler.transform_x`` of the float32 windows). With ``embed`` channels, every day
of a source also carries its series' one-hot code (a global network's learned series embedding).

Each member shuffles its own training windows with its own generator, seeded as alone
(``TensorBatches``), so member ``i``'s batch ``k`` of an epoch is the batch ``k`` it would get
alone. Members with fewer training windows have fewer batches: the trainer puts the members with
the most batches first, so the members that have a batch at step ``k`` are always the first ``m``
(``active``) and the others idle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.datamodule import WindowScaler
from ..data.windows import FeatureSeries, Split

VAL_WINDOWS = 1024            # validation windows per member and pass (as ``WindowDataModule``'s loader)
# Validation windows of all members together in one pass: on a CPU about what one network's pass holds, so a
# population's peak memory stays near one training's; a GPU has room for its members' full passes.
VAL_BUDGET = {"cpu": 2048, "cuda": 1 << 15}


@dataclass(frozen=True)
class Source:
    """One series a member trains on."""

    series: FeatureSeries
    split: Split
    scaler: WindowScaler
    code: int = 0             # the series' index in the one-hot embedding (used with ``embed``)


@dataclass(frozen=True)
class MemberData:
    """What one member trains on."""

    sources: tuple[Source, ...]
    seed: int                 # the shuffle's seed (as alone: the training's seed, or its restart's)


class PopulationBatches:
    """Training batches and validation windows of every member, on ``device``."""

    def __init__(self, members: list[MemberData], lookback: int, horizon: int, batch_size: int, device,
                 embed: int = 0):
        self.lookback, self.horizon, self.batch_size, self.device = lookback, horizon, batch_size, device
        sources = [s for m in members for s in m.sources]
        self.length = max(len(s.series) for s in sources)                     # T: a source's row stride
        width = sources[0].series.features.shape[1]
        xs = np.zeros((len(sources), self.length, width + embed), dtype=np.float32)
        ys = np.zeros((len(sources), self.length), dtype=np.float32)
        for row, s in enumerate(sources):
            # As make_inputs / make_targets (float32) then the scaler (float64 -> float32): the same values.
            xs[row, :len(s.series), :width] = s.scaler.transform_x(s.series.features.astype(np.float32))
            ys[row, :len(s.series)] = s.scaler.transform_y(s.series.target.astype(np.float32))
            if embed:
                xs[row, :, width + s.code] = 1.0
        self.xs, self.ys = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
        # Each member's windows as codes row * T + origin, its sources one after another.
        self.train, self.val, first = [], [], 0
        for m in members:
            rows = range(first, first + len(m.sources))
            first += len(m.sources)
            self.train.append(torch.from_numpy(self._codes(rows, [s.split.train for s in m.sources])))
            self.val.append(self._codes(rows, [s.split.val for s in m.sources]))
        self.generators = [torch.Generator().manual_seed(m.seed) for m in members]
        self.batches = [math.ceil(len(t) / batch_size) for t in self.train]
        self.back = torch.arange(-lookback + 1, 1, device=device)            # [L] window days
        self.ahead = torch.arange(1, horizon + 1, device=device)             # [H] target days

    def _codes(self, rows, origins: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([row * self.length + np.asarray(o, dtype=np.int64) for row, o in zip(rows, origins)])

    def epoch(self, alive: list[int]) -> torch.Tensor:
        """``[a, n * B]``: each alive member's training windows in this epoch's shuffled order, -1 after its end."""
        width = max(self.batches[i] for i in alive) * self.batch_size
        order = torch.full((len(alive), width), -1, dtype=torch.int64)
        for row, i in enumerate(alive):
            perm = torch.randperm(len(self.train[i]), generator=self.generators[i])
            order[row, :len(perm)] = self.train[i][perm]
        return order.to(self.device)

    def active(self, alive: list[int], step: int) -> int:
        """How many of the alive members (most batches first) have a batch at ``step``."""
        return sum(self.batches[i] > step for i in alive)

    def gather(self, codes: torch.Tensor):
        """``codes [m, N]`` (source row * T + origin; -1: padding) -> ``x [m, N, L, F]``, ``y [m, N, H]``,
        ``valid [m, N]``."""
        valid = codes >= 0
        source, origin = codes.clamp(min=0).div(self.length, rounding_mode="floor"), codes.clamp(min=0) % self.length
        origin = origin.clamp(min=self.lookback - 1)                          # padding reads a real window, masked
        rows = source.unsqueeze(-1)
        x = self.xs[rows, origin.unsqueeze(-1) + self.back]                   # [m, N, L, F]
        y = self.ys[rows, origin.unsqueeze(-1) + self.ahead]                  # [m, N, H]
        return x, y, valid

    def batch(self, order: torch.Tensor, step: int, members: int):
        """Batch ``step`` of the first ``members`` alive members: ``x [m, B, L, F]``, ``y``, ``valid``."""
        b = self.batch_size
        return self.gather(order[:members, step * b:(step + 1) * b])

    def validation(self, alive: list[int]):
        """The alive members' validation windows in chunks: ``(x [a, n, L, F], y [a, n, H], valid [a, n])``."""
        longest = max(len(self.val[i]) for i in alive)
        codes = torch.full((len(alive), longest), -1, dtype=torch.int64)
        for row, i in enumerate(alive):
            codes[row, :len(self.val[i])] = torch.from_numpy(self.val[i])
        codes = codes.to(self.device)
        chunk = max(1, min(VAL_WINDOWS, VAL_BUDGET.get(torch.device(self.device).type, 2048) // len(alive)))
        for start in range(0, longest, chunk):
            yield self.gather(codes[:, start:start + chunk])

    def val_counts(self, alive: list[int]) -> torch.Tensor:
        return torch.tensor([len(self.val[i]) for i in alive], dtype=torch.float32, device=self.device)

    def train_counts(self, alive: list[int]) -> torch.Tensor:
        return torch.tensor([len(self.train[i]) for i in alive], dtype=torch.float32, device=self.device)
