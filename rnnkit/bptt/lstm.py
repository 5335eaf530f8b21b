"""LSTM forward and hand-written backward through time (with optional projection)."""

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


class LSTMFunction(torch.autograd.Function):
    """One LSTM layer, one direction, over a whole sequence.

    Shapes: x ``(T, N, I)``, h0 ``(N, P)``, c0 ``(N, H)``, weight_ih ``(4H, I)``, weight_hh
    ``(4H, P)``, biases ``(4H,)`` or None, weight_hr ``(P, H)`` or None (then P = H), mask
    ``(T, N, 1)`` of 0/1 or None. Outputs: output ``(T, N, P)`` (zero at masked steps),
    h_n ``(N, P)``, c_n ``(N, H)``, and, not differentiable, every c_t ``(T, N, H)`` and the
    post-activation gates ``(T, N, 4H)`` in the order input, forget, cell, output.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, recorder):
        steps, batch, _ = x.shape
        hidden = c0.shape[1]
        bias = None if bias_ih is None else bias_ih + bias_hh
        from_input = input_projection(x, weight_ih, bias)  # (T, N, 4H)
        hiddens = x.new_empty(steps + 1, batch, h0.shape[1])  # h_0 .. h_T
        cells = x.new_empty(steps + 1, batch, hidden)  # c_0 .. c_T
        gates = x.new_empty(steps, batch, 4 * hidden)
        hiddens[0] = h0
        cells[0] = c0
        weight_hh_t = weight_hh.T
        for t in range(steps):
            pre = torch.addmm(from_input[t], hiddens[t], weight_hh_t)  # (N, 4H)
            act = gates[t]
            torch.sigmoid(pre, out=act)
            torch.tanh(pre[:, 2 * hidden : 3 * hidden], out=act[:, 2 * hidden : 3 * hidden])
            input, forget, cell, output = act.chunk(4, dim=1)
            c = torch.addcmul(forget * cells[t], input, cell)
            h = output * c.tanh()
            if weight_hr is not None:
                h = h @ weight_hr.T
            m = None if mask is None else mask[t]
            cells[t + 1] = hold_finished(c, cells[t], m)
            hiddens[t + 1] = hold_finished(h, hiddens[t], m)
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        ctx.save_for_backward(x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask)
        ctx.has_bias = bias_ih is not None
        ctx.recorder = recorder
        ctx.mark_non_differentiable(gates)
        cells_out = cells[1:].clone()
        ctx.mark_non_differentiable(cells_out)
        return output, hiddens[steps].clone(), cells[steps].clone(), cells_out, gates

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_cells, _grad_gates):
        x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask = ctx.saved_tensors
        steps = x.shape[0]
        grad_pre = torch.empty_like(gates)  # dL/d(pre-activation gates), (T, N, 4H)
        grad_hidden_out = torch.empty_like(hiddens[1:]) if weight_hr is not None else None
        recorder: GradientRecorder | None = ctx.recorder
        record = recorder is not None
        if record:
            hidden_grads = torch.empty_like(hiddens[1:])
            cell_grads = torch.empty_like(cells[1:])
        if mask is not None:
            grad_output = grad_output * mask
        grad_h = grad_h_n.clone()
        grad_c = grad_c_n.clone()
        for t in reversed(range(steps)):
            m = None if mask is None else mask[t]
            grad_h = grad_h + grad_output[t]
            if record:
                hidden_grads[t] = grad_h
            grad_h, grad_h_held = split_by_mask(grad_h, m)
            grad_c, grad_c_held = split_by_mask(grad_c, m)
            input, forget, cell, output = gates[t].chunk(4, dim=1)
            tanh_c = cells[t + 1].tanh()
            if weight_hr is not None:
                grad_hidden_out[t] = grad_h
                grad_h = grad_h @ weight_hr  # (N, P) -> (N, H), through the projection
            grad_c = grad_c + grad_h * output * (1 - tanh_c * tanh_c)
            if record:
                cell_grads[t] = grad_c
            g = grad_pre[t]
            gi, gf, gg, go = g.chunk(4, dim=1)
            torch.mul(grad_c * cell, input * (1 - input), out=gi)
            torch.mul(grad_c * cells[t], forget * (1 - forget), out=gf)
            torch.mul(grad_c * input, 1 - cell * cell, out=gg)
            torch.mul(grad_h * tanh_c, output * (1 - output), out=go)
            grad_c = grad_c * forget
            grad_h = g @ weight_hh  # (N, 4H) @ (4H, P)
            if m is not None:
                grad_h = grad_h + grad_h_held
                grad_c = grad_c + grad_c_held
        if record:
            recorder.store(hidden_grads, cell_grads, mask)
        needs = ctx.needs_input_grad
        grad_x = None
        if needs[0]:
            grad_x = (grad_pre.reshape(-1, grad_pre.shape[2]) @ weight_ih).view_as(x)
        grad_weight_ih = weight_gradients(grad_pre, x, needs[3])
        grad_weight_hh = weight_gradients(grad_pre, hiddens[:-1], needs[4])
        grad_bias = grad_pre.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_weight_hr = None
        if weight_hr is not None and needs[7]:
            _, _, _, output = gates.chunk(4, dim=2)
            projected_from = output * cells[1:].tanh()  # (T, N, H)
            grad_weight_hr = weight_gradients(grad_hidden_out, projected_from, True)
        return (
            grad_x,
            grad_h,
            grad_c,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias,
            _copy(grad_bias),
            grad_weight_hr,
            None,
            None,
        )


def _copy(tensor: Tensor | None) -> Tensor | None:
    # two parameters must never share one gradient tensor
    return None if tensor is None else tensor.clone()


def lstm_sequence(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    weight_hr: Tensor | None = None,
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """Functional form of :class:`LSTMFunction`; see it for shapes."""
    return LSTMFunction.apply(
        x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, recorder
    )
