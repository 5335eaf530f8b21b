"""The sequence functions of the fused backend, on the ``torch.ops.rnnkit`` operators.

``lstm_sequence``, ``gru_sequence`` and ``rnn_sequence`` here take and return exactly what
their namesakes in :mod:`rnnkit.bptt` do (time-major, one direction, optional mask and
GradientRecorder); the loops inside are C++ (``csrc/``), reached as operators that torch.compile,
torch.export and torch.jit.trace see through (their fakes and autograd: :mod:`.ops`). Inputs the
kernels do not cover (a CUDA tensor, a dtype other than float32/float64) go to the reference
functions.

The GradientRecorder (``return_internals=True``'s dL/dh_t and dL/dc_t) is filled in eager mode
only: under torch.compile / torch.export the operators run without it and those stay None.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor

from rnnkit import bptt
from rnnkit.bptt.common import GradientRecorder
from rnnkit.kernels import gru_variant_functions, ops, variant_functions
from rnnkit.kernels.ops import (
    GRUBuffers,
    GRUGrads,
    LSTMBuffers,
    LSTMGrads,
    RNNGrads,
    combined_bias,
    covered,
    held_output,
)

_NAMESPACE: SimpleNamespace | None = None
_BELOW_AUTOGRAD = ops._BELOW_AUTOGRAD


def _eager_graph(*tensors) -> bool:
    """An eager call that builds a graph goes to the per-family Functions below, which hand out
    the layer's outputs themselves and feed their gradients straight to the backward operator
    (no autograd nodes for slicing the buffers, summing the biases or gathering the gradients)."""
    return ops.eager_graph(tensors)


def _clone(tensor: Tensor | None, needed: bool) -> Tensor | None:
    # two parameters must never share one gradient tensor
    return tensor.clone() if tensor is not None and needed else None


class EagerLSTMFunction(torch.autograd.Function):
    """Eager LSTM node: ``rnnkit::lstm_forward`` in, (output, h_n, c_n, all c_t, gates) out;
    backward ``rnnkit::lstm_backward`` on dL/d(output), dL/dh_n and dL/dc_n."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, recorder):
        bias = combined_bias(bias_ih, bias_hh)
        with _BELOW_AUTOGRAD():
            buffers = LSTMBuffers(*ops.kernels.lstm_forward(
                x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, weight_hr, buffers.hiddens, buffers.cells,
                              buffers.gates, mask)
        ctx.has_bias, ctx.recorder = bias_ih is not None, recorder
        cells_out = buffers.cells[1:]
        ctx.mark_non_differentiable(cells_out, buffers.gates)
        steps = x.shape[0]
        return (held_output(buffers.hiddens, mask), buffers.hiddens[steps].clone(),
                buffers.cells[steps].clone(), cells_out, buffers.gates)

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_cells, _grad_gates):
        x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask = ctx.saved_tensors
        needs, recorder = ctx.needs_input_grad, ctx.recorder
        with _BELOW_AUTOGRAD():
            grads = LSTMGrads(*ops.kernels.lstm_backward(
                grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh, weight_hr, hiddens,
                cells, gates, mask, recorder is not None, ctx.has_bias,
                [needs[0], needs[3], needs[4], needs[5] or needs[6], needs[7]]))
        if recorder is not None:
            recorder.store(grads.hidden_grads, grads.cell_grads, None)
        return (grads.grad_x, grads.grad_h0 if needs[1] else None,
                grads.grad_c0 if needs[2] else None, grads.grad_weight_ih, grads.grad_weight_hh,
                grads.grad_bias if needs[5] else None, _clone(grads.grad_bias, needs[6]),
                grads.grad_weight_hr, None, None)


