"""The LSTM with its variants, forward and hand-written backward through time.

Options, each off by default (the plain LSTMFunction stays free of them):
- layer norm (Ba et al. 2016, arXiv 1607.06450; haste's LayerNormLSTM form):
  gates = LN_ih(W_ih x_t) + LN_hh(W_hh h_{t-1}) + b_ih + b_hh, h_t = o * tanh(LN_cell(c_t));
- peepholes (Gers & Schmidhuber 2000): i and f also see c_{t-1}, o sees c_t (``peephole``
  is ``(3H,)``, blocks input, forget, output);
- coupled gates (CIFG): i = 1 - f (the input-gate block of the weights is then unused);
- recurrent dropout (Gal & Ghahramani 2016, arXiv 1512.05287): h_{t-1} is multiplied by one
  mask per sequence, ``recurrent_mask`` ``(N, H)``, before the recurrent product;
- zoneout (Krueger et al. 2016, arXiv 1606.01305): ``zone_h``/``zone_c`` ``(T, N, H)`` hold
  the share of the previous state kept at each step (0/1 masks in training, p in eval).
"""

from __future__ import annotations

import torch

from rnnkit.bptt.common import hold_finished, split_by_mask, weight_gradients
from rnnkit.bptt.layer_norm import (
    layer_norm_backward,
    layer_norm_forward,
    layer_norm_parameter_grads,
)


