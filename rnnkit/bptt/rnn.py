"""Vanilla RNN forward and hand-written backward through time, tanh or relu."""

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


class RNNFunction(torch.autograd.Function):
    """One vanilla RNN layer, one direction, over a whole sequence.

    Shapes: x ``(T, N, I)``, h0 ``(N, H)``, weight_ih ``(H, I)``, weight_hh ``(H, H)``, biases
    ``(H,)`` or None, mask ``(T, N, 1)`` or None. Outputs: output ``(T, N, H)`` and h_n.
    The backward multiplies the error by ``diag(phi') W_hh`` once per step back: this product
    is what vanishes or explodes.
    """

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, recorder):
        steps, batch, _ = x.shape
        bias = None if bias_ih is None else bias_ih + bias_hh
        from_input = input_projection(x, weight_ih, bias)  # (T, N, H)
        hiddens = x.new_empty(steps + 1, batch, h0.shape[1])
        hiddens[0] = h0
        activation = torch.tanh if nonlinearity == "tanh" else torch.relu
        weight_hh_t = weight_hh.T
        for t in range(steps):
            h = activation(torch.addmm(from_input[t], hiddens[t], weight_hh_t))
            hiddens[t + 1] = hold_finished(h, hiddens[t], None if mask is None else mask[t])
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, mask)
        ctx.has_bias = bias_ih is not None
        ctx.nonlinearity = nonlinearity
        ctx.recorder = recorder
        return output, hiddens[steps].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
        steps = x.shape[0]
        grad_pre = torch.empty_like(hiddens[1:])  # dL/d(pre-activation), (T, N, H)
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
            h = hiddens[t + 1]
            if ctx.nonlinearity == "tanh":
                torch.mul(grad_h, 1 - h * h, out=grad_pre[t])
            else:
                torch.mul(grad_h, (h > 0).to(h.dtype), out=grad_pre[t])
            grad_h = grad_pre[t] @ weight_hh
            if m is not None:
                grad_h = grad_h + grad_h_held
        if hidden_grads is not None:
            recorder.store(hidden_grads, None, mask)
        needs = ctx.needs_input_grad
        grad_x = None
        if needs[0]:
            grad_x = (grad_pre.reshape(-1, grad_pre.shape[2]) @ weight_ih).view_as(x)
        grad_weight_ih = weight_gradients(grad_pre, x, needs[2])
        grad_weight_hh = weight_gradients(grad_pre, hiddens[:-1], needs[3])
        grad_bias = grad_pre.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_bias_hh = None if grad_bias is None else grad_bias.clone()
        return (
            grad_x,
            grad_h,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias,
            grad_bias_hh,
            None,
            None,
            None,
        )


def rnn_sequence(
    x: Tensor,
    h0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """Functional form of :class:`RNNFunction`; see it for shapes."""
    return RNNFunction.apply(
        x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, recorder
    )
