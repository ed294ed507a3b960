"""Many recurrent networks of one cell and size as one module: a population.

``M`` networks built alone (``RecurrentNet``, each with its own initialisation) are stacked:
every parameter gets a leading member dimension ``[M, ...]``, all of them held in one flat
buffer ``flat [M, N]`` (one row a member), so an optimizer step, a gradient norm or a member's
best weights are one operation on a row. The forward runs every member on its own windows,
``x [M, B, L, F] -> [M, B, H]`` (``[M, B, H, P]`` with a distribution head), with one batched
product a step for all members: ``batched_cells`` for ``rnn`` and ``gru``, the fused recurrence
(``variants/fused.py``) for ``lstm`` and every LSTM variant. The parameters are the very ones
each network has alone (``torch.nn.LSTM``'s two biases stay two), so a member trains exactly
as it would alone; ``write_back`` returns a member's weights to its own network, which is
what is saved and what forecasts. A user's own cell (``module:Class``) has no batched form.

Shapes: ``M`` members (or the first ``m`` of them: members that still train come first),
``B`` batch, ``L`` lookback, ``F`` features, ``D`` hidden units, ``H`` horizon.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .batched_cells import batched_gru, batched_rnn
from .recurrent import NetShape, RecurrentNet, position_features
from .variants.cells import NativeVariantLSTM, VariantLSTM
from .variants.fused import fused_lstm_members
from .variants.specs import VARIANT_SPECS, VariantSpec

TORCH_LSTM_ROWS = ("i", "f", "g", "o")      # torch.nn.LSTM's row blocks; the fused cell's z is its g


def cell_kind(net: RecurrentNet) -> str | None:
    """How a network's recurrence runs in a population: rnn, gru, lstm (``torch.nn.LSTM``), native-variant,
    fused; None where it cannot (a user's cell, a ReLU RNN)."""
    rnn = net.rnn
    if isinstance(rnn, nn.RNN):
        return "rnn" if rnn.nonlinearity == "tanh" else None
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.LSTM):
        return "lstm" if rnn.proj_size == 0 else None
    if isinstance(rnn, NativeVariantLSTM):
        return "native-variant"
    if isinstance(rnn, VariantLSTM):
        return "fused"
    return None


def shape_key(shape: NetShape) -> NetShape:
    """What members of one population share: the shape, dropout aside (each member has its own rate)."""
    return replace(shape, dropout=0.0)


