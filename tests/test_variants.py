"""Greff et al.'s LSTM variants: one cell, checked against torch.nn.LSTM and against each variant's definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from forecast.models.variants import VARIANTS, VariantLSTM, VariantLSTMLayer


def copy_from_torch(layer: VariantLSTMLayer, lstm: nn.LSTM) -> None:
    """torch orders gates (i, f, g, o) in [4D, F] matrices; ours are (z, i, f, o) in [F, 4D]."""
    d = lstm.hidden_size
    order = torch.cat([torch.arange(2 * d, 3 * d), torch.arange(0, 2 * d), torch.arange(3 * d, 4 * d)])
    with torch.no_grad():
        layer.W.copy_(lstm.weight_ih_l0[order].T)
        layer.R.copy_(lstm.weight_hh_l0[order].T)
        layer.b.copy_((lstm.bias_ih_l0 + lstm.bias_hh_l0)[order])


def test_np_variant_matches_torch_lstm():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 16, batch_first=True)
    layer = VariantLSTMLayer(3, 16, "np")
    copy_from_torch(layer, lstm)
    x = torch.randn(4, 25, 3)
    expected, (h, c) = lstm(x)
    out, (h2, c2, _), _ = layer(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(c2, c[0], atol=1e-5, rtol=0)


def gates(variant: str, seed: int = 1):
    torch.manual_seed(seed)
    layer = VariantLSTMLayer(2, 8, variant)
    x = torch.randn(5, 12, 2)
    out, _, trace = layer(x, record=True)
    d = 8
    return layer, x, out, trace[..., :d], trace[..., d:2 * d], trace[..., 2 * d:]


def test_each_variant_has_its_defining_property():
    _, _, _, i, f, o = gates("cifg")
    torch.testing.assert_close(i, 1 - f)
    assert torch.all(gates("nfg")[4] == 1) and not torch.all(gates("nfg")[3] == 1)
    assert torch.all(gates("nig")[3] == 1)
    assert torch.all(gates("nog")[5] == 1)
    for variant in ("vanilla", "np", "fgr", "niaf", "noaf"):
        _, _, _, i, f, o = gates(variant)
        assert torch.all((i > 0) & (i < 1) & (f > 0) & (f < 1) & (o > 0) & (o < 1)), variant
    # NOAF: h = c * o can leave (-1, 1); with tanh it cannot.
    layer, x, out, *_ = gates("noaf")
    with torch.no_grad():
        layer.W.mul_(20)
    assert layer(x)[0].abs().max() > 1 and gates("vanilla")[2].abs().max() < 1
    assert gates("np")[0].peep is None and gates("vanilla")[0].peep is not None
    assert gates("fgr")[0].R_gates.shape == (24, 24) and gates("vanilla")[0].R_gates is None


def test_peepholes_and_gate_recurrence_change_the_output():
    torch.manual_seed(3)
    base = VariantLSTMLayer(2, 8, "vanilla")
    x = torch.randn(3, 10, 2)
    with torch.no_grad():
        out = base(x)[0]
        base.peep.zero_()
        no_peep = base(x)[0]
    assert not torch.allclose(out, no_peep)
    np_layer = VariantLSTMLayer(2, 8, "np")
    np_layer.load_state_dict({k: v for k, v in base.state_dict().items() if k != "peep"})
    torch.testing.assert_close(np_layer(x)[0], no_peep)  # zero peepholes == no peepholes


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_multi_layer_trains(variant):
    torch.manual_seed(0)
    net = VariantLSTM(2, 8, num_layers=2, dropout=0.1, variant=variant)
    head = nn.Linear(8, 1)
    x, y = torch.randn(16, 6, 2), torch.randn(16, 1)
    out, state = net(x)
    assert out.shape == (16, 6, 8) and len(state) == 2
    loss = nn.functional.mse_loss(head(out[:, -1]), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_chrono_init_sets_forget_and_input_biases():
    net = VariantLSTM(1, 16, variant="vanilla")
    net.chrono_init(50)
    b = net.layers[0].b.detach()
    assert torch.all(b[32:48] >= 0) and torch.all(b[32:48] <= np.log(49) + 1e-6)
    torch.testing.assert_close(b[16:32], -b[32:48])
