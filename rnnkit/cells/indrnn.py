"""One step of the independently recurrent network (IndRNN, Li et al. 2018, arXiv 1803.04831)."""

from __future__ import annotations

import torch
from torch import Tensor

INDRNN_NONLINEARITIES = ("relu", "tanh")


def indrnn_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "relu",
) -> Tensor:
    r"""One IndRNN step: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + u \odot h_{t-1} + b_{hh})`.

    Each unit sees only its own previous state, through one recurrent weight ``u_n`` (the
    vector ``weight_hh``): the units are independent in time and meet only through the next
    layer. The gradient that reaches h_t from T steps later is a product of
    ``u_n * phi'(.)`` terms, one unit at a time, so keeping ``|u_n|`` near 1 (with a relu,
    ``|u_n| <= 2 ** (1 / T)``) lets it neither vanish nor explode over thousands of steps.

    Arguments:
        x: ``(N, H_in)``; h: ``(N, H)``; weight_ih: ``(H, H_in)``; weight_hh: ``(H,)``, the
        per-unit recurrent weights u; bias_ih, bias_hh: ``(H,)`` or None; nonlinearity:
        "relu" (the paper's) or "tanh".

    Returns:
        ``h_t`` of shape ``(N, H)``.
    """
    pre_activation = x @ weight_ih.T + weight_hh * h
    if bias_ih is not None:
        pre_activation = pre_activation + bias_ih + bias_hh
    if nonlinearity == "relu":
        return pre_activation.relu()
    if nonlinearity == "tanh":
        return pre_activation.tanh()
    raise ValueError(
        f"nonlinearity must be one of {INDRNN_NONLINEARITIES}, got {nonlinearity!r}"
    )


def indrnn_reference_loop(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None,
                          nonlinearity="relu"):
    """Run :func:`indrnn_cell` over ``x`` of shape ``(T, N, H_in)``; returns ``(outputs, h_T)``."""
    outputs = []
    for x_t in x:
        h = indrnn_cell(x_t, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity)
        outputs.append(h)
    return torch.stack(outputs), h
