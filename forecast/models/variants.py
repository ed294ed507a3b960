"""The LSTM of Greff et al. (*LSTM: A Search Space Odyssey*, 2015) and its eight variants, in one cell.

Vanilla LSTM with peepholes, per step (``*`` elementwise, ``s`` the logistic sigmoid):

    z_t = g(W_z x_t + R_z h_(t-1) + b_z)                      block input, g = tanh
    i_t = s(W_i x_t + R_i h_(t-1) + p_i * c_(t-1) + b_i)       input gate
    f_t = s(W_f x_t + R_f h_(t-1) + p_f * c_(t-1) + b_f)       forget gate
    c_t = z_t * i_t + c_(t-1) * f_t                            cell state
    o_t = s(W_o x_t + R_o h_(t-1) + p_o * c_t + b_o)           output gate
    h_t = h(c_t) * o_t                                         block output, h = tanh

Variants: NIG (i = 1), NFG (f = 1), NOG (o = 1), NIAF (g = identity), NOAF (h =
identity), NP (no peepholes), CIFG (f = 1 - i), FGR (every gate also sees all
gates' previous activations through a matrix ``R_gates``). The input projection
of all four blocks is one matrix product for the whole sequence; each step adds one
product ``h @ R``; the time loop is compiled with TorchScript.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import VARIANT_DOCS

VARIANTS = tuple(VARIANT_DOCS)


@torch.jit.script
def _scan(gx: Tensor, h: Tensor, c: Tensor, g: Tensor, R: Tensor, peep: Tensor, R_gates: Tensor,
          use_i: bool, use_f: bool, use_o: bool, input_act: bool, output_act: bool, peepholes: bool,
          cifg: bool, fgr: bool, record: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Runs the cell over ``gx [B, L, 4D]`` (input projections, blocks z, i, f, o)."""
    d = h.size(1)
    outputs: List[Tensor] = []
    trace: List[Tensor] = []
    ones = torch.ones_like(c)
    for t in range(gx.size(1)):
        a = gx[:, t] + torch.mm(h, R)                                # [B, 4D]
        if fgr:
            a = torch.cat([a[:, :d], a[:, d:] + torch.mm(g, R_gates)], 1)
        z = torch.tanh(a[:, :d]) if input_act else a[:, :d]          # [B, D]
        a_i, a_f = a[:, d:2 * d], a[:, 2 * d:3 * d]
        if peepholes:
            a_i = a_i + peep[0] * c
            a_f = a_f + peep[1] * c
        i = torch.sigmoid(a_i) if use_i else ones
        if cifg:
            f = 1.0 - i
        else:
            f = torch.sigmoid(a_f) if use_f else ones
        c = z * i + c * f                                            # [B, D]
        a_o = a[:, 3 * d:]
        if peepholes:
            a_o = a_o + peep[2] * c
        o = torch.sigmoid(a_o) if use_o else ones
        h = (torch.tanh(c) if output_act else c) * o                 # [B, D]
        if fgr or record:
            g = torch.cat([i, f, o], 1)                              # [B, 3D]
        if record:
            trace.append(g)
        outputs.append(h)
    gates = torch.stack(trace, 1) if record else torch.empty(0)
    return torch.stack(outputs, 1), h, c, g, gates


class VariantLSTMLayer(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, variant: str = "vanilla"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        d = hidden_size
        self.variant, self.hidden_size = variant, d
        self.W = nn.Parameter(torch.empty(input_size, 4 * d))      # blocks z, i, f, o
        self.R = nn.Parameter(torch.empty(d, 4 * d))
        self.b = nn.Parameter(torch.empty(4 * d))
        self.peep = nn.Parameter(torch.empty(3, d)) if variant != "np" else None
        self.R_gates = nn.Parameter(torch.empty(3 * d, 3 * d)) if variant == "fgr" else None
        bound = 1.0 / math.sqrt(d)  # torch.nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: Optional[Tuple[Tensor, Tensor, Tensor]] = None, record: bool = False):
        b, d = x.size(0), self.hidden_size
        if state is None:
            zeros = x.new_zeros(b, d)
            state = (zeros, zeros, x.new_zeros(b, 3 * d))
        gx = torch.matmul(x, self.W) + self.b                        # [B, L, F] -> [B, L, 4D], one product
        v = self.variant
        empty = x.new_empty(0)
        out, h, c, g, gates = _scan(
            gx, state[0], state[1], state[2], self.R, self.peep if self.peep is not None else empty,
            self.R_gates if self.R_gates is not None else empty,
            v != "nig", v != "nfg", v != "nog", v != "niaf", v != "noaf", v != "np", v == "cifg", v == "fgr", record)
        return out, (h, c, g), gates                                  # [B, L, D], state, [B, L, 3D] or empty


class VariantLSTM(nn.Module):
    """Stacked variant layers with the ``torch.nn.LSTM`` calling convention (batch first)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 variant: str = "vanilla"):
        super().__init__()
        self.hidden_size, self.num_layers, self.variant = hidden_size, num_layers, variant
        self.layers = nn.ModuleList(VariantLSTMLayer(input_size if k == 0 else hidden_size, hidden_size, variant)
                                    for k in range(num_layers))
        self.dropout = nn.Dropout(dropout if num_layers > 1 else 0.0)

    def forward(self, x: Tensor, state: Optional[tuple] = None):
        states = []
        for k, layer in enumerate(self.layers):
            x, layer_state, _ = layer(x, None if state is None else state[k])   # [B, L, D]
            states.append(layer_state)
            if k < self.num_layers - 1:
                x = self.dropout(x)
        return x, tuple(states)

    def chrono_init(self, max_timescale: float) -> None:
        """Forget bias log(u), input bias -log(u), u ~ U(1, T_max - 1) (Tallec & Ollivier, 2018)."""
        with torch.no_grad():
            for layer in self.layers:
                d = layer.hidden_size
                u = torch.empty(d).uniform_(1.0, max(max_timescale - 1.0, 1.0 + 1e-3))
                layer.b[d:2 * d] = -torch.log(u)          # input gate (and 1 - forget under CIFG)
                layer.b[2 * d:3 * d] = torch.log(u)       # forget gate