class LSTMVariantFunction(torch.autograd.Function):
    """Shapes as :class:`rnnkit.bptt.LSTMFunction` (no projection), plus the options above.

    Outputs: output, h_n, c_n (differentiable); all c_t ``(T, N, H)``, gates ``(T, N, 4H)``
    and, with layer norm, the normalised pre-activations ``(T, N, 4H)`` from the input and
    from the hidden state and the normalised cell ``(T, N, H)`` (None without layer norm).
    """

    @staticmethod
    def forward(
        ctx,
        x,
        h0,
        c0,
        weight_ih,
        weight_hh,
        bias_ih,
        bias_hh,
        ln_ih_weight,
        ln_ih_bias,
        ln_hh_weight,
        ln_hh_bias,
        ln_cell_weight,
        ln_cell_bias,
        peephole,
        recurrent_mask,
        zone_h,
        zone_c,
        coupled,
        mask,
        recorder,
    ):
        steps, batch, features = x.shape
        hidden = c0.shape[1]
        layer_norm = ln_ih_weight is not None
        from_input = (x.reshape(steps * batch, features) @ weight_ih.T).view(steps, batch, -1)
        normalized_ih = rstd_ih = None
        if layer_norm:
            from_input, normalized_ih, rstd_ih = layer_norm_forward(
                from_input, ln_ih_weight, ln_ih_bias
            )
        if bias_ih is not None:
            from_input = from_input + (bias_ih + bias_hh)
        hiddens = x.new_empty(steps + 1, batch, hidden)
        cells = x.new_empty(steps + 1, batch, hidden)
        new_cells = x.new_empty(steps, batch, hidden)  # c before zoneout: what h is read from
        gates = x.new_empty(steps, batch, 4 * hidden)
        if layer_norm:
            normalized_hh = x.new_empty(steps, batch, 4 * hidden)
            rstd_hh = x.new_empty(steps, batch, 1)
            normalized_cell = x.new_empty(steps, batch, hidden)
            rstd_cell = x.new_empty(steps, batch, 1)
        hiddens[0] = h0
        cells[0] = c0
        if peephole is not None:
            peep_input, peep_forget, peep_output = peephole.chunk(3)
        for t in range(steps):
            h_prev, c_prev = hiddens[t], cells[t]
            recurrent_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
            from_hidden = recurrent_in @ weight_hh.T  # (N, 4H)
            if layer_norm:
                from_hidden, normalized_hh[t], rstd_hh[t] = layer_norm_forward(
                    from_hidden, ln_hh_weight, ln_hh_bias
                )
            pre_input, pre_forget, pre_cell, pre_output = (from_input[t] + from_hidden).chunk(4, 1)
            if peephole is not None:
                pre_input = pre_input + peep_input * c_prev
                pre_forget = pre_forget + peep_forget * c_prev
            forget = pre_forget.sigmoid()
            input = 1 - forget if coupled else pre_input.sigmoid()
            cell = pre_cell.tanh()
            c_new = forget * c_prev + input * cell
            if peephole is not None:
                pre_output = pre_output + peep_output * c_new
            output = pre_output.sigmoid()
            shown = c_new
            if layer_norm:
                shown, normalized_cell[t], rstd_cell[t] = layer_norm_forward(
                    c_new, ln_cell_weight, ln_cell_bias
                )
            h_new = output * shown.tanh()
            c = c_new if zone_c is None else torch.lerp(c_new, c_prev, zone_c[t])
            h = h_new if zone_h is None else torch.lerp(h_new, h_prev, zone_h[t])
            gates[t] = torch.cat([input, forget, cell, output], dim=1)
            new_cells[t] = c_new
            m = None if mask is None else mask[t]
            cells[t + 1] = hold_finished(c, c_prev, m)
            hiddens[t + 1] = hold_finished(h, h_prev, m)
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        saved = [
            x,
            weight_ih,
            weight_hh,
            hiddens,
            cells,
            new_cells,
            gates,
            mask,
            peephole,
            recurrent_mask,
            zone_h,
            zone_c,
        ]
        if layer_norm:
            saved += [
                ln_ih_weight,
                ln_hh_weight,
                ln_cell_weight,
                ln_cell_bias,
                normalized_ih,
                rstd_ih,
                normalized_hh,
                rstd_hh,
                normalized_cell,
                rstd_cell,
            ]
        ctx.save_for_backward(*saved)
        ctx.layer_norm, ctx.coupled, ctx.recorder = layer_norm, coupled, recorder
        ctx.has_bias = bias_ih is not None
        cells_out = cells[1:].clone()
        extras = (normalized_ih, normalized_hh, normalized_cell) if layer_norm else (None,) * 3
        ctx.mark_non_differentiable(cells_out, gates, *[e for e in extras if e is not None])
        return (output, hiddens[steps].clone(), cells[steps].clone(), cells_out, gates, *extras)

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n, *_unused):
        saved = ctx.saved_tensors
        (
            x,
            weight_ih,
            weight_hh,
            hiddens,
            cells,
            new_cells,
            gates,
            mask,
            peephole,
            recurrent_mask,
            zone_h,
            zone_c,
        ) = saved[:12]
        layer_norm = ctx.layer_norm
        if layer_norm:
            (
                ln_ih_weight,
                ln_hh_weight,
                ln_cell_weight,
                ln_cell_bias,
                normalized_ih,
                rstd_ih,
                normalized_hh,
                rstd_hh,
                normalized_cell,
                rstd_cell,
            ) = saved[12:]
            grad_shown_all = torch.empty_like(new_cells)
            grad_from_hidden = torch.empty_like(gates)  # dL/d(W_hh h'), before LN_hh
        steps = x.shape[0]
        grad_pre = torch.empty_like(gates)  # dL/d(gate pre-activations), (T, N, 4H)
        if peephole is not None:
            peep_input, peep_forget, peep_output = peephole.chunk(3)
            grad_peephole = torch.zeros(3, peephole.shape[0] // 3, dtype=x.dtype, device=x.device)
        recorder = ctx.recorder
        if recorder is not None:
            hidden_grads = torch.empty_like(new_cells)
            cell_grads = torch.empty_like(new_cells)
        if mask is not None:
            grad_output = grad_output * mask
        grad_h, grad_c = grad_h_n.clone(), grad_c_n.clone()
        for t in reversed(range(steps)):
            m = None if mask is None else mask[t]
            grad_h = grad_h + grad_output[t]
            if recorder is not None:
                hidden_grads[t] = grad_h
            grad_h, grad_h_held = split_by_mask(grad_h, m)
            grad_c, grad_c_held = split_by_mask(grad_c, m)
            c_prev, c_new = cells[t], new_cells[t]
            input, forget, cell, output = gates[t].chunk(4, dim=1)
            grad_h_prev = grad_c_prev = 0
            if zone_h is not None:
                grad_h_prev, grad_h = grad_h * zone_h[t], grad_h * (1 - zone_h[t])
            if zone_c is not None:
                if recorder is not None:  # c_t is the zoned-out cell: what reaches it from t+1
                    cell_grads[t] = grad_c
                grad_c_prev, grad_c = grad_c * zone_c[t], grad_c * (1 - zone_c[t])
            if layer_norm:
                shown = normalized_cell[t] * ln_cell_weight + ln_cell_bias
            else:
                shown = c_new
            tanh_shown = shown.tanh()
            grad_pre_output = grad_h * tanh_shown * output * (1 - output)
            grad_shown = grad_h * output * (1 - tanh_shown * tanh_shown)
            if layer_norm:
                grad_shown_all[t] = grad_shown
                grad_shown = layer_norm_backward(
                    grad_shown, normalized_cell[t], rstd_cell[t], ln_cell_weight
                )
            grad_c = grad_c + grad_shown
            if peephole is not None:
                grad_c = grad_c + grad_pre_output * peep_output
                grad_peephole[2] += (grad_pre_output * c_new).sum(0)
            if recorder is not None and zone_c is None:  # c_t = the new cell, h_t reads it
                cell_grads[t] = grad_c
            grad_forget = grad_c * c_prev
            grad_input = grad_c * cell
            if ctx.coupled:
                grad_forget = grad_forget - grad_input
                grad_pre_input = torch.zeros_like(grad_input)
            else:
                grad_pre_input = grad_input * input * (1 - input)
            grad_pre_forget = grad_forget * forget * (1 - forget)
            grad_pre_cell = grad_c * input * (1 - cell * cell)
            grad_pre[t] = torch.cat(
                [grad_pre_input, grad_pre_forget, grad_pre_cell, grad_pre_output], dim=1
            )
            grad_c = grad_c * forget + grad_c_prev
            if peephole is not None:
                grad_c = grad_c + grad_pre_input * peep_input + grad_pre_forget * peep_forget
                grad_peephole[0] += (grad_pre_input * c_prev).sum(0)
                grad_peephole[1] += (grad_pre_forget * c_prev).sum(0)
            grad_recurrent = grad_pre[t]
            if layer_norm:
                grad_recurrent = layer_norm_backward(
                    grad_recurrent, normalized_hh[t], rstd_hh[t], ln_hh_weight
                )
                grad_from_hidden[t] = grad_recurrent
            grad_h = grad_recurrent @ weight_hh  # (N, 4H) @ (4H, H)
            if recurrent_mask is not None:
                grad_h = grad_h * recurrent_mask
            grad_h = grad_h + grad_h_prev
            if m is not None:
                grad_h, grad_c = grad_h + grad_h_held, grad_c + grad_c_held
        if recorder is not None:
            recorder.store(hidden_grads, cell_grads, mask)
        needs = ctx.needs_input_grad
        recurrent_inputs = hiddens[:-1] if recurrent_mask is None else hiddens[:-1] * recurrent_mask
        ln_grads = [None] * 6
        if layer_norm:
            grad_from_input = layer_norm_backward(grad_pre, normalized_ih, rstd_ih, ln_ih_weight)
            ln_grads = [
                *layer_norm_parameter_grads(grad_pre, normalized_ih),
                *layer_norm_parameter_grads(grad_pre, normalized_hh),
                *layer_norm_parameter_grads(grad_shown_all, normalized_cell),
            ]
            grad_weight_hh = weight_gradients(grad_from_hidden, recurrent_inputs, needs[4])
        else:
            grad_from_input = grad_pre
            grad_weight_hh = weight_gradients(grad_pre, recurrent_inputs, needs[4])
        grad_x = None
        if needs[0]:
            grad_x = (grad_from_input.reshape(-1, grad_pre.shape[2]) @ weight_ih).view_as(x)
        grad_weight_ih = weight_gradients(grad_from_input, x, needs[3])
        grad_bias = grad_pre.sum(dim=(0, 1)) if ctx.has_bias else None
        grad_bias_hh = None if grad_bias is None else grad_bias.clone()
        grad_peep = None if peephole is None else grad_peephole.reshape(-1)
        return (
            grad_x,
            grad_h,
            grad_c,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias,
            grad_bias_hh,
            *ln_grads,
            grad_peep,
            None,
            None,
            None,
            None,
            None,
            None,
        )
