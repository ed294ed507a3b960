"""The windows of a population's members, gathered by index: nothing is copied per window.

Each member has its own series (a backtest's members share one), its own split and its own
scaler (fitted on its own training rows). What sits on the device is one scaled copy of each
member's daily rows, ``xs [M, T, F]`` and ``ys [M, T]``; a batch is gathered from them by
origin: ``x [m, B, L, F]``, ``y [m, B, H]``. The scaled values are exactly those a network
trained alone sees (``WindowScaler.transform_x`` of the float32 windows).

Each member shuffles its own training origins with its own generator, seeded as alone
(``TensorBatches``), so member ``i``'s batch ``k`` of an epoch is the batch ``k`` it would get
alone. Members with fewer training windows have fewer batches: the trainer puts the members
with the most batches first, so the members that have a batch at step ``k`` are always the
first ``m`` (``active``) and the others idle.
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
class MemberData:
    """What one member trains on."""

    series: FeatureSeries
    split: Split
    scaler: WindowScaler
    seed: int                 # the shuffle's seed (as alone: the training's seed, or its restart's)


class PopulationBatches:
    """Training batches and validation windows of every member, on ``device``."""

    def __init__(self, members: list[MemberData], lookback: int, horizon: int, batch_size: int, device):
        self.lookback, self.horizon, self.batch_size, self.device = lookback, horizon, batch_size, device
        length = max(len(m.series) for m in members)
        width = members[0].series.features.shape[1]
        xs = np.zeros((len(members), length, width), dtype=np.float32)
        ys = np.zeros((len(members), length), dtype=np.float32)
        for i, m in enumerate(members):
            # As make_inputs / make_targets (float32) then the scaler (float64 -> float32): the same values.
            xs[i, :len(m.series)] = m.scaler.transform_x(m.series.features.astype(np.float32))
            ys[i, :len(m.series)] = m.scaler.transform_y(m.series.target.astype(np.float32))
        self.xs, self.ys = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
        self.train = [torch.from_numpy(np.asarray(m.split.train, dtype=np.int64)) for m in members]
        self.val = [np.asarray(m.split.val, dtype=np.int64) for m in members]
        self.generators = [torch.Generator().manual_seed(m.seed) for m in members]
        self.batches = [math.ceil(len(t) / batch_size) for t in self.train]
        self.back = torch.arange(-lookback + 1, 1, device=device)            # [L] window days
        self.ahead = torch.arange(1, horizon + 1, device=device)             # [H] target days

    def epoch(self, alive: list[int]) -> torch.Tensor:
        """``[a, n * B]``: each alive member's training origins in this epoch's shuffled order, -1 after its end."""
        width = max(self.batches[i] for i in alive) * self.batch_size
        order = torch.full((len(alive), width), -1, dtype=torch.int64)
        for row, i in enumerate(alive):
            perm = torch.randperm(len(self.train[i]), generator=self.generators[i])
            order[row, :len(perm)] = self.train[i][perm]
        return order.to(self.device)

    def active(self, alive: list[int], step: int) -> int:
        """How many of the alive members (most batches first) have a batch at ``step``."""
        return sum(self.batches[i] > step for i in alive)

    def gather(self, origins: torch.Tensor, members: torch.Tensor):
        """``origins [m, N]`` (-1: padding) of ``members [m]`` -> ``x [m, N, L, F]``, ``y [m, N, H]``, ``valid [m, N]``."""
        valid = origins >= 0
        rows = origins.clamp(min=self.lookback - 1)                          # padding reads a real window, masked
        who = members.view(-1, 1, 1)
        x = self.xs[who, rows.unsqueeze(-1) + self.back]                      # [m, N, L, F]
        y = self.ys[who, rows.unsqueeze(-1) + self.ahead]                     # [m, N, H]
        return x, y, valid

    def batch(self, order: torch.Tensor, step: int, members: torch.Tensor):
        """Batch ``step`` of the first ``len(members)`` alive members: ``x [m, B, L, F]``, ``y``, ``valid``."""
        b = self.batch_size
        return self.gather(order[:len(members), step * b:(step + 1) * b], members)

    def validation(self, alive: list[int], members: torch.Tensor):
        """The alive members' validation windows in chunks: ``(x [a, n, L, F], y [a, n, H], valid [a, n])``."""
        longest = max(len(self.val[i]) for i in alive)
        origins = torch.full((len(alive), longest), -1, dtype=torch.int64)
        for row, i in enumerate(alive):
            origins[row, :len(self.val[i])] = torch.from_numpy(self.val[i])
        origins = origins.to(self.device)
        chunk = max(1, min(VAL_WINDOWS, VAL_BUDGET.get(torch.device(self.device).type, 2048) // len(alive)))
        for start in range(0, longest, chunk):
            yield self.gather(origins[:, start:start + chunk], members)

    def val_counts(self, alive: list[int]) -> torch.Tensor:
        return torch.tensor([len(self.val[i]) for i in alive], dtype=torch.float32, device=self.device)

    def train_counts(self, alive: list[int]) -> torch.Tensor:
        return torch.tensor([len(self.train[i]) for i in alive], dtype=torch.float32, device=self.device)
