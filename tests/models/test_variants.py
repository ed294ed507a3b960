"""Greff et al.'s LSTM variants: the table, each variant's definition, torch.nn.LSTM where they meet it, chrono."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from forecast.models import REGISTRY, VARIANT_DOCS
from forecast.models.recurrent import make_recurrent
from forecast.models.variants.specs import SPECS, VariantSpec, get_spec
from forecast.models.variants.cells import (FUSED_VARIANTS, OPEN, VARIANTS, NativeLSTM, NativeVariantLSTM,
    VariantLSTM, VariantLSTMLayer, make_variant)

TORCH_ROWS = {"i": 0, "f": 1, "z": 2, "g": 2, "o": 3}   # torch.nn.LSTM's gate order (i, f, g, o)
# Parameters at hidden 64, one input feature (torch.nn.LSTM: two bias vectors).
PARAMETERS = {"vanilla": 17088, "nig": 12800, "nfg": 12800, "nog": 12800, "niaf": 17088, "noaf": 17088,
              "np": 17152, "cifg": 12800, "fgr": 53952, "cifg-np": 12672, "nig-np": 12672, "nfg-np": 12672,
              "nog-np": 12672}


def rows(weight: torch.Tensor, gate: str, d: int) -> torch.Tensor:
    return weight[TORCH_ROWS[gate] * d:(TORCH_ROWS[gate] + 1) * d]


def copy_from_torch(layer: VariantLSTMLayer, lstm: nn.LSTM) -> None:
    """torch's (i, f, g, o) rows of [4D, F] -> our blocks (z, i, f, o) as columns of [F, nD]; one bias."""
    d = lstm.hidden_size
    with torch.no_grad():
        for k, block in enumerate(layer.spec.blocks):
            cols = slice(k * d, (k + 1) * d)
            layer.W[:, cols] = rows(lstm.weight_ih_l0, block, d).T
            layer.R[:, cols] = rows(lstm.weight_hh_l0, block, d).T
            layer.b[cols] = rows(lstm.bias_ih_l0 + lstm.bias_hh_l0, block, d)


def copy_from_native(layer: VariantLSTMLayer, native: NativeVariantLSTM) -> None:
    d = native.hidden_size
    with torch.no_grad():
        for k, block in enumerate(layer.spec.blocks):
            j = native.free.index("g" if block == "z" else block)
            cols, free = slice(k * d, (k + 1) * d), slice(j * d, (j + 1) * d)
            layer.W[:, cols] = native.weight_ih_l0[free].T
            layer.R[:, cols] = native.weight_hh_l0[free].T
            layer.b[cols] = native.bias_l0[free]


def test_the_registry_is_built_from_the_table():
    variants = [n for n, e in REGISTRY.items() if n.startswith("lstm-") and e.scope == "local"]
    assert variants == [f"lstm-{s.name}" for s in SPECS]
    assert VARIANT_DOCS == {s.name: s.doc for s in SPECS} and VARIANTS == tuple(VARIANT_DOCS)
    assert [s.name for s in SPECS if s.greff] == ["vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"]
    assert all(s.native == (s.name.endswith("-np") or s.name == "np") for s in SPECS)
    assert get_spec("cifg").flags() == {"coupled": True} and get_spec("cifg").blocks == ("z", "i", "o")
    assert get_spec("fgr").gates == ("i", "f", "o") and get_spec("nig").blocks == ("z", "f", "o")


def test_bad_names_and_flag_sets_are_value_errors():
    with pytest.raises(ValueError, match="variant must be one of vanilla, nig, .*, got 'cifgg'"):
        make_variant("cifgg", 1, 4)
    with pytest.raises(ValueError, match="coupled=True needs input_gate and forget_gate"):
        VariantSpec("x", "", coupled=True, input_gate=False)
    with pytest.raises(ValueError, match="native=True needs peepholes=False"):
        VariantSpec("x", "", native=True)
    with pytest.raises(ValueError, match="native=True needs output_activation=True"):
        VariantSpec("x", "", native=True, peepholes=False, output_activation=False)
    with pytest.raises(ValueError, match="runs on torch.nn.LSTM's kernel"):
        VariantLSTMLayer(1, 4, "cifg-np")
    with pytest.raises(ValueError, match="needs the fused cell"):
        NativeVariantLSTM(1, 4, variant="cifg")
    with pytest.raises(ValueError, match=r"x must be \[batch, steps >= 1, features\], got shape \(2, 0, 1\)"):
        VariantLSTMLayer(1, 4)(torch.randn(2, 0, 1))


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_counts(name):
    module = make_variant(name, 1, 64)
    assert sum(p.numel() for p in module.parameters()) == PARAMETERS[name]