class EagerGRUFunction(torch.autograd.Function):
    """Eager GRU node: ``rnnkit::gru_forward`` in, (output, h_n, gates) out."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder):
        with _BELOW_AUTOGRAD():
            buffers = GRUBuffers(*ops.kernels.gru_forward(
                x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask))
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, *buffers, mask)
        ctx.has_bias, ctx.recorder = bias_ih is not None, recorder
        ctx.mark_non_differentiable(buffers.gates)
        return (held_output(buffers.hiddens, mask), buffers.hiddens[x.shape[0]].clone(),
                buffers.gates)

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, _grad_gates):
        x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask = ctx.saved_tensors
        needs, recorder = ctx.needs_input_grad, ctx.recorder
        with _BELOW_AUTOGRAD():
            grads = GRUGrads(*ops.kernels.gru_backward(
                grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask,
                recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3], needs[4], needs[5]]))
        if recorder is not None:
            recorder.store(grads.hidden_grads, None, None)
        return (grads.grad_x, grads.grad_h0 if needs[1] else None, grads.grad_weight_ih,
                grads.grad_weight_hh, grads.grad_bias_ih, grads.grad_bias_hh, None, None)


class EagerRNNFunction(torch.autograd.Function):
    """Eager RNN node: ``rnnkit::rnn_forward`` in, (output, h_n) out."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu, mask, recorder):
        bias = combined_bias(bias_ih, bias_hh)
        with _BELOW_AUTOGRAD():
            hiddens = ops.kernels.rnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, mask)
        ctx.has_bias, ctx.relu, ctx.recorder = bias_ih is not None, relu, recorder
        return held_output(hiddens, mask), hiddens[x.shape[0]].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
        needs, recorder = ctx.needs_input_grad, ctx.recorder
        with _BELOW_AUTOGRAD():
            grads = RNNGrads(*ops.kernels.rnn_backward(
                grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, ctx.relu,
                recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3], needs[4] or needs[5]]))
        if recorder is not None:
            recorder.store(grads.hidden_grads, None, None)
        return (grads.grad_x, grads.grad_h0 if needs[1] else None, grads.grad_weight_ih,
                grads.grad_weight_hh, grads.grad_bias if needs[4] else None,
                _clone(grads.grad_bias, needs[5]), None, None, None)


def namespace() -> SimpleNamespace:
    """What :func:`rnnkit.backends.select` hands the layers for ``backend="fused"``."""
    global _NAMESPACE
    if _NAMESPACE is None:
        _NAMESPACE = SimpleNamespace(
            name="fused", lstm=lstm_sequence, gru=gru_sequence, rnn=rnn_sequence,
            lstm_variant=variant_functions.lstm_variant,
            gru_variant=gru_variant_functions.gru_variant,
            rnn_variant=gru_variant_functions.rnn_variant,
        )
    return _NAMESPACE


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
    """:func:`rnnkit.bptt.lstm_sequence` on ``rnnkit::lstm_forward``: (output, h_n, c_n,
    all c_t, gates), the last two detached."""
    if not covered(x):
        return bptt.lstm_sequence(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr,
                                  mask, recorder)
    if _eager_graph(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr):
        return EagerLSTMFunction.apply(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
                                       weight_hr, mask, recorder)
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask)
    buffers = LSTMBuffers(*ops.run("lstm_forward", recorder, inputs, *inputs))
    steps = x.shape[0]
    return (held_output(buffers.hiddens, mask), buffers.hiddens[steps], buffers.cells[steps],
            buffers.cells[1:].detach(), buffers.gates.detach())


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
    """:func:`rnnkit.bptt.gru_sequence` on ``rnnkit::gru_forward``: (output, h_n, gates), the
    gates detached."""
    if not covered(x):
        return bptt.gru_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder)
    if _eager_graph(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        return EagerGRUFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask,
                                      recorder)
    inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask)
    buffers = GRUBuffers(*ops.run("gru_forward", recorder, inputs, *inputs))
    return (held_output(buffers.hiddens, mask), buffers.hiddens[x.shape[0]],
            buffers.gates.detach())


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
    """:func:`rnnkit.bptt.rnn_sequence` on ``rnnkit::rnn_forward``: (output, h_n)."""
    if not covered(x):
        return bptt.rnn_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity,
                                 mask, recorder)
    if _eager_graph(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        return EagerRNNFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh,
                                      nonlinearity == "relu", mask, recorder)
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", mask)
    hiddens = ops.run("rnn_forward", recorder, inputs[:5], *inputs)
    return held_output(hiddens, mask), hiddens[x.shape[0]]
