"""bfloat16 on the fused kernels, as oneDNN's bf16 RNN does it.

A layer on the fused backend runs in bf16 mode when ``torch.autocast("cpu",
dtype=torch.bfloat16)`` is on, or when its parameters are bfloat16 tensors (``layer.bfloat16()``)
outside autocast. Then its GEMMs -- the input projection, the recurrent h_{t-1} @ W_hh^T, and in
the backward dL/dh_{t-1} = dG @ W_hh, dx = dG @ W_ih and the weight gradients -- run on
rnnkit's own AVX512-BF16 kernel (``csrc/bf16_gemm.cpp``, ``vdpbf16ps``): both operands rounded
to bfloat16 (the weights packed once per call), the products summed in float32. Everything
else -- the gate nonlinearities, c_t, h_t, the bias, the layer norms of the variants, every
gradient and the weights' gradients -- stays float32.

The result's dtype follows torch.nn under the same conditions: under CPU autocast torch.nn.LSTM
and torch.nn.RNN return bfloat16 (output and final states) and torch.nn.GRU float32 (torch's
autocast lists ``gru_cell`` among the float32 ops); a layer whose parameters are bfloat16
returns bfloat16. An input in another dtype than the parameters is accepted under autocast (as
torch.nn does) and computed as described. Internals (``return_internals=True``) stay float32.

The kernel is experimental and off unless ``RNNKIT_BF16=1`` is set: on this project's CPU it
runs slower than the float32 kernels. (Its layer-norm variants are not wrong, as issue 15 first
had it: every step equals a float64 emulation of the same rounding, and the layer-norm LSTM's
distance from float32 over a long sequence is the layer's own sensitivity to a 2^-9 rounding,
which the float32 kernels on bf16-rounded weights show as much; tests/test_bf16.py.) Without
it, without AVX512-BF16 on this CPU, or with ``RNNKIT_NO_BF16=1`` in the environment, the same
calls run the float32 kernels (inputs and bf16 weights widened to float32), with the same
result dtypes. The reference backend, and traced code (torch.compile, torch.export), are left
to torch's own autocast.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import torch
from torch import Tensor

NO_BF16_VARIABLE = "RNNKIT_NO_BF16"
# the kernel runs only when asked: measured on this project's CPU it is slower than the float32
# kernels (0.6-0.9x, benchmarks/results/bf16.json); issue 15
BF16_VARIABLE = "RNNKIT_BF16"
# torch.nn's result dtype under CPU autocast, by family (torch's autocast op lists: lstm and
# rnn_tanh / rnn_relu run in the lower precision, gru_cell in float32)
_AUTOCAST_RESULT = {"GRU": torch.float32}
_cpu_has_bf16: bool | None = None


def autocast_bf16() -> bool:
    """Whether ``torch.autocast("cpu", dtype=torch.bfloat16)`` is on in this thread."""
    return (torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def kernel_available() -> tuple[bool, str]:
    """(whether the bf16 kernel can run here, why not): asked for with ``RNNKIT_BF16=1``, the
    fused operators loaded, the CPU has AVX512-BF16, and ``RNNKIT_NO_BF16`` is not set."""
    if os.environ.get(NO_BF16_VARIABLE, "") not in ("", "0"):
        return False, f"{NO_BF16_VARIABLE} is set"
    if os.environ.get(BF16_VARIABLE, "") in ("", "0"):
        return False, f"off unless {BF16_VARIABLE}=1 (experimental: slower than float32 here)"
    from rnnkit.kernels import loader

    global _cpu_has_bf16
    if loader.load_functions() is None:
        return False, "the fused kernels are not available"
    if _cpu_has_bf16 is None:  # the CPU does not change: one operator call a process
        _cpu_has_bf16 = bool(torch.ops.rnnkit.cpu_has_avx512_bf16())
    if not _cpu_has_bf16:
        return False, "this CPU has no AVX512-BF16"
    return True, ""


class Plan(NamedTuple):
    """How a layer's forward runs in bf16 mode."""

    kernel: bool  # the bf16 GEMMs (False: the float32 kernels, the fallback)
    result: torch.dtype  # the dtype of the output and the final states

    def weights(self, weights: dict[str, Tensor | None]) -> dict[str, Tensor | None]:
        """The kernels take float32: bf16 parameters widened (autograd carries their gradient
        back, float32 until it reaches the bf16 parameter)."""
        return {name: None if w is None else (w.float() if w.dtype == torch.bfloat16 else w)
                for name, w in weights.items()}

    @contextlib.contextmanager
    def scope(self):
        """The kernels' calls in bf16 mode (when ``kernel``), torch's autocast off around them
        (every tensor handed to the kernels stays float32)."""
        from rnnkit.kernels import ops

        with torch.autocast("cpu", enabled=False), ops.bf16_matmul(self.kernel):
            yield


def plan(layer, x: Tensor, functions) -> Plan | None:
    """The bf16 plan of ``layer``'s forward on ``x``, or None when it runs as before (not
    autocast to bf16 and float parameters, the reference backend, a non-CPU tensor)."""
    if functions.name != "fused" or x.device.type != "cpu":
        return None
    if torch.compiler.is_compiling() or torch.jit.is_tracing():  # left to torch's autocast
        return None
    if layer.weight_ih_l0.dtype == torch.int8:  # rnnkit.quantize: its own int8 kernels
        return None
    autocast = autocast_bf16()
    parameters_bf16 = layer.weight_ih_l0.dtype == torch.bfloat16
    if not autocast and not parameters_bf16:
        return None
    if autocast:
        result = _AUTOCAST_RESULT.get(layer.family.name, torch.bfloat16)
    else:
        result = torch.bfloat16
    return Plan(kernel_available()[0], result)


def matched(tensor, dtype: torch.dtype):
    """Under autocast, a floating input or state in another dtype than the parameters, cast to
    theirs (torch.nn accepts it there); anything else as it is."""
    if isinstance(tensor, Tensor):
        return tensor.to(dtype) if tensor.is_floating_point() and tensor.dtype != dtype else tensor
    if isinstance(tensor, torch.nn.utils.rnn.PackedSequence):  # a tuple too: first
        return tensor._replace(data=matched(tensor.data, dtype))
    if isinstance(tensor, (tuple, list)):
        return type(tensor)(matched(item, dtype) for item in tensor)
    return tensor


def widened(tensor: Tensor | None) -> Tensor | None:
    """A tensor for the kernels: float32 (a bf16 one widened); None stays None."""
    return tensor.float() if tensor is not None and tensor.dtype == torch.bfloat16 else tensor


def bf16_matmul_calls() -> int:
    """How many times the bf16 microkernel ran in this process (0 before the kernels load)."""
    from rnnkit.kernels import loader

    if loader.load_functions() is None:
        return 0
    return int(torch.ops.rnnkit.bf16_matmul_calls())
