"""One recurrent network for every cell; the cell is chosen by name (or is a user's class).

Shapes use one notation: ``B`` batch, ``L`` lookback, ``F`` features, ``D`` hidden
units, ``H`` horizon, ``S`` seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .chrono import chrono_bias
from .custom import build_cell, is_dotted
from .distribution_head import DistributionHead, combine_members
from .variants.cells import make_variant

TORCH_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POSITION_FREQUENCIES = (1.0, 0.5, 0.25, 0.125)    # radians per day: periods of 6 to 50 days
POSITION_CHANNELS = 2 * len(POSITION_FREQUENCIES)


def position_features(lookback: int) -> torch.Tensor:
    """``[L, P]``: where each day of a window stands, as the sines and cosines of how many days back it is
    (0 for the newest day). The same code for a day k days back whatever the lookback, so a network can
    pick "the day 10 days back" from a long window without counting steps from its start: read from the
    oldest day, a plain recurrent cell must count to find it, and trainings stop short at long lookbacks."""
    back = torch.arange(lookback - 1, -1, -1, dtype=torch.float32)[:, None]          # [L, 1]
    angles = back * torch.tensor(POSITION_FREQUENCIES)[None]                         # [L, P/2]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)                  # [L, P]


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                   chrono: int = 0) -> nn.Module:
    """``rnn``/``lstm``/``gru`` from ``torch.nn`` (cuDNN on GPU), ``lstm-<variant>`` from ``variants``.

    ``chrono > 1``: gate biases spread the memory time scales up to ``chrono`` steps.
    """
    dropout = dropout if num_layers > 1 else 0.0
    if is_dotted(cell):
        return build_cell(cell, input_size, hidden_size, num_layers, dropout)
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


@dataclass(frozen=True)
class NetShape:
    """Everything that fixes a network's architecture: enough to rebuild it and load its weights."""

    cell: str = "lstm"
    input_size: int = 1
    horizon: int = 1
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    distribution: str | None = None   # None: a point forecast; "normal" / "student-t": a distribution head
    position: int = 0                 # channels of position input appended to every day (0: none)

    @classmethod
    def of(cls, cell: str, input_size: int, horizon: int, network) -> "NetShape":
        """The shape that ``network`` (``forecast.config.NetworkSettings``, read by its fields) asks for."""
        return cls(cell, input_size, horizon, network.hidden_size, network.num_layers, network.dropout,
                   network.distribution, POSITION_CHANNELS if network.position else 0)

    def to_dict(self) -> dict:
        return asdict(self)


class RecurrentNet(nn.Module):
    """Plain ``nn.Module``: recurrent layers -> last hidden state -> linear head (nanoGPT's ``GPT(config)``).

    With ``shape.distribution`` the head is a ``DistributionHead``: ``[B, H]`` becomes ``[B, H, P]``
    (mean, sd (, df)) below.
    """

    def __init__(self, shape: NetShape, chrono: int = 0):
        super().__init__()
        self.shape = shape
        self.rnn = make_recurrent(shape.cell, shape.input_size + shape.position, shape.hidden_size, shape.num_layers,
                                  shape.dropout, chrono)
        self.head = (nn.Linear(shape.hidden_size, shape.horizon) if shape.distribution is None
                     else DistributionHead(shape.hidden_size, shape.horizon, shape.distribution))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape.position:
            b, length, _ = x.shape                                   # [B, L, F]
            where = position_features(length).to(x)                   # [L, P]
            x = torch.cat([x, where.expand(b, length, -1)], dim=-1)   # [B, L, F + P]
        out, _ = self.rnn(x)           # [B, L, F] -> [B, L, D]
        return self.head(out[:, -1])   # [B, D] -> [B, H] (or [B, H, P])

    def forward_sequence(self, x: torch.Tensor, state=None):
        """Stateful run: an output at every step, and the state to carry on with."""
        out, state = self.rnn(x, state)  # [B, L, F] -> [B, L, D]
        return self.head(out), state     # [B, L, H]


class ScaledNetwork(nn.Module):
    """A trained network with its scaler baked in: raw windows in, forecasts in target units out.

    This is what gets logged to MLflow, so a loaded model needs no separate scaler. A distribution
    network's (mean, sd, df) come out in target units too: the mean unscaled, the sd times the
    target's scale, the degrees of freedom unchanged.
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
        out = self.net(z)
        if out.dim() == 2:
            return out * self.target_scale + self.target_mean  # [B, H]
        mean = out[..., 0] * self.target_scale + self.target_mean   # [B, H, P] -> [B, H] each
        sd = out[..., 1] * self.target_scale
        return torch.stack([mean, sd, *out[..., 2:].unbind(-1)], dim=-1)   # [B, H, P]


class MeanNetwork(nn.Module):
    """Several trained networks as one model: the mean of their forecasts (a seed ensemble).

    Distribution networks combine into one distribution of the same family with the mixture's mean
    and variance (``combine_members``): its mean is the mean of the members' point forecasts.
    """

    def __init__(self, networks: list[nn.Module]):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([net(x) for net in self.networks])   # [S, B, H] (or [S, B, H, P])
        return outputs.mean(dim=0) if outputs.dim() == 3 else combine_members(outputs)   # [B, H] (or [B, H, P])
