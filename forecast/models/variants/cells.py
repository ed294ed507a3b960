"""The LSTM of Greff et al. (*LSTM: A Search Space Odyssey*, 2015) and its variants, chosen by name.

Vanilla LSTM with peepholes, per step (``*`` elementwise, ``s`` the logistic sigmoid):

    z_t = g(W_z x_t + R_z h_(t-1) + b_z)                      block input, g = tanh
    i_t = s(W_i x_t + R_i h_(t-1) + p_i * c_(t-1) + b_i)       input gate
    f_t = s(W_f x_t + R_f h_(t-1) + p_f * c_(t-1) + b_f)       forget gate
    c_t = z_t * i_t + c_(t-1) * f_t                            cell state
    o_t = s(W_o x_t + R_o h_(t-1) + p_o * c_t + b_o)           output gate
    h_t = h(c_t) * o_t                                         block output, h = tanh

Variants: NIG (i = 1), NFG (f = 1), NOG (o = 1), NIAF (g = identity), NOAF (h =
identity), NP (no peepholes), CIFG (f = 1 - i), FGR (every gate also sees all
gates' previous activations through a matrix ``R_gates``). Each name is a row of
flags in ``variant_specs``; ``make_variant`` builds it on one of three engines:

- ``np`` is ``torch.nn.LSTM`` itself (``NativeLSTM``, cuDNN on a GPU).
- ``cifg-np``, ``nig-np``, ``nfg-np``, ``nog-np`` (not Greff's: no peepholes) run on the
  same kernel with weights built from free parameters on every forward
  (``NativeVariantLSTM``): a missing gate gets zero weights and a bias of ``OPEN``
  (s(40) is 1 in float32 and float64), CIFG's forget rows are minus the input rows,
  so f = s(-a_i) = 1 - i.
- the others, with peepholes, run the fused recurrence of ``fused_lstm.py``
  (``VariantLSTM``): a hand-written backward through time, flags of one implementation.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ..chrono import chrono_bias, gate_biases
from .fused import fused_lstm
from .specs import VARIANT_SPECS, VariantSpec, get_spec

VARIANTS = tuple(VARIANT_SPECS)
FUSED_VARIANTS = tuple(name for name, spec in VARIANT_SPECS.items() if not spec.native)
OPEN = 40.0  # bias of a gate fixed open on the native kernel: sigmoid(40) == 1.0 in float32 and float64


class VariantLSTMLayer(nn.Module):
    """One fused layer: ``W [F, nD]``, ``R [D, nD]``, ``b [nD]`` over ``spec.blocks``; ``peep [G, D]``, ``R_gates``."""

    def __init__(self, input_size: int, hidden_size: int, variant: str = "vanilla"):
        super().__init__()
        spec = get_spec(variant)
        if spec.native:
            raise ValueError(f"variant {variant!r} runs on torch.nn.LSTM's kernel: build it with make_variant, "
                             f"the fused cell takes one of {', '.join(FUSED_VARIANTS)}")
        d, n, g = hidden_size, len(spec.blocks), len(spec.gates)
        self.spec, self.hidden_size = spec, d
        self.W = nn.Parameter(torch.empty(input_size, n * d))
        self.R = nn.Parameter(torch.empty(d, n * d))
        self.b = nn.Parameter(torch.empty(n * d))
        self.peep = nn.Parameter(torch.empty(g, d)) if spec.peepholes and g else None
        self.R_gates = nn.Parameter(torch.empty(g * d, g * d)) if spec.full_gate_recurrence else None
        bound = 1.0 / math.sqrt(d)  # torch.nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: Optional[tuple] = None, record: bool = False):
        """``x [B, L, F]`` -> ``out [B, L, D]``, state ``(h, c)`` (FGR: ``(h, c, g)``), gate trace ``[B, L, 3D]``."""
        if x.dim() != 3 or x.size(1) == 0:
            raise ValueError(f"x must be [batch, steps >= 1, features], got shape {tuple(x.shape)}")
        b, d, spec = x.size(0), self.hidden_size, self.spec
        fgr = spec.full_gate_recurrence
        x = x.to(self.W.dtype)                                          # the loop writes into buffers of one dtype
        if state is None:
            zeros = x.new_zeros(b, d)
            state = (zeros, zeros, x.new_zeros(b, len(spec.gates) * d)) if fgr else (zeros, zeros)
        state = tuple(s.to(x.dtype) for s in state)
        out, c, g, acts = fused_lstm(spec, x, state[0], state[1], state[2] if fgr else None,
                                     self.W, self.R, self.b, self.peep, self.R_gates)
        h = out[:, -1]                                                  # [B, D]
        trace = self.gate_trace(acts) if record else x.new_empty(0)
        return out, ((h, c, g) if fgr else (h, c)), trace

    def gate_trace(self, acts: Tensor) -> Tensor:
        """Activations ``[L, B, nD]`` -> gates ``[B, L, 3D]`` ordered i, f, o (1 where a gate is missing)."""
        d, blocks = self.hidden_size, self.spec.blocks
        own = {k: acts[..., j * d:(j + 1) * d] for j, k in enumerate(blocks)}
        one = torch.ones_like(own["z"])
        i = own.get("i", one)
        f = 1.0 - i if self.spec.coupled else own.get("f", one)
        return torch.cat([i, f, own.get("o", one)], -1).transpose(0, 1)

    def chrono_init(self, max_timescale: float) -> None:
        """The one chrono rule (``chrono.gate_biases``) on the gates this layer has."""
        d, blocks = self.hidden_size, self.spec.blocks
        with torch.no_grad():
            for gate, value in gate_biases(d, max_timescale, self.spec.gates, self.spec.coupled).items():
                self.b[blocks.index(gate) * d:(blocks.index(gate) + 1) * d] = value


class VariantLSTM(nn.Module):
    """Stacked fused layers with the ``torch.nn.LSTM`` calling convention (batch first); state: one tuple a layer."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 variant: str = "vanilla"):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
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
        for layer in self.layers:
            layer.chrono_init(max_timescale)


