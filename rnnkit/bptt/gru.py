"""GRU forward and hand-written backward through time, torch's variant."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.bptt.common import (
    GradientRecorder,
    hold_finished,
    input_projection,
    split_by_mask,
    weight_gradients,
)


class GRUFunction(torch.autograd.Function):
    """One GRU layer, one direction, over a whole sequence.

    Shapes: x ``(T, N, I)``, h0 ``(N, H)``, weight_ih ``(3H, I)``, weight_hh ``(3H, H)``,
    biases ``(3H,)`` or None, mask ``(T, N, 1)`` or None. Outputs: output ``(T, N, H)``, h_n
    ``(N, H)`` and, not differentiable, the post-activation gates ``(T, N, 3H)`` in the order
    reset, update, new. Saved besides: ``W_hn h_{t-1} + b_hn`` per step, which the reset
    gate multiplies and so its gradient needs.
    """

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder):
        steps, batch, _ = x.shape
        hidden = h0.shape[1]
        from_input = input_projection(x, weight_ih, bias_ih)  # (T, N, 3H)
        hiddens = x.new_empty(steps + 1, batch, hidden)
        gates = x.new_empty(steps, batch, 3 * hidden)
        hidden_new = x.new_empty(steps, batch, hidden)  # W_hn h_{t-1} + b_hn
        hiddens[0] = h0
        weight_hh_t = weight_hh.T
        for t in range(steps):
            if bias_hh is None:
                from_hidden = hiddens[t] @ weight_hh_t
            else:
                from_hidden = torch.addmm(bias_hh, hiddens[t], weight_hh_t)  # (N, 3H)
            act = gates[t]
            torch.sigmoid(
                from_input[t, :, : 2 * hidden] + from_hidden[:, : 2 * hidden],
                out=act[:, : 2 * hidden],
            )
            reset, update, new = act.chunk(3, dim=1)
            hidden_new[t] = from_hidden[:, 2 * hidden :]
            torch.tanh(torch.addcmul(from_input[t, :, 2 * hidden :], reset, hidden_new[t]), out=new)
            h = torch.addcmul(new, update, hiddens[t] - new)  # (1 - z) n + z h
            m = None if mask is None else mask[t]
            hiddens[t + 1] = hold_finished(h, hiddens[t], m)
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask)
        ctx.has_bias = bias_ih is not None
        ctx.recorder = recorder
        ctx.mark_non_differentiable(gates)
        return output, hiddens[steps].clone(), gates

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, _grad_gates):
        x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask = ctx.saved_tensors
        steps = x.shape[0]
        hidden = hiddens.shape[2]
        grad_from_input = torch.empty_like(gates)  # dL/d(W_ih x + b_ih), (T, N, 3H)
        grad_from_hidden = torch.empty_like(gates)  # dL/d(W_hh h + b_hh)
        recorder: GradientRecorder | None = ctx.recorder
        hidden_grads = torch.empty_like(hiddens[1:]) if recorder is not None else None
        if mask is not None:
            grad_output = grad_output * mask
        grad_h = grad_h_n.clone()
        for t in reversed(range(steps)):
            m = None if mask is None else mask[t]
            grad_h = grad_h + grad_output[t]
            if hidden_grads is not None:
                hidden_grads[t] = grad_h
            grad_h, grad_h_held = split_by_mask(grad_h, m)
            reset, update, new = gates[t].chunk(3, dim=1)
            gi = grad_from_input[t]
            gr, gz, gn = gi.chunk(3, dim=1)
            torch.mul(grad_h * (1 - update), 1 - new * new, out=gn)
            torch.mul(grad_h * (hiddens[t] - new), update * (1 - update), out=gz)
            torch.mul(gn * hidden_new[t], reset * (1 - reset), out=gr)
            gh = grad_from_hidden[t]
            gh[:, : 2 * hidden] = gi[:, : 2 * hidden]
            torch.mul(gn, reset, out=gh[:, 2 * hidden :])
            grad_h = torch.addmm(grad_h * update, gh, weight_hh)  # (N, 3H) @ (3H, H)
            if m is not None:
                grad_h = grad_h + grad_h_held
        if hidden_grads is not None:
            recorder.store(hidden_grads, None, mask)
        needs = ctx.needs_input_grad
        grad_x = None
        if needs[0]:
            grad_x = (grad_from_input.reshape(-1, 3 * hidden) @ weight_ih).view_as(x)
        grad_weight_ih = weight_gradients(grad_from_input, x, needs[2])
        grad_weight_hh = weight_gradients(grad_from_hidden, hiddens[:-1], needs[3])
        grad_bias_ih = grad_from_input.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_bias_hh = grad_from_hidden.sum(dim=(0, 1)) if ctx.has_bias else None
        return (
            grad_x,
            grad_h,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias_ih,
            grad_bias_hh,
            None,
            None,
        )


def gru_sequence(
    x: Tensor,
    h0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """Functional form of :class:`GRUFunction`; see it for shapes."""
    return GRUFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder)
