"""The binding tier: one autograd.Function per family around the C++ kernels.

``lstm_sequence``, ``gru_sequence`` and ``rnn_sequence`` here take and return exactly what
their namesakes in :mod:`rnnkit.bptt` do (time-major, one direction, optional mask and
GradientRecorder); the loops inside are C++ (``csrc/``). Inputs the kernels do not cover (a
CUDA tensor, a dtype other than float32/float64) go to the reference functions.
"""

from __future__ import annotations

from contextlib import nullcontext
from types import ModuleType, SimpleNamespace

import torch
from torch import Tensor

from rnnkit import bptt
from rnnkit.bptt.common import GradientRecorder

_extension: ModuleType | None = None
_KERNEL_DTYPES = (torch.float32, torch.float64)


def namespace(extension: ModuleType) -> SimpleNamespace:
    """What :func:`rnnkit.backends.select` hands the layers for ``backend="fused"``."""
    global _extension
    _extension = extension
    # both import this module: bound here, not on top
    from rnnkit.kernels import gru_variant_functions, variant_functions

    variant_functions.bind(extension)
    return SimpleNamespace(
        name="fused", lstm=lstm_sequence, gru=gru_sequence, rnn=rnn_sequence, extension=extension,
        lstm_variant=variant_functions.lstm_variant,
        gru_variant=gru_variant_functions.gru_variant,
        rnn_variant=gru_variant_functions.rnn_variant,
    )


def _covered(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in _KERNEL_DTYPES


def _autocast_off():
    """The kernels pick their own precision: ATen calls inside them must not be autocast."""
    if torch.is_autocast_enabled("cpu"):
        return torch.autocast("cpu", enabled=False)
    return nullcontext()


def _needs_graph(*tensors) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


def _held_output(hiddens: Tensor, mask: Tensor | None) -> Tensor:
    return hiddens[1:] if mask is None else hiddens[1:] * mask  # zero past a sequence's end


def _clone(tensor: Tensor | None, needed: bool) -> Tensor | None:
    # two parameters must never share one gradient tensor
    return tensor.clone() if tensor is not None and needed else None


class FusedLSTMFunction(torch.autograd.Function):
    """:class:`rnnkit.bptt.LSTMFunction` with its two time loops in C++ (csrc/lstm.cpp)."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, recorder):
        bias = None if bias_ih is None else bias_ih + bias_hh
        with _autocast_off():
            hiddens, cells, gates = _extension.lstm_forward(
                x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask
            )
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask)
        ctx.has_bias = bias_ih is not None
        ctx.recorder = recorder
        cells_out = cells[1:]
        ctx.mark_non_differentiable(cells_out, gates)
        steps = x.shape[0]
        h_n, c_n = hiddens[steps].clone(), cells[steps].clone()
        return _held_output(hiddens, mask), h_n, c_n, cells_out, gates

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_cells, _grad_gates):
        x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask = ctx.saved_tensors
        needs = ctx.needs_input_grad
        recorder: GradientRecorder | None = ctx.recorder
        with _autocast_off():
            grads = _extension.lstm_backward(
                grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh, weight_hr,
                hiddens, cells, gates, mask, recorder is not None, ctx.has_bias,
                [needs[0], needs[3], needs[4], needs[5] or needs[6], needs[7]],
            )
        grad_x, grad_h0, grad_c0, grad_weight_ih, grad_weight_hh, grad_bias = grads[:6]
        if recorder is not None:
            recorder.hidden_grad, recorder.cell_grad = grads[7], grads[8]
        return (
            grad_x,
            grad_h0 if needs[1] else None,
            grad_c0 if needs[2] else None,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias if needs[5] else None,
            _clone(grad_bias, needs[6]),
            grads[6],  # weight_hr
            None,
            None,
        )


class FusedGRUFunction(torch.autograd.Function):
    """:class:`rnnkit.bptt.GRUFunction` with its two time loops in C++ (csrc/gru.cpp)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder):
        with _autocast_off():
            hiddens, gates, hidden_new = _extension.gru_forward(
                x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask
            )
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask)
        ctx.has_bias = bias_ih is not None
        ctx.recorder = recorder
        ctx.mark_non_differentiable(gates)
        return _held_output(hiddens, mask), hiddens[x.shape[0]].clone(), gates

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, _grad_gates):
        x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask = ctx.saved_tensors
        needs = ctx.needs_input_grad
        recorder: GradientRecorder | None = ctx.recorder
        with _autocast_off():
            grads = _extension.gru_backward(
                grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates, hidden_new,
                mask, recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3], needs[4], needs[5]],
            )
        if recorder is not None:
            recorder.hidden_grad = grads[6]
        grad_x, grad_h0 = grads[0], grads[1] if needs[1] else None
        return (grad_x, grad_h0, *grads[2:6], None, None)


