"""One step of the gated recurrent unit (Cho et al. 2014) in torch's variant."""

from __future__ import annotations

import torch
from torch import Tensor

GRU_GATES = ("reset", "update", "new")


def gru_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""One GRU step, as torch.nn.GRU computes it.

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    The reset gate is applied *after* the recurrent product (torch's and cuDNN's variant,
    not the original paper's). The update gate ``z`` is the share of the old state kept.

    Arguments:
        x: ``(N, H_in)``; h: ``(N, H)``; weight_ih: ``(3H, H_in)`` and weight_hh: ``(3H, H)``
        with blocks in the order reset, update, new; bias_ih, bias_hh: ``(3H,)`` or None.

    Returns:
        ``(h_t, gates)`` with gates "reset", "update", "new", each ``(N, H)``.
    """
    from_input = x @ weight_ih.T  # (N, 3H)
    from_hidden = h @ weight_hh.T  # (N, 3H)
    if bias_ih is not None:
        from_input = from_input + bias_ih
        from_hidden = from_hidden + bias_hh
    input_reset, input_update, input_new = from_input.chunk(3, dim=1)
    hidden_reset, hidden_update, hidden_new = from_hidden.chunk(3, dim=1)
    reset = (input_reset + hidden_reset).sigmoid()
    update = (input_update + hidden_update).sigmoid()
    new = (input_new + reset * hidden_new).tanh()
    h = (1 - update) * new + update * h
    return h, {"reset": reset, "update": update, "new": new}


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
