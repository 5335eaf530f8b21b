"""The GRU with its variants, forward and hand-written backward.

GRU options: layer norm on the two pre-activation blocks, ``LN_ih(W_ih x) + b_ih`` and
``LN_hh(W_hh h') + b_hh`` (each over all 3H); recurrent dropout (h' = h_{t-1} * mask, one
mask per sequence, inside the recurrent product only); zoneout on h. Masks as in
:mod:`rnnkit.bptt.lstm_variants`.
"""

from __future__ import annotations

import torch

from rnnkit.bptt.common import hold_finished, split_by_mask, weight_gradients
from rnnkit.bptt.layer_norm import (
    layer_norm_backward,
    layer_norm_forward,
    layer_norm_parameter_grads,
)


class GRUVariantFunction(torch.autograd.Function):
    """Shapes as :class:`rnnkit.bptt.GRUFunction`, plus LN gains/biases ``(3H,)``, a
    recurrent mask ``(N, H)`` and zoneout ``(T, N, H)``. Outputs: output, h_n; gates
    ``(T, N, 3H)``; with layer norm the normalised pre-activations from input and hidden.
    """

    @staticmethod
    def forward(
        ctx,
        x,
        h0,
        weight_ih,
        weight_hh,
        bias_ih,
        bias_hh,
        ln_ih_weight,
        ln_ih_bias,
        ln_hh_weight,
        ln_hh_bias,
        recurrent_mask,
        zone_h,
        mask,
        recorder,
    ):
        steps, batch, features = x.shape
        hidden = h0.shape[1]
        layer_norm = ln_ih_weight is not None
        from_input = (x.reshape(steps * batch, features) @ weight_ih.T).view(steps, batch, -1)
        normalized_ih = rstd_ih = normalized_hh = rstd_hh = None
        if layer_norm:
            from_input, normalized_ih, rstd_ih = layer_norm_forward(
                from_input, ln_ih_weight, ln_ih_bias
            )
            normalized_hh = x.new_empty(steps, batch, 3 * hidden)
            rstd_hh = x.new_empty(steps, batch, 1)
        if bias_ih is not None:
            from_input = from_input + bias_ih
        hiddens = x.new_empty(steps + 1, batch, hidden)
        gates = x.new_empty(steps, batch, 3 * hidden)
        hidden_new = x.new_empty(steps, batch, hidden)  # the block the reset gate multiplies
        hiddens[0] = h0
        for t in range(steps):
            h_prev = hiddens[t]
            recurrent_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
            from_hidden = recurrent_in @ weight_hh.T  # (N, 3H)
            if layer_norm:
                from_hidden, normalized_hh[t], rstd_hh[t] = layer_norm_forward(
                    from_hidden, ln_hh_weight, ln_hh_bias
                )
            if bias_hh is not None:
                from_hidden = from_hidden + bias_hh
            input_reset, input_update, input_new = from_input[t].chunk(3, dim=1)
            hidden_reset, hidden_update, hidden_new[t] = from_hidden.chunk(3, dim=1)
            reset = (input_reset + hidden_reset).sigmoid()
            update = (input_update + hidden_update).sigmoid()
            new = (input_new + reset * hidden_new[t]).tanh()
            h = torch.lerp(new, h_prev, update)  # (1 - z) n + z h
            if zone_h is not None:
                h = torch.lerp(h, h_prev, zone_h[t])
            gates[t] = torch.cat([reset, update, new], dim=1)
            hiddens[t + 1] = hold_finished(h, h_prev, None if mask is None else mask[t])
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        ctx.save_for_backward(
            x,
            weight_ih,
            weight_hh,
            hiddens,
            gates,
            hidden_new,
            recurrent_mask,
            zone_h,
            mask,
            ln_ih_weight,
            ln_hh_weight,
            normalized_ih,
            rstd_ih,
            normalized_hh,
            rstd_hh,
        )
        ctx.has_bias, ctx.layer_norm, ctx.recorder = bias_ih is not None, layer_norm, recorder
        extras = (normalized_ih, normalized_hh)
        ctx.mark_non_differentiable(gates, *[e for e in extras if e is not None])
        return output, hiddens[steps].clone(), gates, *extras

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, *_unused):
        (
            x,
            weight_ih,
            weight_hh,
            hiddens,
            gates,
            hidden_new,
            recurrent_mask,
            zone_h,
            mask,
            ln_ih_weight,
            ln_hh_weight,
            normalized_ih,
            rstd_ih,
            normalized_hh,
            rstd_hh,
        ) = ctx.saved_tensors
        steps = x.shape[0]
        hidden = hiddens.shape[2]
        grad_from_input = torch.empty_like(gates)  # dL/d(LN_ih(W_ih x) + b_ih)
        grad_from_hidden = torch.empty_like(gates)  # dL/d(LN_hh(W_hh h') + b_hh)
        grad_product = torch.empty_like(gates) if ctx.layer_norm else grad_from_hidden
        recorder = ctx.recorder
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
            h_prev = hiddens[t]
            grad_h_prev = 0
            if zone_h is not None:
                grad_h_prev, grad_h = grad_h * zone_h[t], grad_h * (1 - zone_h[t])
            reset, update, new = gates[t].chunk(3, dim=1)
            grad_pre_new = grad_h * (1 - update) * (1 - new * new)
            grad_pre_update = grad_h * (h_prev - new) * update * (1 - update)
            grad_pre_reset = grad_pre_new * hidden_new[t] * reset * (1 - reset)
            grad_from_input[t] = torch.cat([grad_pre_reset, grad_pre_update, grad_pre_new], dim=1)
            grad_from_hidden[t] = torch.cat(
                [grad_pre_reset, grad_pre_update, grad_pre_new * reset], dim=1
            )
            grad_recurrent = grad_from_hidden[t]
            if ctx.layer_norm:
                grad_recurrent = layer_norm_backward(
                    grad_recurrent, normalized_hh[t], rstd_hh[t], ln_hh_weight
                )
                grad_product[t] = grad_recurrent
            grad_in = grad_recurrent @ weight_hh  # (N, 3H) @ (3H, H)
            if recurrent_mask is not None:
                grad_in = grad_in * recurrent_mask
            grad_h = grad_in + grad_h * update + grad_h_prev
            if m is not None:
                grad_h = grad_h + grad_h_held
        if hidden_grads is not None:
            recorder.store(hidden_grads, None, mask)
        needs = ctx.needs_input_grad
        recurrent_inputs = hiddens[:-1] if recurrent_mask is None else hiddens[:-1] * recurrent_mask
        ln_grads = [None] * 4
        grad_input_product = grad_from_input
        if ctx.layer_norm:
            grad_input_product = layer_norm_backward(
                grad_from_input, normalized_ih, rstd_ih, ln_ih_weight
            )
            ln_grads = [
                *layer_norm_parameter_grads(grad_from_input, normalized_ih),
                *layer_norm_parameter_grads(grad_from_hidden, normalized_hh),
            ]
        grad_x = None
        if needs[0]:
            grad_x = (grad_input_product.reshape(-1, 3 * hidden) @ weight_ih).view_as(x)
        grad_weight_ih = weight_gradients(grad_input_product, x, needs[2])
        grad_weight_hh = weight_gradients(grad_product, recurrent_inputs, needs[3])
        grad_bias_ih = grad_from_input.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_bias_hh = grad_from_hidden.sum(dim=(0, 1)) if ctx.has_bias else None
        return (
            grad_x,
            grad_h,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias_ih,
            grad_bias_hh,
            *ln_grads,
            None,
            None,
            None,
            None,
        )