class FusedRNNFunction(torch.autograd.Function):
    """:class:`rnnkit.bptt.RNNFunction` with its two time loops in C++ (csrc/rnn.cpp)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, recorder):
        bias = None if bias_ih is None else bias_ih + bias_hh
        relu = nonlinearity == "relu"
        with _autocast_off():
            (hiddens,) = _extension.rnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, mask)
        ctx.has_bias = bias_ih is not None
        ctx.relu = relu
        ctx.recorder = recorder
        return _held_output(hiddens, mask), hiddens[x.shape[0]].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
        needs = ctx.needs_input_grad
        recorder: GradientRecorder | None = ctx.recorder
        with _autocast_off():
            grads = _extension.rnn_backward(
                grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, ctx.relu,
                recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3], needs[4] or needs[5]],
            )
        if recorder is not None:
            recorder.hidden_grad = grads[5]
        grad_bias = grads[4]
        return (
            grads[0],
            grads[1] if needs[1] else None,
            grads[2],
            grads[3],
            grad_bias if needs[4] else None,
            _clone(grad_bias, needs[5]),
            None,
            None,
            None,
        )


def lstm_sequence(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    weight_hr: Tensor | None = None,
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """:func:`rnnkit.bptt.lstm_sequence` on the fused kernel; see LSTMFunction for shapes."""
    arguments = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, recorder)
    if not _covered(x):
        return bptt.lstm_sequence(*arguments)
    if _needs_graph(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr):
        return FusedLSTMFunction.apply(*arguments)
    with torch.no_grad():  # inference: nothing to save, no graph node to build
        bias = None if bias_ih is None else bias_ih + bias_hh
        with _autocast_off():
            hiddens, cells, gates = _extension.lstm_forward(
                x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask
            )
    steps = x.shape[0]
    return _held_output(hiddens, mask), hiddens[steps], cells[steps], cells[1:], gates


def gru_sequence(
    x: Tensor,
    h0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """:func:`rnnkit.bptt.gru_sequence` on the fused kernel; see GRUFunction for shapes."""
    arguments = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder)
    if not _covered(x):
        return bptt.gru_sequence(*arguments)
    if _needs_graph(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        return FusedGRUFunction.apply(*arguments)
    with torch.no_grad(), _autocast_off():
        hiddens, gates, _ = _extension.gru_forward(
            x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask
        )
    return _held_output(hiddens, mask), hiddens[x.shape[0]], gates


def rnn_sequence(
    x: Tensor,
    h0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """:func:`rnnkit.bptt.rnn_sequence` on the fused kernel; see RNNFunction for shapes."""
    arguments = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, mask, recorder)
    if not _covered(x):
        return bptt.rnn_sequence(*arguments)
    if _needs_graph(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        return FusedRNNFunction.apply(*arguments)
    with torch.no_grad():
        bias = None if bias_ih is None else bias_ih + bias_hh
        with _autocast_off():
            (hiddens,) = _extension.rnn_forward(
                x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", mask
            )
    return _held_output(hiddens, mask), hiddens[x.shape[0]]