class NativeLSTM(nn.LSTM):
    """``lstm-np``: ``torch.nn.LSTM`` itself (batch first), plus ``chrono_init``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers=num_layers, dropout=dropout, batch_first=True)

    def chrono_init(self, max_timescale: float) -> None:
        """The one chrono rule (``chrono.chrono_bias``); gate order (i, f, g, o), the hidden-side biases 0."""
        chrono_bias(self, max_timescale)


class NativeVariantLSTM(nn.Module):
    """A no-peephole variant on ``torch.nn.LSTM``'s kernel; weights built from the free rows on every forward.

    Per layer ``weight_ih_l{k} [nD, F]``, ``weight_hh_l{k} [nD, D]``, ``bias_l{k} [nD]`` hold the
    rows of the gates that have weights of their own, in ``torch.nn.LSTM``'s order (i, f, g, o).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 variant: str = "cifg-np"):
        super().__init__()
        spec = get_spec(variant)
        if not spec.native:
            raise ValueError(f"variant {variant!r} needs the fused cell (VariantLSTM), not torch.nn.LSTM's kernel")
        self.spec = spec
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout if num_layers > 1 else 0.0
        self.free = tuple(k for k, own in (("i", "i" in spec.gates), ("f", "f" in spec.gates), ("g", True),
                                           ("o", "o" in spec.gates)) if own)
        d, n = hidden_size, len(self.free)
        bound = 1.0 / math.sqrt(d)
        for k in range(num_layers):
            for name, shape in ((f"weight_ih_l{k}", (n * d, input_size if k == 0 else d)),
                                (f"weight_hh_l{k}", (n * d, d)), (f"bias_l{k}", (n * d,))):
                self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def _rows(self, p: Tensor, gate: str, bias: bool) -> Tensor:
        d = self.hidden_size
        if gate in self.free:
            j = self.free.index(gate)
            return p[j * d:(j + 1) * d]
        if gate == "f" and self.spec.coupled:        # f = s(-a_i) = 1 - i
            return -self._rows(p, "i", bias)
        return p.new_full((d,), OPEN) if bias else p.new_zeros(d, p.size(1))   # fixed open

    def lstm_weights(self) -> list[Tensor]:
        """``torch.nn.LSTM``'s ``(w_ih, w_hh, b_ih, b_hh)`` per layer, views of one flat buffer (cuDNN's layout)."""
        pieces, shapes = [], []
        for k in range(self.num_layers):
            w_ih, w_hh, bias = (getattr(self, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias"))
            for p, is_bias in ((w_ih, False), (w_hh, False), (bias, True)):
                rows = [self._rows(p, gate, is_bias) for gate in "ifgo"]
                pieces += rows
                shapes.append((4 * self.hidden_size,) + tuple(p.shape[1:]))
            pieces.append(bias.new_zeros(4 * self.hidden_size))         # b_hh: the one bias is b_ih
            shapes.append((4 * self.hidden_size,))
        flat = torch.cat([p.reshape(-1) for p in pieces])
        views, offset = [], 0
        for shape in shapes:
            size = math.prod(shape)
            views.append(flat[offset:offset + size].view(shape))
            offset += size
        return views

    def forward(self, x: Tensor, state: Optional[tuple] = None):
        """``x [B, L, F]`` -> ``out [B, L, D]``, ``(h [layers, B, D], c [layers, B, D])``, as ``torch.nn.LSTM``."""
        if state is None:
            zeros = x.new_zeros(self.num_layers, x.size(0), self.hidden_size)
            state = (zeros, zeros)
        out, h, c = torch.lstm(x, state, self.lstm_weights(), True, self.num_layers, self.dropout, self.training,
                               False, True)
        return out, (h, c)

    def chrono_init(self, max_timescale: float) -> None:
        """The one chrono rule (``chrono.gate_biases``) on the free rows that exist (CIFG: f = 1 - i)."""
        d = self.hidden_size
        with torch.no_grad():
            for k in range(self.num_layers):
                bias = getattr(self, f"bias_l{k}")
                for gate, value in gate_biases(d, max_timescale, self.spec.gates, self.spec.coupled).items():
                    j = self.free.index(gate)
                    bias[j * d:(j + 1) * d] = value


def make_variant(variant: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0) -> nn.Module:
    """The module of ``variant`` (a name of ``variant_specs``), batch first, with ``chrono_init``."""
    spec = get_spec(variant)
    if spec.name == "np":
        return NativeLSTM(input_size, hidden_size, num_layers, dropout)
    cls = NativeVariantLSTM if spec.native else VariantLSTM
    return cls(input_size, hidden_size, num_layers, dropout, variant=variant)


__all__ = ["VARIANTS", "FUSED_VARIANTS", "OPEN", "VariantSpec", "VariantLSTMLayer", "VariantLSTM", "NativeLSTM",
           "NativeVariantLSTM", "make_variant"]
