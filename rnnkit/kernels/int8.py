"""The int8 inference operators' Python half (``csrc/int8.cpp``): their fakes, so torch.compile
and torch.export trace a quantized layer, and which kernel ran.

``rnnkit::int8_linear`` and ``rnnkit::int8_forward`` take int8 weight rows with per-row float32
scales and row sums (:mod:`rnnkit.quantization` makes them) and quantize the activations per
row on the fly; the products run on AVX512-VNNI (``vpdpbusd``) where the CPU has it and
``RNNKIT_NO_VNNI`` is unset or "0", else on a plain C++ loop with the same numbers. They have no
backward: a quantized layer is for inference only.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from rnnkit.kernels.loader import load_functions

CELLS = {"LSTM": 0, "GRU": 1, "RNN_TANH": 2, "RNN_RELU": 3}
_registered = False


def _fake_linear(x, weight, scale, rowsum):
    return x.new_empty((x.shape[0], weight.shape[0]))


def _fake_forward(x, h0, c0, weight_ih, scale_ih, rowsum_ih, weight_hh, scale_hh, rowsum_hh,
                  bias_ih, bias_hh, weight_hr, cell, mask):
    hiddens = x.new_empty((x.shape[0] + 1, x.shape[1], h0.shape[1]))
    cells = None if c0 is None else x.new_empty(c0.shape)
    return hiddens, cells


def available() -> bool:
    """Whether the int8 operators are loaded (the fused kernels built), registering their fakes
    on the first call."""
    global _registered
    if load_functions() is None:
        return False
    if not _registered:
        torch.library.register_fake("rnnkit::int8_linear")(_fake_linear)
        torch.library.register_fake("rnnkit::int8_forward")(_fake_forward)
        _registered = True
    return True


def vnni_available() -> bool:
    """Whether this CPU has AVX512-VNNI (and AVX512-BW), whatever ``RNNKIT_NO_VNNI`` says."""
    return available() and bool(torch.ops.rnnkit.int8_vnni_available())


def vnni_enabled() -> bool:
    """Whether ``RNNKIT_NO_VNNI`` leaves the VNNI kernel on (unset, empty or "0")."""
    return os.environ.get("RNNKIT_NO_VNNI", "") in ("", "0")


def kernel_name() -> str:
    """Which kernel an int8 layer runs here, in words."""
    if not available():
        return "torch ops (the fused kernels are not built)"
    if not vnni_available():
        return "the plain int8 loop (this CPU has no AVX512-VNNI)"
    if not vnni_enabled():
        return "the plain int8 loop (RNNKIT_NO_VNNI is set)"
    return "AVX512-VNNI"


def calls() -> tuple[int, int]:
    """(VNNI calls, plain-loop calls) of the int8 operators since the library loaded."""
    vnni, plain = torch.ops.rnnkit.int8_calls()
    return int(vnni), int(plain)


def linear(x: Tensor, weight: Tensor, scale: Tensor, rowsum: Tensor) -> Tensor:
    """``x [N, K]`` (float32) times the int8 ``weight [M, K]`` dequantized: ``[N, M]``."""
    return torch.ops.rnnkit.int8_linear(x, weight, scale, rowsum)


def forward(x, h0, c0, weight_ih, scale_ih, rowsum_ih, weight_hh, scale_hh, rowsum_hh, bias_ih,
            bias_hh, weight_hr, cell: str, mask):
    """One layer, one direction over ``x [T, N, I]``: (hiddens [T+1, N, P] with h_0 first,
    c_T or None)."""
    return torch.ops.rnnkit.int8_forward(x, h0, c0, weight_ih, scale_ih, rowsum_ih, weight_hh,
                                         scale_hh, rowsum_hh, bias_ih, bias_hh, weight_hr,
                                         CELLS[cell], mask)
