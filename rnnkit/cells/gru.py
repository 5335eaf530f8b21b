"""One step of the gated recurrent unit (Cho et al. 2014) in torch's variant, with rnnkit's
variants: layer norm, recurrent dropout and zoneout."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.common import layer_norm, uses_layer_norm, zoneout

GRU_GATES = ("reset", "update", "new")


def gru_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    *,
    ln_ih_weight: Tensor | None = None,
    ln_ih_bias: Tensor | None = None,
    ln_hh_weight: Tensor | None = None,
    ln_hh_bias: Tensor | None = None,
    recurrent_mask: Tensor | None = None,
    zoneout_hidden: Tensor | float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""One GRU step, as torch.nn.GRU computes it.

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    The reset gate is applied *after* the recurrent product (torch's and cuDNN's variant,
    not the original paper's). The update gate ``z`` is the share of the old state kept.

    The variants (keyword-only; their defaults give the step above exactly):

    - recurrent dropout (Gal & Ghahramani 2016, arXiv 1512.05287): the recurrent product
      reads :math:`h'_{t-1} = h_{t-1} \odot m` with ``recurrent_mask`` m ``(N, H)`` (one mask
      per sequence, scaled by 1/(1-p)); the update :math:`z_t \odot h_{t-1}` reads the
      unmasked state.
    - layer norm (Ba et al. 2016, arXiv 1607.06450) on each product over all 3H
      pre-activations, before its bias, with :func:`rnnkit.cells.common.layer_norm`: the
      blocks above become those of :math:`\mathrm{LN}_{ih}(W_{ih} x_t) + b_{ih}` and
      :math:`\mathrm{LN}_{hh}(W_{hh} h'_{t-1}) + b_{hh}` (so the reset gate multiplies the
      normalised new-block of the recurrent product plus :math:`b_{hn}`).
    - zoneout (Krueger et al. 2016, arXiv 1606.01305), ``zoneout_hidden`` :math:`k_t` (this
      step's 0/1 mask ``(N, H)`` in training, p in eval): after the step above,
      :math:`h_t \leftarrow k_t \odot h_{t-1} + (1 - k_t) \odot h_t`.

    Arguments:
        x: ``(N, H_in)``; h: ``(N, H)``; weight_ih: ``(3H, H_in)`` and weight_hh: ``(3H, H)``
        with blocks in the order reset, update, new; bias_ih, bias_hh: ``(3H,)`` or None;
        ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias: ``(3H,)``, all four or none;
        recurrent_mask: ``(N, H)`` or None; zoneout_hidden: ``(N, H)``, a number, or None.

    Returns:
        ``(h_t, gates)`` with gates "reset", "update", "new", each ``(N, H)``; with layer norm
        also "normalized_ih" and "normalized_hh" ``(N, 3H)``, before gain and bias.
    """
    use_layer_norm = uses_layer_norm(ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias)
    recurrent_input = h if recurrent_mask is None else h * recurrent_mask
    from_input = x @ weight_ih.T  # (N, 3H)
    from_hidden = recurrent_input @ weight_hh.T  # (N, 3H)
    normalized = {}
    if use_layer_norm:
        from_input, normalized["normalized_ih"] = layer_norm(from_input, ln_ih_weight, ln_ih_bias)
        from_hidden, normalized["normalized_hh"] = layer_norm(
            from_hidden, ln_hh_weight, ln_hh_bias
        )
    if bias_ih is not None:
        from_input = from_input + bias_ih
        from_hidden = from_hidden + bias_hh
    input_reset, input_update, input_new = from_input.chunk(3, dim=-1)
    hidden_reset, hidden_update, hidden_new = from_hidden.chunk(3, dim=-1)
    reset = (input_reset + hidden_reset).sigmoid()
    update = (input_update + hidden_update).sigmoid()
    new = (input_new + reset * hidden_new).tanh()
    h_new = (1 - update) * new + update * h
    h_new = zoneout(h_new, h, zoneout_hidden)
    return h_new, {"reset": reset, "update": update, "new": new, **normalized}


def gru_reference_loop(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """Run :func:`gru_cell` over ``x`` of shape ``(T, N, H_in)``; autograd does the backward.

    Returns ``(outputs (T, N, H), h_T, gates {name: (T, N, H)})``.
    """
    outputs, gates = [], {name: [] for name in GRU_GATES}
    for x_t in x:
        h, step_gates = gru_cell(x_t, h, weight_ih, weight_hh, bias_ih, bias_hh)
        outputs.append(h)
        for name in GRU_GATES:
            gates[name].append(step_gates[name])
    return torch.stack(outputs), h, {name: torch.stack(v) for name, v in gates.items()}