def test_np_is_torch_lstm_and_fused_vanilla_without_peepholes_equals_it():
    torch.manual_seed(0)
    np_lstm = make_recurrent("lstm-np", 3, 16, 1, 0.0)
    assert isinstance(np_lstm, NativeLSTM) and isinstance(np_lstm, nn.LSTM) and np_lstm.batch_first
    lstm = nn.LSTM(3, 16, batch_first=True)
    np_lstm.load_state_dict(lstm.state_dict())
    x = torch.randn(4, 25, 3)
    expected, (h, c) = lstm(x)
    out, (h2, c2) = np_lstm(x)
    assert torch.equal(out, expected) and torch.equal(c2, c)
    layer = VariantLSTMLayer(3, 16, "vanilla")
    copy_from_torch(layer, lstm)
    with torch.no_grad():
        layer.peep.zero_()
        out, (h3, c3), _ = layer(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(c3, c[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(h3, h[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["cifg", "nig", "nfg", "nog"])
def test_native_form_equals_the_fused_variant_with_peepholes_zeroed(name):
    torch.manual_seed(1)
    native = make_variant(f"{name}-np", 2, 8)
    fused = VariantLSTMLayer(2, 8, name)
    copy_from_native(fused, native)
    with torch.no_grad():
        fused.peep.zero_()
    x, h0, c0 = torch.randn(5, 12, 2), torch.randn(5, 8), torch.randn(5, 8)
    out, (h, c) = native(x, (h0[None], c0[None]))
    expected, (h2, c2), _ = fused(x, (h0, c0))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(c[0], c2, atol=1e-5, rtol=0)


def test_native_form_weights_have_the_defining_rows():
    d = 6
    w_ih, w_hh, b_ih, b_hh = make_variant("cifg-np", 2, d).lstm_weights()
    for w in (w_ih, w_hh, b_ih):
        torch.testing.assert_close(rows(w, "f", d), -rows(w, "i", d))   # f = s(-a_i) = 1 - i
    assert torch.all(b_hh == 0)
    for name, gate in (("nig", "i"), ("nfg", "f"), ("nog", "o")):
        w_ih, w_hh, b_ih, _ = make_variant(f"{name}-np", 2, d).lstm_weights()
        assert torch.all(rows(w_ih, gate, d) == 0) and torch.all(rows(w_hh, gate, d) == 0)
        assert torch.all(rows(b_ih, gate, d) == OPEN) and torch.sigmoid(torch.tensor(OPEN)) == 1.0


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
    for variant in ("vanilla", "fgr", "niaf", "noaf"):
        _, _, _, i, f, o = gates(variant)
        assert torch.all((i > 0) & (i < 1) & (f > 0) & (f < 1) & (o > 0) & (o < 1)), variant
    # NOAF: h = c * o can leave (-1, 1); with tanh it cannot.
    layer, x, out, *_ = gates("noaf")
    with torch.no_grad():
        layer.W.mul_(20)
    assert layer(x)[0].abs().max() > 1 and gates("vanilla")[2].abs().max() < 1
    assert gates("fgr")[0].R_gates.shape == (24, 24) and gates("vanilla")[0].R_gates is None
    assert gates("cifg")[0].peep.shape == (2, 8)              # i and o peep; f = 1 - i has none of its own


def test_peepholes_and_gate_recurrence_change_the_output():
    torch.manual_seed(3)
    base = VariantLSTMLayer(2, 8, "vanilla")
    x = torch.randn(3, 10, 2)
    with torch.no_grad():
        out = base(x)[0]
        base.peep.zero_()
        no_peep = base(x)[0]
        fgr = VariantLSTMLayer(2, 8, "fgr")
        fgr.load_state_dict({k: v for k, v in base.state_dict().items()} | {"R_gates": fgr.R_gates})
        with_gates = fgr(x)[0]
        fgr.R_gates.zero_()
        torch.testing.assert_close(fgr(x)[0], no_peep)     # zero gate recurrence == none
    assert not torch.allclose(out, no_peep) and not torch.allclose(with_gates, no_peep)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_multi_layer_trains_and_carries_its_state(variant):
    torch.manual_seed(0)
    net = make_variant(variant, 2, 8, num_layers=2, dropout=0.1)
    head = nn.Linear(8, 1)
    x, y = torch.randn(16, 6, 2), torch.randn(16, 1)
    out, state = net(x)
    assert out.shape == (16, 6, 8) and len(state) == 2
    loss = nn.functional.mse_loss(head(out[:, -1]), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    net.eval()
    with torch.no_grad():
        whole, _ = net(x)
        first, state = net(x[:, :4])
        rest, _ = net(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-6, rtol=0)


def chrono_biases(name: str, d: int = 16) -> dict[str, torch.Tensor]:
    """The input and forget gates' bias after chrono_init(50), as torch.nn.LSTM would see them."""
    torch.manual_seed(0)
    module = make_recurrent(f"lstm-{name}", 1, d, 1, 0.0, chrono=50)
    if isinstance(module, nn.LSTM):
        b = (module.bias_ih_l0 + module.bias_hh_l0).detach()
    elif isinstance(module, NativeVariantLSTM):
        b = module.lstm_weights()[2].detach()
    else:
        layer = module.layers[0]
        return {g: layer.b[k * d:(k + 1) * d].detach() for k, g in enumerate(layer.spec.blocks) if g in "if"}
    return {g: rows(b, g, d) for g in "if"}


@pytest.mark.parametrize("name", ["vanilla", "np", "fgr", "cifg-np", "nog-np"])
def test_chrono_init_sets_forget_and_input_biases(name):
    """The one rule of models/chrono.py: forget bias log(u) in [0, log 49]; an input gate of its own 0;
    coupled (CIFG: f = 1 - i = s(-a_i)) the input gate -log(u)."""
    b = chrono_biases(name)
    if name.startswith("cifg"):
        assert torch.all(b["i"] <= 0) and torch.all(b["i"] >= -np.log(49) - 1e-6)
        torch.testing.assert_close(b["f"], -b["i"])
    else:
        assert torch.all(b["i"] == 0)
    assert torch.all(b["f"] >= 0) and torch.all(b["f"] <= np.log(49) + 1e-6) and b["f"].std() > 0


def test_chrono_init_where_a_gate_is_missing_or_coupled():
    cifg = chrono_biases("cifg")                         # only i exists: f = 1 - s(-log u) = s(log u)
    assert set(cifg) == {"i"} and torch.all(cifg["i"] <= 0) and torch.all(cifg["i"] >= -np.log(49) - 1e-6)
    assert set(chrono_biases("nig")) == {"f"} and torch.all(chrono_biases("nig")["f"] >= 0)
    assert set(chrono_biases("nfg")) == {"i"} and torch.all(chrono_biases("nfg")["i"] == 0)
    nfg = chrono_biases("nfg-np")
    assert torch.all(nfg["f"] == OPEN) and torch.all(nfg["i"] == 0)
    nig = chrono_biases("nig-np")
    assert torch.all(nig["i"] == OPEN) and torch.all(nig["f"] >= 0)


def test_fused_module_takes_float64_and_the_fused_names_only():
    net = VariantLSTM(2, 4, variant="fgr").double()
    out, ((h, c, g),) = net(torch.randn(3, 5, 2, dtype=torch.float64))
    assert out.dtype == torch.float64 and g.shape == (3, 12)
    assert set(FUSED_VARIANTS) == {s.name for s in SPECS if not s.native}
