"""The plain-autograd reference of the fused cell: the equations of ``fused_lstm.py`` step by step.

Slow (autograd records every op of every step) and obviously right; the tests hold the
fused ``torch.autograd.Function`` to it, outputs and every gradient.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .specs import VariantSpec


def reference_lstm(spec: VariantSpec, x: Tensor, h0: Tensor, c0: Tensor, g0: Optional[Tensor], W: Tensor, R: Tensor,
                   b: Tensor, P: Optional[Tensor], R_gates: Optional[Tensor]):
    """``x [B, L, F]`` -> ``out [B, L, D]``, ``c_n [B, D]``, ``g_n [B, GD]``, gate trace ``[B, L, 3D]`` (i, f, o)."""
    d = R.size(0)
    blocks = spec.blocks
    peep = dict(zip(spec.gates, P)) if spec.peepholes and P is not None else {}
    gx = x @ W + b                                                    # [B, L, nD]
    h, c, g = h0, c0, g0
    outputs, trace = [], []
    for t in range(x.size(1)):
        a = gx[:, t] + h @ R                                          # [B, nD]
        if spec.full_gate_recurrence:
            a = torch.cat([a[:, :d], a[:, d:] + g @ R_gates], 1)
        pre = {k: a[:, j * d:(j + 1) * d] for j, k in enumerate(blocks)}
        z = torch.tanh(pre["z"]) if spec.input_activation else pre["z"]
        one = torch.ones_like(c)
        i = torch.sigmoid(pre["i"] + peep["i"] * c if "i" in peep else pre["i"]) if "i" in pre else one
        if spec.coupled:
            f = 1.0 - i
        else:
            f = torch.sigmoid(pre["f"] + peep["f"] * c if "f" in peep else pre["f"]) if "f" in pre else one
        c = z * i + c * f                                             # [B, D]
        o = torch.sigmoid(pre["o"] + peep["o"] * c if "o" in peep else pre["o"]) if "o" in pre else one
        h = (torch.tanh(c) if spec.output_activation else c) * o     # [B, D]
        if spec.full_gate_recurrence:
            own = {"i": i, "f": f, "o": o}
            g = torch.cat([own[k] for k in spec.gates], 1)            # [B, GD]
        outputs.append(h)
        trace.append(torch.cat([i, f, o], 1))
    g_n = g if spec.full_gate_recurrence else x.new_empty(x.size(0), 0)
    return torch.stack(outputs, 1), c, g_n, torch.stack(trace, 1)
