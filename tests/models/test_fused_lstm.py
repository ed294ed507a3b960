"""The fused recurrence: gradcheck and the plain-autograd reference, for every variant and more flag sets."""

from __future__ import annotations

import pytest
import torch

from forecast.models.variants import fused as fused_module
from forecast.models.variants.fused import fused_lstm, fused_lstm_members
from forecast.models.variants.reference import reference_lstm
from forecast.models.variants.specs import VARIANT_SPECS, VariantSpec
from forecast.models.variants.cells import FUSED_VARIANTS

# Flag sets beyond the registry: the flags combine freely in the one implementation.
COMBOS = {
    "cifg+fgr": VariantSpec("x", "", coupled=True, full_gate_recurrence=True),
    "nig+nfg+niaf": VariantSpec("x", "", input_gate=False, forget_gate=False, input_activation=False),
    "nog+noaf": VariantSpec("x", "", output_gate=False, output_activation=False),
    "fused-np": VariantSpec("x", "", peepholes=False),
    "nfg+fgr-np": VariantSpec("x", "", forget_gate=False, full_gate_recurrence=True, peepholes=False),
}
SPECS = {name: VARIANT_SPECS[name] for name in FUSED_VARIANTS} | COMBOS


def inputs(spec: VariantSpec, dtype=torch.float64, b=3, length=5, f=2, d=3, seed=0, device="cpu"):
    """``x, h0, c0, g0, W, R, b, P, R_gates``, every one requiring grad (None where the variant has none)."""
    gen = torch.Generator().manual_seed(seed)
    n, g = len(spec.blocks), len(spec.gates)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).to(device).requires_grad_()

    fgr = spec.full_gate_recurrence
    return [rand(b, length, f), rand(b, d), rand(b, d),
            rand(b, g * d, scale=0.5) if fgr else None,
            rand(f, n * d, scale=0.5), rand(d, n * d, scale=0.5), rand(n * d),
            rand(g, d) if spec.peepholes and g else None,
            rand(g * d, g * d, scale=0.3) if fgr else None]


@pytest.mark.parametrize("name", SPECS)
def test_gradcheck_float64(name):
    spec = SPECS[name]
    args = inputs(spec)
    assert torch.autograd.gradcheck(lambda *a: fused_lstm(spec, *a)[:3], args)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("name", SPECS)
def test_outputs_and_every_gradient_equal_the_reference(name, dtype, tol):
    spec = SPECS[name]
    args = inputs(spec, dtype=dtype, b=4, length=7, f=3, d=5, seed=1)
    out, c, g, acts = fused_lstm(spec, *args)
    ref_out, ref_c, ref_g, ref_trace = reference_lstm(spec, *args)
    for mine, theirs in ((out, ref_out), (c, ref_c), (g, ref_g)):
        torch.testing.assert_close(mine, theirs, atol=tol, rtol=tol)
    assert out.shape == (4, 7, 5) and not acts.requires_grad
    upstream = [torch.randn_like(t) for t in (out, c, g)]
    leaves = [a for a in args if a is not None]
    k = 3 if spec.full_gate_recurrence else 2                 # g_n is empty without FGR
    mine = torch.autograd.grad([out, c, g][:k], leaves, upstream[:k], allow_unused=True)
    theirs = torch.autograd.grad([ref_out, ref_c, ref_g][:k], leaves, upstream[:k], allow_unused=True)
    for k, (a, b) in enumerate(zip(mine, theirs)):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=lambda m: f"gradient {k}: {m}")


def test_only_the_needed_gradients_and_a_strided_upstream():
    spec = VARIANT_SPECS["vanilla"]
    x, h0, c0, _, W, R, b, P, _ = inputs(spec, b=4, length=6, d=4)
    x, h0, c0 = x.detach(), h0.detach(), c0.detach()          # data and state: no gradient asked for
    out, *_ = fused_lstm(spec, x, h0, c0, None, W, R, b, P, None)
    ref, *_ = reference_lstm(spec, x, h0, c0, None, W, R, b, P, None)
    (out[:, ::2].sum() + out[:, -1].pow(2).sum()).backward()
    mine = [p.grad.clone() for p in (W, R, b, P)]
    for p in (W, R, b, P):
        p.grad = None
    (ref[:, ::2].sum() + ref[:, -1].pow(2).sum()).backward()
    for a, p in zip(mine, (W, R, b, P)):
        torch.testing.assert_close(a, p.grad)


