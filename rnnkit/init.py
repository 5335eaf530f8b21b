"""Initialisations that decide how long a gated cell remembers at the start of training.

With torch's default init the LSTM forget gate (and the GRU update gate) starts half open, so
at initialisation memory fades by about one half per step, as in a plain RNN.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit import families


def _layer_biases(layer: nn.Module):
    family = getattr(layer, "family", None)
    if family is None:  # a torch.nn twin: its mode names the family ("RNN_TANH": the RNN)
        family = families.get(getattr(layer, "mode", type(layer).__name__).split("_")[0])
    if family.keep_gate is None:
        raise ValueError(f"{type(layer).__name__} has no forget/update gate to initialise")
    if not getattr(layer, "bias", True):
        raise ValueError(f"{type(layer).__name__} was built with bias=False: no gate bias to set")
    hidden = layer.hidden_size
    for name, parameter in layer.named_parameters():
        if name.startswith("bias_ih"):
            yield family, hidden, parameter, getattr(layer, name.replace("bias_ih", "bias_hh"))


@torch.no_grad()
def forget_bias(layer: nn.Module, value: float = 1.0) -> nn.Module:
    """Set the LSTM forget-gate bias (GRU: update-gate bias) to ``value`` in every layer.

    The value sits in ``bias_ih``; the matching block of ``bias_hh`` is zeroed, so the sum the
    gate sees is exactly ``value`` (Gers, Schmidhuber & Cummins 2000; Jozefowicz et al. 2015).
    """
    for family, hidden, bias_ih, bias_hh in _layer_biases(layer):
        block = slice(family.keep_gate * hidden, (family.keep_gate + 1) * hidden)
        bias_ih[block] = value
        bias_hh[block] = 0.0
    return layer


@torch.no_grad()
def chrono_init(layer: nn.Module, max_len: int, generator: torch.Generator | None = None):
    """Chrono initialisation (Tallec & Ollivier 2018, arXiv 1804.11188).

    LSTM: forget bias ``log(u)``, u ~ U[1, max_len - 1], and input bias its negative, so
    units start with memory time scales spread up to ``max_len`` steps. GRU: the update gate
    (the share of the old state kept) gets ``log(u)``. The ``bias_hh`` blocks are zeroed.
    """
    if max_len < 3:
        raise ValueError(f"chrono_init: `max_len` must be at least 3, got {max_len}")
    for family, hidden, bias_ih, bias_hh in _layer_biases(layer):
        keep = torch.empty(hidden, dtype=bias_ih.dtype).uniform_(
            1, max_len - 1, generator=generator
        )
        keep = keep.log().to(bias_ih.device)
        keep_block = slice(family.keep_gate * hidden, (family.keep_gate + 1) * hidden)
        bias_ih[keep_block] = keep
        bias_hh[keep_block] = 0.0
        write = family.chrono_write_gate
        if write is not None:  # the input gate opens as little as the forget gate closes
            bias_ih[write * hidden : (write + 1) * hidden] = -keep
            bias_hh[write * hidden : (write + 1) * hidden] = 0.0
    return layer