class PopulationNet(nn.Module):
    """``M`` networks of one cell and shape trained as one module (``flat [M, N]``: one row a member)."""

    def __init__(self, nets: list[RecurrentNet]):
        super().__init__()
        template = nets[0]
        self.kind = cell_kind(template)
        if self.kind is None:
            raise ValueError(f"cell {template.shape.cell!r} has no batched form: it trains one network at a time")
        key = shape_key(template.shape)
        for net in nets[1:]:
            if shape_key(net.shape) != key or type(net.rnn) is not type(template.rnn):
                raise ValueError(f"a population needs networks of one cell and shape: {net.shape} is not {key}")
        self.shape, self.head_template = template.shape, template.head
        self.layout = [(name, tuple(p.shape)) for name, p in template.named_parameters()]
        rows = [torch.cat([p.detach().reshape(-1) for p in net.parameters()]) for net in nets]
        self.flat = nn.Parameter(torch.stack(rows))                                      # [M, N]
        rates = [n.shape.dropout if n.shape.num_layers > 1 else 0.0 for n in nets]
        self.register_buffer("dropout", torch.tensor(rates, dtype=self.flat.dtype, device=self.flat.device))
        self.spec = self._spec(template)
        if self.kind in ("lstm", "native-variant"):     # torch's row blocks -> the fused cell's, made once
            free = TORCH_LSTM_ROWS if self.kind == "lstm" else self.free_rows
            self.register_buffer("rows", self._row_index(free), persistent=False)

    @staticmethod
    def _spec(net: RecurrentNet) -> VariantSpec | None:
        if isinstance(net.rnn, (NativeVariantLSTM, VariantLSTM)):
            return net.rnn.spec if isinstance(net.rnn, NativeVariantLSTM) else net.rnn.layers[0].spec
        return VARIANT_SPECS["np"] if isinstance(net.rnn, nn.LSTM) else None

    @property
    def members(self) -> int:
        return self.flat.size(0)

    def views(self, count: int | None = None) -> dict[str, torch.Tensor]:
        """Every parameter of the first ``count`` members as a view ``[count, ...]`` of ``flat``."""
        flat = self.flat if count is None else self.flat[:count]
        out, offset = {}, 0
        for name, shape in self.layout:
            size = int(torch.Size(shape).numel())
            out[name] = flat[:, offset:offset + size].view(flat.size(0), *shape)
            offset += size
        return out

    def forward(self, x: torch.Tensor, count: int | None = None) -> torch.Tensor:
        """``x [m, B, L, F]`` (``m = count`` first members, all by default) -> ``[m, B, H]`` (or ``[m, B, H, P]``)."""
        p = self.views(count)
        m, b, length, _ = x.shape
        if self.shape.position:
            where = position_features(length).to(x)                                        # [L, P]
            x = torch.cat([x, where.expand(m, b, length, -1)], dim=-1)                       # [m, B, L, F + P]
        rates = self.dropout[:m]
        for k in range(self.shape.num_layers):
            x = self._layer(k, x, p)                                                         # [m, B, L, D]
            if k < self.shape.num_layers - 1 and self.training and bool((rates > 0).any()):
                keep = (torch.rand_like(x) >= rates.view(m, 1, 1, 1)).to(x)
                x = x * keep / (1 - rates).view(m, 1, 1, 1)
        last = x[:, :, -1]                                                                   # [m, B, D]
        name = "head.weight" if "head.weight" in p else "head.linear.weight"
        raw = torch.baddbmm(p[name.replace("weight", "bias")].unsqueeze(1), last, p[name].transpose(1, 2))
        return raw if self.shape.distribution is None else self.head_template.outputs(raw)  # [m, B, H(, P)]

    def _layer(self, k: int, x: torch.Tensor, p: dict) -> torch.Tensor:
        m, b = x.size(0), x.size(1)
        zeros = x.new_zeros(m, b, self.shape.hidden_size)
        if self.kind in ("rnn", "gru"):
            fn = batched_rnn if self.kind == "rnn" else batched_gru
            return fn(x, zeros, *(p[f"rnn.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        if self.kind == "fused":
            own = {n: p.get(f"rnn.layers.{k}.{n}") for n in ("W", "R", "b", "peep", "R_gates")}
            return fused_lstm_members(self.spec, x, zeros, zeros, None, own["W"], own["R"], own["b"], own["peep"],
                                      own["R_gates"])[0]
        # torch.nn.LSTM and the -np variants: their row blocks reordered into the fused cell's (z, gates).
        index = self.rows
        w_ih, w_hh = p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"]
        bias = p[f"rnn.bias_ih_l{k}"] + p[f"rnn.bias_hh_l{k}"] if self.kind == "lstm" else p[f"rnn.bias_l{k}"]
        W = w_ih.index_select(1, index).transpose(1, 2)                                      # [m, F, nD]
        R = w_hh.index_select(1, index).transpose(1, 2)                                      # [m, D, nD]
        return fused_lstm_members(self.spec, x, zeros, zeros, None, W, R, bias.index_select(1, index), None,
                                  None)[0]

    @property
    def free_rows(self) -> tuple[str, ...]:
        """The -np variants' own row blocks (``NativeVariantLSTM.free``): the gates with weights, and g."""
        gates = self.spec.gates
        return tuple(k for k in TORCH_LSTM_ROWS if k == "g" or k in gates)

    def _row_index(self, free: tuple[str, ...]) -> torch.Tensor:
        d = self.shape.hidden_size
        blocks = ["g" if block == "z" else block for block in self.spec.blocks]
        index = torch.cat([torch.arange(free.index(k) * d, (free.index(k) + 1) * d) for k in blocks])
        return index.to(self.flat.device)

    @torch.no_grad()
    def write_back(self, member: int, net: RecurrentNet, row: torch.Tensor | None = None) -> None:
        """Member ``member``'s weights (or ``row``, one row of ``flat``: its best epoch's) into its own network."""
        values = self.flat[member] if row is None else row
        offset = 0
        for (name, shape), param in zip(self.layout, net.parameters()):
            size = int(torch.Size(shape).numel())
            param.copy_(values[offset:offset + size].view(shape))
            offset += size

    @torch.no_grad()
    def keep(self, index: torch.Tensor) -> None:
        """Keep only the members at ``index`` (in that order): members that stopped leave the batch."""
        self.flat = nn.Parameter(self.flat.detach().index_select(0, index))
        self.dropout = self.dropout.index_select(0, index)
