"""The one chrono initialisation of gate biases, for every gate layout (LSTM, its variants, GRU).

Tallec & Ollivier (2018): a unit that keeps a share ``f`` of its state per step remembers
for about ``1 / (1 - f)`` steps. PyTorch's default biases give ``f`` around 0.5, so a
signal 40 steps back arrives attenuated by ~0.5^40, its gradient vanishes and the
network settles on the zero forecast. With the keep (forget) gate's bias ``log(u)``,
``u ~ U(1, T_max - 1)``, memory time scales spread up to ``T_max`` steps from the first
update.

Where the input gate is a gate of its own, its bias stays at its default 0 (the paper
sets it to ``-log(u)``). Measured on the bench's memory series (6,000 days, lookback 50,
3 seeds, the default recipe): with ``-log(u)`` a long-memory unit takes in only
``1 / T`` of each input, and the LSTM sat on the zero forecast for about 18 epochs at
lag 40 and was stopped there in 2 of 3 seeds at lags 20 and 40 (RMSE / optimum 1.50
and 1.53, median); with 0 it takes in half, leaves the plateau after 7-9 epochs and
reached 1.007 and 1.020. Where the keep share is coupled to the input (CIFG's
``f = 1 - i``; the GRU's update gate), the one gate gets the bias that makes its keep
side ``log(u)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def keep_bias(hidden_size: int, max_timescale: float) -> Tensor:
    """``log(u)``, ``u ~ U(1, T_max - 1)``: the keep gate's bias, one per unit."""
    return torch.log(torch.empty(hidden_size).uniform_(1.0, max(max_timescale - 1.0, 1.0 + 1e-3)))


def gate_biases(hidden_size: int, max_timescale: float, gates: tuple[str, ...], coupled: bool = False) -> dict[str, Tensor]:
    """Bias per LSTM gate that has weights of its own (``gates``, a subset of ``("i", "f")``): ``f`` gets
    ``log(u)``; ``i`` gets 0, or ``-log(u)`` when it is coupled to the forget gate (``f = 1 - i``, CIFG)."""
    log_u = keep_bias(hidden_size, max_timescale)
    out: dict[str, Tensor] = {}
    if "f" in gates:
        out["f"] = log_u
    if "i" in gates:
        out["i"] = -log_u if coupled else torch.zeros(hidden_size)
    return out


def chrono_bias(module: nn.LSTM | nn.GRU, max_timescale: float) -> None:
    """The one chrono rule on ``torch.nn.LSTM``/``GRU`` biases.

    Gate order in ``bias_ih``: LSTM (input, forget, cell, output); GRU (reset, update, new), where
    the update gate is the share of the old state kept. The hidden-side biases of the set gates are 0.
    """
    d = module.hidden_size
    with torch.no_grad():
        for layer in range(module.num_layers):
            b_ih, b_hh = getattr(module, f"bias_ih_l{layer}"), getattr(module, f"bias_hh_l{layer}")
            if isinstance(module, nn.LSTM):
                biases = gate_biases(d, max_timescale, ("i", "f"))
                b_ih[0:d], b_ih[d:2 * d] = biases["i"], biases["f"]
                b_hh[0:2 * d] = 0.0
            else:
                b_ih[d:2 * d] = keep_bias(d, max_timescale)
                b_hh[d:2 * d] = 0.0
