"""One recurrent regressor for every cell; the cell is chosen by name.

Shapes use one notation: ``B`` batch, ``L`` lookback, ``F`` features, ``D`` hidden
units, ``H`` horizon.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from .variants import make_variant

TORCH_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                   chrono: int = 0) -> nn.Module:
    """``rnn``/``lstm``/``gru`` from ``torch.nn`` (cuDNN on GPU), ``lstm-<variant>`` from ``variants``.

    ``chrono > 1``: gate biases spread the memory time scales up to ``chrono`` steps.
    """
    dropout = dropout if num_layers > 1 else 0.0
    if cell.startswith("lstm-"):
        # lstm-np is torch.nn.LSTM itself; every variant module has chrono_init for its own gate layout.
        layer = make_variant(cell[len("lstm-"):], input_size, hidden_size, num_layers, dropout)
        if chrono > 1:
            layer.chrono_init(chrono)
        return layer
    layer = TORCH_CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout)
    if chrono > 1 and cell in ("lstm", "gru"):
        chrono_bias(layer, chrono)
    return layer


def chrono_bias(module: nn.LSTM | nn.GRU, max_timescale: float) -> None:
    """Chrono initialisation (Tallec & Ollivier, 2018) of ``torch.nn.LSTM``/``GRU`` gate biases.

    A unit that keeps a share ``f`` of its state per step remembers for about
    ``1 / (1 - f)`` steps. PyTorch's default biases give ``f`` around 0.5: a signal 40
    steps back reaches the output attenuated by ~0.5^40, so its gradient vanishes and
    the network settles on the zero forecast. With the keep gate's bias ``log(u)``,
    ``u ~ U(1, T_max - 1)`` (the input gate's bias its negative, for the LSTM), the
    memory time scales spread up to ``T_max`` steps from the first update.
    Gate order in ``bias_ih``: LSTM (input, forget, cell, output); GRU (reset, update, new),
    where the update gate is the share of the old state kept.
    """
    d = module.hidden_size
    with torch.no_grad():
        for layer in range(module.num_layers):
            b_ih, b_hh = getattr(module, f"bias_ih_l{layer}"), getattr(module, f"bias_hh_l{layer}")
            log_u = torch.log(torch.empty(d).uniform_(1.0, max(max_timescale - 1.0, 1.0 + 1e-3)))
            b_ih[d:2 * d] = log_u                  # LSTM forget gate / GRU update gate
            b_hh[d:2 * d] = 0.0
            if isinstance(module, nn.LSTM):
                b_ih[0:d] = -log_u                 # LSTM input gate
                b_hh[0:d] = 0.0


class RecurrentNet(nn.Module):
    """Plain ``nn.Module``: recurrent layers -> last hidden state -> linear head."""

    def __init__(self, cell: str = "lstm", input_size: int = 1, hidden_size: int = 64, num_layers: int = 1,
                 dropout: float = 0.0, horizon: int = 1, chrono: int = 0):
        super().__init__()
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers, dropout, chrono)
        self.head = nn.Linear(hidden_size, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)           # [B, L, F] -> [B, L, D]
        return self.head(out[:, -1])   # [B, D] -> [B, H]

    def forward_sequence(self, x: torch.Tensor, state=None):
        """Stateful run: an output at every step, and the state to carry on with."""
        out, state = self.rnn(x, state)  # [B, L, F] -> [B, L, D]
        return self.head(out), state     # [B, L, H]


class RecurrentRegressor(pl.LightningModule):
    """Lightning wrapper: MSE on the scaled target, Adam with gradient-norm clipping, one ``_common_step``."""

    def __init__(self, cell: str = "lstm", input_size: int = 1, hidden_size: int = 64, num_layers: int = 1,
                 dropout: float = 0.0, horizon: int = 1, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 gradient_clip: float = 1.0, chrono: int = 0, tbptt_k1: int = 0, tbptt_k2: int = 0):
        super().__init__()
        self.save_hyperparameters()
        # Manual optimisation: the step below is all a batch needs, and it skips Lightning's
        # closure machinery, which costs as much per step as these small networks' compute.
        self.automatic_optimization = False
        self.net = RecurrentNet(cell, input_size, hidden_size, num_layers, dropout, horizon, chrono)
        self.loss = nn.MSELoss()
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
            self.log(f"{stage}_loss", total[0] / total[1], prog_bar=True)

    def training_step(self, batch, batch_idx):
        if self.hparams.tbptt_k1:
            for loss in self.tbptt_losses(*batch):
                self._update(loss)
            return loss
        loss = self._common_step(batch, "train")
        self._update(loss)
        return loss

    def _update(self, loss: torch.Tensor) -> None:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.hparams.gradient_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def tbptt_losses(self, x: torch.Tensor, y: torch.Tensor):
        """Truncated BPTT over one ordered sequence ``x [1, T, F]``, ``y [1, T, H]``.

        Every K1 steps, yield the loss of the K1 newest outputs computed over the last
        K2 steps from the carried (detached) state, so no gradient reaches inputs more
        than K2 steps back. The carried state advances without gradient, with the
        weights as they are at that point. The caller updates after each loss.
        """
        k1 = self.hparams.tbptt_k1
        k2 = self.hparams.tbptt_k2 or k1
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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)


def _detach(state):
    """Cut the graph of a recurrent state (a tensor or nested tuples of them)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(_detach(s) for s in state)


class ScaledNetwork(nn.Module):
    """A trained network with its scaler baked in: raw windows in, forecasts in target units out.

    This is what gets logged to MLflow, so a loaded model needs no separate scaler.
    """

    def __init__(self, net: nn.Module, feature_mean, feature_scale, target_mean: float, target_scale: float):
        super().__init__()
        self.net = net
        self.register_buffer("feature_mean", torch.as_tensor(feature_mean, dtype=torch.float32))
        self.register_buffer("feature_scale", torch.as_tensor(feature_scale, dtype=torch.float32))
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_scale", torch.tensor(float(target_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.feature_mean) / self.feature_scale       # [B, L, F]
        return self.net(z) * self.target_scale + self.target_mean  # [B, H]
