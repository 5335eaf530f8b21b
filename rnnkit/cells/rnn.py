"""One step of the vanilla (Elman) recurrent network, with tanh or relu, and rnnkit's variants:
recurrent dropout and zoneout."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.common import zoneout

NONLINEARITIES = ("tanh", "relu")


def rnn_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
    *,
    recurrent_mask: Tensor | None = None,
    zoneout_hidden: Tensor | float | None = None,
) -> Tensor:
    r"""One vanilla RNN step: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    The same weights at every step; nothing gates the memory, so the error signal travelling
    back through time is multiplied by ``W_hh^T diag(phi')`` at each step and fades (or
    explodes) geometrically.

    The variants (keyword-only; their defaults give the step above exactly): recurrent dropout
    (Gal & Ghahramani 2016, arXiv 1512.05287) replaces :math:`h_{t-1}` in the recurrent product
    by :math:`h_{t-1} \odot m`, ``recurrent_mask`` m ``(N, H)`` (one per sequence, scaled by
    1/(1-p)); zoneout (Krueger et al. 2016, arXiv 1606.01305) then keeps a share
    ``zoneout_hidden`` :math:`k_t` of the previous state,
    :math:`h_t \leftarrow k_t \odot h_{t-1} + (1 - k_t) \odot h_t` (0/1 per unit in training,
    p in eval).

    Arguments:
        x: ``(N, H_in)``; h: ``(N, H)``; weight_ih: ``(H, H_in)``; weight_hh: ``(H, H)``;
        bias_ih, bias_hh: ``(H,)`` or None; nonlinearity: "tanh" or "relu";
        recurrent_mask: ``(N, H)`` or None; zoneout_hidden: ``(N, H)``, a number, or None.

    Returns:
        ``h_t`` of shape ``(N, H)``.
    """
    recurrent_input = h if recurrent_mask is None else h * recurrent_mask
    pre_activation = x @ weight_ih.T + recurrent_input @ weight_hh.T
    if bias_ih is not None:
        pre_activation = pre_activation + bias_ih + bias_hh
    if nonlinearity == "tanh":
        h_new = pre_activation.tanh()
    elif nonlinearity == "relu":
        h_new = pre_activation.relu()
    else:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    return zoneout(h_new, h, zoneout_hidden)


def rnn_reference_loop(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """Run :func:`rnn_cell` over ``x`` of shape ``(T, N, H_in)``; returns ``(outputs, h_T)``."""
    outputs = []
    for x_t in x:
        h = rnn_cell(x_t, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity)
        outputs.append(h)
    return torch.stack(outputs), h
