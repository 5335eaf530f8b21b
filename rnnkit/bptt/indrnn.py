"""IndRNN forward and hand-written backward through time (relu or tanh).

The recurrence is elementwise: ``h_t = phi(a_t + u * h_{t-1})`` with ``a_t = W_ih x_t + b``
computed for all steps in one GEMM. Backward walks time in reverse with
``dL/dh_{t-1} = u * phi'(.) * dL/dh_t`` (one unit at a time, no matrix), then ends with
time-batched GEMMs for dL/dW_ih and dL/dx, and a sum over time and batch for dL/du.
"""

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


def activation_slope(h: Tensor, nonlinearity: str) -> Tensor:
    """phi'(pre) from phi's output h: relu -> [h > 0], tanh -> 1 - h^2."""
    if nonlinearity == "relu":
        return (h > 0).to(h.dtype)
    return 1 - h * h


class IndRNNFunction(torch.autograd.Function):
    """One IndRNN layer, one direction, over a whole sequence.

    Shapes: x ``(T, N, I)``, h0 ``(N, H)``, weight_ih ``(H, I)``, weight_hh ``(H,)`` (the
    per-unit u), biases ``(H,)`` or None, mask ``(T, N, 1)`` or None. Outputs: output
    ``(T, N, H)`` (zero at masked steps) and h_n.
    """

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, recorder):
        steps, batch, _ = x.shape
        bias = None if bias_ih is None else bias_ih + bias_hh
        from_input = input_projection(x, weight_ih, bias)  # (T, N, H)
        hiddens = x.new_empty(steps + 1, batch, h0.shape[1])
        hiddens[0] = h0
        activation = torch.relu if nonlinearity == "relu" else torch.tanh
        for t in range(steps):
            h = activation(torch.addcmul(from_input[t], weight_hh, hiddens[t]))
            hiddens[t + 1] = hold_finished(h, hiddens[t], None if mask is None else mask[t])
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, mask)
        ctx.has_bias, ctx.nonlinearity, ctx.recorder = bias_ih is not None, nonlinearity, recorder
        return output, hiddens[steps].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
        steps = x.shape[0]
        grad_pre = torch.empty_like(hiddens[1:])  # dL/d(pre-activation), (T, N, H)
        recorder: GradientRecorder | None = ctx.recorder
        hidden_grads = torch.empty_like(hiddens[1:]) if recorder is not None else None
        if grad_output is None:
            grad_output = torch.zeros_like(hiddens[1:])
        if mask is not None:
            grad_output = grad_output * mask
        grad_h = torch.zeros_like(hiddens[0]) if grad_h_n is None else grad_h_n.clone()
        for t in reversed(range(steps)):
            m = None if mask is None else mask[t]
            grad_h = grad_h + grad_output[t]
            if hidden_grads is not None:
                hidden_grads[t] = grad_h
            grad_h, grad_h_held = split_by_mask(grad_h, m)
            torch.mul(grad_h, activation_slope(hiddens[t + 1], ctx.nonlinearity), out=grad_pre[t])
            grad_h = grad_pre[t] * weight_hh  # one unit at a time: no matrix
            if m is not None:
                grad_h = grad_h + grad_h_held
        if hidden_grads is not None:
            recorder.store(hidden_grads, None, mask)
        needs = ctx.needs_input_grad
        grad_x = None
        if needs[0]:
            grad_x = (grad_pre.reshape(-1, grad_pre.shape[2]) @ weight_ih).view_as(x)
        grad_weight_ih = weight_gradients(grad_pre, x, needs[2])
        grad_weight_hh = (grad_pre * hiddens[:-1]).sum(dim=(0, 1)) if needs[3] else None
        grad_bias = grad_pre.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_bias_hh = None if grad_bias is None else grad_bias.clone()
        return (grad_x, grad_h, grad_weight_ih, grad_weight_hh, grad_bias, grad_bias_hh, None,
                None, None)


def indrnn_sequence(
    x: Tensor,
    h0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "relu",
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """Functional form of :class:`IndRNNFunction`; see it for shapes."""
    return IndRNNFunction.apply(
        x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, recorder
    )
