"""The vanilla RNN with its variants, forward and hand-written backward: recurrent dropout
(h' = h_{t-1} * mask, one mask per sequence, inside the recurrent product only) and zoneout on h.
Masks as in :mod:`rnnkit.bptt.lstm_variants`.
"""

from __future__ import annotations

import torch

from rnnkit.bptt.common import hold_finished, split_by_mask, weight_gradients


class RNNVariantFunction(torch.autograd.Function):
    """The vanilla RNN with recurrent dropout and zoneout; outputs: output, h_n."""

    @staticmethod
    def forward(
        ctx,
        x,
        h0,
        weight_ih,
        weight_hh,
        bias_ih,
        bias_hh,
        nonlinearity,
        recurrent_mask,
        zone_h,
        mask,
        recorder,
    ):
        steps, batch, features = x.shape
        from_input = (x.reshape(steps * batch, features) @ weight_ih.T).view(steps, batch, -1)
        if bias_ih is not None:
            from_input = from_input + (bias_ih + bias_hh)
        activation = torch.tanh if nonlinearity == "tanh" else torch.relu
        hiddens = x.new_empty(steps + 1, batch, h0.shape[1])
        new_hiddens = x.new_empty(steps, batch, h0.shape[1])  # before zoneout
        hiddens[0] = h0
        for t in range(steps):
            h_prev = hiddens[t]
            recurrent_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
            new_hiddens[t] = activation(torch.addmm(from_input[t], recurrent_in, weight_hh.T))
            h = new_hiddens[t] if zone_h is None else torch.lerp(new_hiddens[t], h_prev, zone_h[t])
            hiddens[t + 1] = hold_finished(h, h_prev, None if mask is None else mask[t])
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        ctx.save_for_backward(
            x, weight_ih, weight_hh, hiddens, new_hiddens, recurrent_mask, zone_h, mask
        )
        ctx.has_bias, ctx.nonlinearity, ctx.recorder = bias_ih is not None, nonlinearity, recorder
        return output, hiddens[steps].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, weight_ih, weight_hh, hiddens, new_hiddens, recurrent_mask, zone_h, mask = (
            ctx.saved_tensors
        )
        steps = x.shape[0]
        grad_pre = torch.empty_like(new_hiddens)
        recorder = ctx.recorder
        hidden_grads = torch.empty_like(new_hiddens) if recorder is not None else None
        if mask is not None:
            grad_output = grad_output * mask
        grad_h = grad_h_n.clone()
        for t in reversed(range(steps)):
            m = None if mask is None else mask[t]
            grad_h = grad_h + grad_output[t]
            if hidden_grads is not None:
                hidden_grads[t] = grad_h
            grad_h, grad_h_held = split_by_mask(grad_h, m)
            grad_h_prev = 0
            if zone_h is not None:
                grad_h_prev, grad_h = grad_h * zone_h[t], grad_h * (1 - zone_h[t])
            h = new_hiddens[t]
            slope = 1 - h * h if ctx.nonlinearity == "tanh" else (h > 0).to(h.dtype)
            grad_pre[t] = grad_h * slope
            grad_in = grad_pre[t] @ weight_hh
            if recurrent_mask is not None:
                grad_in = grad_in * recurrent_mask
            grad_h = grad_in + grad_h_prev
            if m is not None:
                grad_h = grad_h + grad_h_held
        if hidden_grads is not None:
            recorder.store(hidden_grads, None, mask)
        needs = ctx.needs_input_grad
        recurrent_inputs = hiddens[:-1] if recurrent_mask is None else hiddens[:-1] * recurrent_mask
        grad_x = None
        if needs[0]:
            grad_x = (grad_pre.reshape(-1, grad_pre.shape[2]) @ weight_ih).view_as(x)
        grad_bias = grad_pre.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_bias_hh = None if grad_bias is None else grad_bias.clone()
        return (
            grad_x,
            grad_h,
            weight_gradients(grad_pre, x, needs[2]),
            weight_gradients(grad_pre, recurrent_inputs, needs[3]),
            grad_bias,
            grad_bias_hh,
            None,
            None,
            None,
            None,
            None,
        )