@pytest.mark.parametrize("name", ["vanilla", "cifg+fgr", "nog+noaf"])
def test_the_eager_loops_compute_what_the_scripted_ones_do(name, monkeypatch):
    spec = SPECS[name]
    args = inputs(spec, b=4, length=6, d=4, seed=2)
    leaves = [a for a in args if a is not None]

    def run():
        out, c, g, _ = fused_lstm(spec, *args)
        return [out, c, g, *torch.autograd.grad((out.sum() + c.pow(2).sum() + g.sum()), leaves)]

    scripted = run()
    monkeypatch.setattr(fused_module, "forward_steps", fused_module._forward_steps)
    monkeypatch.setattr(fused_module, "backward_steps", fused_module._backward_steps)
    for a, b in zip(run(), scripted):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", ["vanilla", "fgr"])
def test_a_loss_on_the_final_cell_state_alone(name):
    spec = SPECS[name]
    args = inputs(spec, seed=3)
    leaves = [a for a in args if a is not None]
    mine = torch.autograd.grad(fused_lstm(spec, *args)[1].sum(), leaves, allow_unused=True)
    theirs = torch.autograd.grad(reference_lstm(spec, *args)[1].sum(), leaves, allow_unused=True)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b)


def test_native_specs_are_refused():
    with pytest.raises(ValueError, match="'np' is native"):
        fused_lstm(VARIANT_SPECS["np"], *inputs(VARIANT_SPECS["vanilla"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", SPECS)
def test_cuda_gradcheck_float64(name):
    spec = SPECS[name]
    args = inputs(spec, device="cuda")
    assert torch.autograd.gradcheck(lambda *a: fused_lstm(spec, *a)[:3], args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", SPECS)
def test_cuda_matches_the_reference(name):
    spec = SPECS[name]
    args = inputs(spec, dtype=torch.float32, device="cuda")
    out, c, _, _ = fused_lstm(spec, *args)
    ref_out, ref_c, _, _ = reference_lstm(spec, *args)
    torch.testing.assert_close(out, ref_out, atol=2e-5, rtol=2e-5)
    out.sum().backward()
    grads = [a.grad.clone() for a in args if a is not None]
    for a in args:
        if a is not None:
            a.grad = None
    ref_out.sum().backward()
    for mine, a in zip(grads, [a for a in args if a is not None]):
        torch.testing.assert_close(mine, a.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["vanilla", "fgr", "cifg+fgr", "nog+noaf", "fused-np"])
def test_members_at_once_compute_what_each_computes_alone(name):
    """The member dimension: three networks with weights of their own in one call give each network's own
    outputs and gradients (float64), and the member form passes gradcheck."""
    spec = SPECS[name]
    members = [inputs(spec, b=3, length=4, f=2, d=3, seed=10 + m) for m in range(3)]
    stacked = [None if a is None else torch.stack([m[k] for m in members]).detach().requires_grad_()
               for k, a in enumerate(members[0])]
    out, c, g, _ = fused_lstm_members(spec, *stacked)
    loss = out.pow(2).sum() + c.sum() + g.sum()
    grads = torch.autograd.grad(loss, [a for a in stacked if a is not None])
    for m, args in enumerate(members):
        o1, c1, g1, _ = fused_lstm(spec, *args)
        torch.testing.assert_close(out[m], o1, atol=1e-12, rtol=1e-12)
        one = torch.autograd.grad(o1.pow(2).sum() + c1.sum() + g1.sum(), [a for a in args if a is not None])
        for mine, theirs in zip(grads, one):
            torch.testing.assert_close(mine[m], theirs, atol=1e-12, rtol=1e-12)
    small = [None if a is None else a[:2].detach().requires_grad_() for a in stacked]
    assert torch.autograd.gradcheck(lambda *a: fused_lstm_members(spec, *a)[:3], small)
