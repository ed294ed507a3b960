"""The Lightning module that trains a ``RecurrentNet``: the one training recipe, in one place.

It takes the network's shape and the training settings as objects (``NetShape``,
``TrainSettings``): MSE on the scaled target (the negative log-likelihood for a distribution
head, ``shape.distribution``), Adam, gradient-norm clipping, optional
truncated BPTT, and a stop with a clear error when the loss stops being a number.
"""

from __future__ import annotations

from dataclasses import asdict

import pytorch_lightning as pl
import torch
from torch import nn

from ..errors import ForecastError
from .distribution_head import NegativeLogLikelihood
from .recurrent import NetShape, RecurrentNet


class TrainingModule(pl.LightningModule):
    """Lightning wrapper: MSE (or NLL) on the scaled target, Adam with gradient-norm clipping, one ``_common_step``.

    ``chrono``: the longest memory time scale of the chrono initialisation (0: PyTorch's biases).
    """

    def __init__(self, shape: NetShape, train, chrono: int = 0):
        """``train``: the training recipe (``forecast.config.TrainSettings``, read by its fields)."""
        super().__init__()
        self.save_hyperparameters({"shape": shape.to_dict(), "train": asdict(train), "chrono": chrono})
        self.recipe = train
        # Manual optimisation: the step below is all a batch needs, and it skips Lightning's
        # closure machinery, which costs as much per step as these small networks' compute.
        self.automatic_optimization = False
        self.net = RecurrentNet(shape, chrono)
        self.loss = nn.MSELoss() if shape.distribution is None else NegativeLogLikelihood(shape.distribution)
        self._sums: dict[str, list] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)             # [B, L, F] -> [B, H]

    def _common_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch                   # [B, L, F], [B, H]
        loss = self.loss(self(x), y)
        # Accumulate the epoch's sum here and log f"{stage}_loss" once per epoch: Lightning's
        # per-step `self.log` costs about as much as a forward pass of these small networks.
        total = self._sums.setdefault(stage, [torch.zeros((), device=loss.device), 0])
        total[0] += loss.detach() * len(x)
        total[1] += len(x)
        return loss

    def _log_epoch(self, stage: str) -> None:
        total = self._sums.pop(stage, None)
        if total and total[1]:
            mean = total[0] / total[1]
            if not torch.isfinite(mean):  # one check per epoch: no extra device sync per step
                raise ForecastError(f"training diverged: the {stage} loss is {float(mean)} at epoch "
                                    f"{self.current_epoch + 1}; lower --learning-rate or --gradient-clip")
            self.log(f"{stage}_loss", mean, prog_bar=True)

    def training_step(self, batch, batch_idx):
        if self.recipe.tbptt_k1:
            for loss in self.tbptt_losses(*batch):
                self._update(loss)
            return loss
        loss = self._common_step(batch, "train")
        self._update(loss)
        return loss

    def _update(self, loss: torch.Tensor) -> None:
        # The plain torch optimizer and clipping: Lightning's wrappers around them cost as much per
        # step as these small networks' compute; ``manual_backward`` stays (strategies hook into it).
        optimizer = self.optimizers().optimizer
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.recipe.gradient_clip:
            nn.utils.clip_grad_norm_(self.parameters(), self.recipe.gradient_clip, foreach=True)
        optimizer.step()

    def tbptt_losses(self, x: torch.Tensor, y: torch.Tensor):
        """Truncated BPTT over one ordered sequence ``x [1, T, F]``, ``y [1, T, H]``.

        Every K1 steps, yield the loss of the K1 newest outputs computed over the last
        K2 steps from the carried (detached) state, so no gradient reaches inputs more
        than K2 steps back. The carried state advances without gradient, with the
        weights as they are at that point. The caller updates after each loss.
        """
        k1 = self.recipe.tbptt_k1
        k2 = self.recipe.tbptt_k2 or k1
        length = x.size(1)
        ends = list(range(k1, length + 1, k1)) + ([length] if length % k1 else [])
        state, pos, previous_end = None, 0, 0
        for end in ends:
            start = max(0, end - k2)
            if start > pos:
                with torch.no_grad():
                    _, state = self.net.forward_sequence(x[:, pos:start], state)  # [1, start-pos, F]
                pos = start
            out, _ = self.net.forward_sequence(x[:, start:end], _detach(state))   # [1, end-start, H]
            n = min(end - previous_end, end - start)
            loss = self.loss(out[:, -n:], y[:, end - n:end])
            total = self._sums.setdefault("train", [torch.zeros((), device=loss.device), 0])
            total[0] += loss.detach() * n
            total[1] += n
            previous_end = end
            yield loss

    def validation_step(self, batch, batch_idx):
        return self._common_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the epoch's last training batch: log both here, so that
        # callbacks reading the metrics at the end of the training epoch see this epoch's.
        self._log_epoch("val")
        if not self.trainer.sanity_checking:
            self._log_epoch("train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")  # only when there was no validation this epoch

    def configure_optimizers(self):
        settings = dict(lr=self.recipe.learning_rate, weight_decay=self.recipe.weight_decay)
        try:   # one fused kernel per step where this torch build has it (CPU since 2.4, CUDA)
            return torch.optim.Adam(self.parameters(), fused=True, **settings)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(self.parameters(), **settings)


def _detach(state):
    """Cut the graph of a recurrent state (a tensor or nested tuples of them)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(_detach(s) for s in state)


