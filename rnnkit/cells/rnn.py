"""One step of the vanilla (Elman) recurrent network, with tanh or relu."""

from __future__ import annotations

import torch
from torch import Tensor

NONLINEARITIES = ("tanh", "relu")


def rnn_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> Tensor:
    r"""One vanilla RNN step: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    The same weights at every step; nothing gates the memory, so the error signal travelling
    back through time is multiplied by ``W_hh^T diag(phi')`` at each step and fades (or
    explodes) geometrically.

    Arguments:
        x: ``(N, H_in)``; h: ``(N, H)``; weight_ih: ``(H, H_in)``; weight_hh: ``(H, H)``;
        bias_ih, bias_hh: ``(H,)`` or None; nonlinearity: "tanh" or "relu".

    Returns:
        ``h_t`` of shape ``(N, H)``.
    """
    pre_activation = x @ weight_ih.T + h @ weight_hh.T
    if bias_ih is not None:
        pre_activation = pre_activation + bias_ih + bias_hh
    if nonlinearity == "tanh":
        return pre_activation.tanh()
    if nonlinearity == "relu":
        return pre_activation.relu()
    raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")


def rnn_reference_loop(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """Run :func:`rnn_cell` over ``x`` of shape ``(T, N, H_in)``; returns ``(outputs, h_T)``."""
    outputs = []
    for x_t in x:
        h = rnn_cell(x_t, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity)
        outputs.append(h)
    return torch.stack(outputs), h
