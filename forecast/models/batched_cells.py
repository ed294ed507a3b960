"""``torch.nn.RNN`` (tanh) and ``torch.nn.GRU`` for ``M`` networks at once, backward through time by hand.

The weights keep ``torch.nn``'s layout with a leading member dimension (``weight_ih [M, gD, F]``,
``weight_hh [M, gD, D]``, ``bias_ih``, ``bias_hh [M, gD]``; GRU rows r, z, n), so a population
trains exactly the parameters each network has alone. As in the fused LSTM
(``variants/fused.py``): the input projection is one product for all steps, each step one
batched product (``baddbmm``) for all members and a few in-place pointwise ops on buffers
kept member-major ``[M, L, B, ...]`` (the loops step through time-major views of them); the
backward computes every factor that does not depend on the incoming gradient for all steps at
once, so a step back is one ``baddbmm`` and a few pointwise ops, and the weight gradients are
one product over all steps each, without a copy.

Per step (``s`` the logistic sigmoid):

    RNN:  h_t = tanh(x_t W_ih^T + b_ih + h_(t-1) W_hh^T + b_hh)
    GRU:  r = s(x W_ir^T + b_ir + h W_hr^T + b_hr),  z = s(x W_iz^T + b_iz + h W_hz^T + b_hz)
          n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h_t = n + z * (h_(t-1) - n)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .scripting import scripted


def _projection(x: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """``x [M, B, L, F]`` -> ``(x2 [M, L*B, F], x W^T + b [M, L, B, gD])``: one product for all steps, member-major
    (each member's rows contiguous: its weight gradients are then products without a copy)."""
    M, B, L, F = x.shape
    x2 = x.permute(0, 2, 1, 3).reshape(M, L * B, F)
    wt = weight.transpose(1, 2)                                            # [M, F, gD]
    A = torch.addcmul(bias.unsqueeze(1), x2, wt) if F == 1 else torch.baddbmm(bias.unsqueeze(1), x2, wt)
    return x2, A.view(M, L, B, -1)


def _rnn_forward_steps(A: Tensor, H: Tensor, RT: Tensor):
    """In place: ``A [L, M, B, D]`` pre-activations; ``H [L+1, M, B, D]`` gets every state."""
    rows, Hs = A.unbind(0), H.unbind(0)
    for t in range(A.size(0)):
        rows[t].baddbmm_(Hs[t], RT)
        torch.tanh(rows[t], out=Hs[t + 1])


def _rnn_backward_steps(DA: Tensor, dOut: Tensor, K: Tensor, W_hh: Tensor, dh: Tensor):
    """In place: ``DA [L, M, B, D]`` gets dL/da of every step (``K = 1 - h_t^2``); ``dh`` ends as dL/dh0."""
    rows, dO, K_ = DA.unbind(0), dOut.unbind(0), K.unbind(0)
    for t in range(DA.size(0) - 1, -1, -1):
        dh.add_(dO[t])
        torch.mul(dh, K_[t], out=rows[t])
        torch.bmm(rows[t], W_hh, out=dh)


def _gru_forward_steps(GX: Tensor, GH: Tensor, H: Tensor, RT: Tensor, b_hh: Tensor, D: int):
    """In place: ``GX [L, M, B, 3D]`` input projections -> (r, z, n); ``GH`` gets ``h W_hh^T + b_hh`` of every
    step; ``H [L+1, M, B, D]`` every state."""
    Xs, Gs, Hs = GX.unbind(0), GH.unbind(0), H.unbind(0)
    bias = b_hh.unsqueeze(1)
    for t in range(GX.size(0)):
        gh = Gs[t]
        torch.baddbmm(bias, Hs[t], RT, out=gh)
        rz = Xs[t][..., :2 * D]
        rz.add_(gh[..., :2 * D]).sigmoid_()
        n = Xs[t][..., 2 * D:]
        n.addcmul_(rz[..., :D], gh[..., 2 * D:]).tanh_()
        h = Hs[t + 1]
        torch.sub(Hs[t], n, out=h)
        h.mul_(rz[..., D:]).add_(n)


def _gru_backward_steps(DX: Tensor, DH: Tensor, dOut: Tensor, KX: Tensor, KH: Tensor, Z: Tensor, W_hh: Tensor,
                        dh: Tensor):
    """In place: ``DX``, ``DH [L, M, B, 3D]`` get dL/d(input projection), dL/d(hidden projection) of every
    step from the factors ``KX``, ``KH`` (``[L, M, B, 3, D]``); ``dh`` ends as dL/dh0."""
    L = DX.size(0)
    dX, dH, dO = DX.unflatten(-1, (3, -1)).unbind(0), DH.unflatten(-1, (3, -1)).unbind(0), dOut.unbind(0)
    KX_, KH_, Z_, dH2 = KX.unbind(0), KH.unbind(0), Z.unbind(0), DH.unbind(0)
    for t in range(L - 1, -1, -1):
        dh.add_(dO[t])
        d = dh.unsqueeze(-2)
        torch.mul(d, KX_[t], out=dX[t])
        torch.mul(d, KH_[t], out=dH[t])
        dh.mul_(Z_[t]).baddbmm_(dH2[t], W_hh)


rnn_forward_steps, rnn_backward_steps = scripted(_rnn_forward_steps), scripted(_rnn_backward_steps)
gru_forward_steps, gru_backward_steps = scripted(_gru_forward_steps), scripted(_gru_backward_steps)


class BatchedRNNFunction(torch.autograd.Function):
    """``apply(x [M, B, L, F], h0 [M, B, D], weight_ih, weight_hh, bias_ih, bias_hh)`` -> ``out [M, B, L, D]``."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        M, B, L, _ = x.shape
        x2, A = _projection(x, weight_ih, bias_ih + bias_hh)               # [M, L, B, D]
        H = x.new_empty(M, L + 1, B, A.size(-1))
        H[:, 0] = h0
        with torch.no_grad():
            rnn_forward_steps(A.transpose(0, 1), H.transpose(0, 1), weight_hh.transpose(1, 2))
        ctx.save_for_backward(x2, weight_ih, weight_hh, H)
        ctx.set_materialize_grads(False)
        return H[:, 1:].transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x2, weight_ih, weight_hh, H = ctx.saved_tensors
        M, L, B, D = H.size(0), H.size(1) - 1, H.size(2), H.size(3)
        with torch.no_grad():
            K = torch.addcmul(H.new_ones(()), H[:, 1:], H[:, 1:], value=-1.0)    # tanh' of every step [M, L, B, D]
            dOut = H.new_zeros(M, L, B, D) if grad_out is None else grad_out.transpose(1, 2)
            DA, dh = H.new_empty(M, L, B, D), H.new_zeros(M, B, D)
            rnn_backward_steps(DA.transpose(0, 1), dOut.transpose(0, 1), K.transpose(0, 1), weight_hh, dh)
            DA2 = DA.view(M, L * B, D)
            need = ctx.needs_input_grad
            dx = torch.bmm(DA2, weight_ih).view(M, L, B, -1).transpose(1, 2) if need[0] else None
            dW_ih = torch.bmm(DA2.transpose(1, 2), x2) if need[2] else None
            dW_hh = torch.bmm(DA2.transpose(1, 2), H[:, :-1].reshape(M, L * B, D)) if need[3] else None
            db = DA2.sum(1)
        return dx, dh if need[1] else None, dW_ih, dW_hh, db if need[4] else None, db if need[5] else None


class BatchedGRUFunction(torch.autograd.Function):
    """``apply(x [M, B, L, F], h0 [M, B, D], weight_ih, weight_hh, bias_ih, bias_hh)`` -> ``out [M, B, L, D]``."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        M, B, L, _ = x.shape
        D = weight_hh.size(2)
        x2, GX = _projection(x, weight_ih, bias_ih)                        # [M, L, B, 3D]
        GH = torch.empty_like(GX)
        H = x.new_empty(M, L + 1, B, D)
        H[:, 0] = h0
        with torch.no_grad():
            gru_forward_steps(GX.transpose(0, 1), GH.transpose(0, 1), H.transpose(0, 1), weight_hh.transpose(1, 2),
                              bias_hh, D)
        ctx.save_for_backward(x2, weight_ih, weight_hh, GX, GH, H)
        ctx.set_materialize_grads(False)
        return H[:, 1:].transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x2, weight_ih, weight_hh, GX, GH, H = ctx.saved_tensors
        M, L, B, D = H.size(0), H.size(1) - 1, H.size(2), H.size(3)
        with torch.no_grad():
            r, z, n = GX.unflatten(-1, (3, D)).unbind(-2)                  # activations [M, L, B, D] each
            one = GX.new_ones(())
            KX = GX.new_empty(M, L, B, 3, D)                               # dL/d(input projection) = dh * KX
            Kr, Kz, Kn = KX.unbind(-2)
            torch.mul(torch.sub(one, z), torch.addcmul(one, n, n, value=-1.0), out=Kn)
            torch.mul(H[:, :-1] - n, torch.addcmul(z, z, z, value=-1.0), out=Kz)
            torch.mul(Kn * GH[..., 2 * D:], torch.addcmul(r, r, r, value=-1.0), out=Kr)
            KH = KX.clone()                                                # dL/d(hidden projection) = dh * KH
            KH[..., 2, :].mul_(r)
            dOut = H.new_zeros(M, L, B, D) if grad_out is None else grad_out.transpose(1, 2)
            DX, DH, dh = torch.empty_like(GX), torch.empty_like(GX), H.new_zeros(M, B, D)
            gru_backward_steps(DX.transpose(0, 1), DH.transpose(0, 1), dOut.transpose(0, 1), KX.transpose(0, 1),
                               KH.transpose(0, 1), z.transpose(0, 1), weight_hh, dh)
            DX2, DH2 = DX.view(M, L * B, 3 * D), DH.view(M, L * B, 3 * D)
            need = ctx.needs_input_grad
            dx = torch.bmm(DX2, weight_ih).view(M, L, B, -1).transpose(1, 2) if need[0] else None
            dW_ih = torch.bmm(DX2.transpose(1, 2), x2) if need[2] else None
            dW_hh = torch.bmm(DH2.transpose(1, 2), H[:, :-1].reshape(M, L * B, D)) if need[3] else None
        return (dx, dh if need[1] else None, dW_ih, dW_hh, DX2.sum(1) if need[4] else None,
                DH2.sum(1) if need[5] else None)


def batched_rnn(x: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                bias_hh: Tensor) -> Tensor:
    """``M`` tanh RNN layers: ``x [M, B, L, F]`` -> ``out [M, B, L, D]``."""
    return BatchedRNNFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)


def batched_gru(x: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                bias_hh: Tensor) -> Tensor:
    """``M`` GRU layers: ``x [M, B, L, F]`` -> ``out [M, B, L, D]``."""
    return BatchedGRUFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)
