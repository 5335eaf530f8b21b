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

from torch import Tensor

from rnnkit import bptt
from rnnkit.bptt.common import GradientRecorder
from rnnkit.kernels import gru_variant_functions, ops, variant_functions
from rnnkit.kernels.ops import GRUBuffers, LSTMBuffers, combined_bias, covered, held_output

_NAMESPACE: SimpleNamespace | None = None


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
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", mask)
    hiddens = ops.run("rnn_forward", recorder, inputs[:5], *inputs)
    return held_output(hiddens, mask), hiddens[x.shape[0]]
