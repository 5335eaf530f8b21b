"""ONNX translations of ``torch.ops.rnnkit_onnx.*``: each one standard ONNX node per layer.

Registered in onnxscript's torch_lib registry on import, which ``torch.onnx.export(...,
dynamo=True)`` reads after tracing, so a plain export of a model holding rnnkit layers needs
no ``custom_translation_table`` (:data:`TABLE` is the same mapping, for passing explicitly).

Gate orders: torch's LSTM blocks are i, f, g, o, ONNX's i, o, f, c; torch's GRU r, z, n,
ONNX's z, r, h (and ``linear_before_reset=1``, torch's GRU). Peepholes: rnnkit's (input,
forget, output), ONNX's P is i, o, f. Coupled gates are not ``input_forget=1``: onnxruntime
computes something else there, so they export as a Scan (:mod:`rnnkit.onnx.ops`).
"""

from __future__ import annotations

import torch
from onnxscript.function_libs.torch_lib.registration import torch_op
from onnxscript.function_libs.torch_lib.tensor_typing import TFloat
from onnxscript.onnx_opset import opset18 as op


def _reorder(tensor, blocks: int, order: tuple[int, ...], axis: int):
    parts = op.Split(tensor, axis=axis, num_outputs=blocks)
    return op.Concat(*[parts[i] for i in order], axis=axis)


def _hidden_size(weight_hh) -> int:
    return int(weight_hh.shape[-1])


def _direction(bidirectional: bool) -> str:
    return "bidirectional" if bidirectional else "forward"


def _bias(bias_ih, bias_hh, blocks, order):
    if bias_ih is None:
        return None
    return op.Concat(_reorder(bias_ih, blocks, order, 1), _reorder(bias_hh, blocks, order, 1),
                     axis=1)  # fmt: skip


def _sequence_lens(lengths):
    return None if lengths is None else op.Cast(lengths, to=6)  # int32


def _output(y):
    """ONNX's Y (T, D, N, H) -> torch's (T, N, D*H)."""
    y = op.Transpose(y, perm=[0, 2, 1, 3])
    return op.Reshape(y, op.Constant(value_ints=[0, 0, -1]))


_LSTM_ORDER = (0, 3, 1, 2)  # i, f, g, o -> i, o, f, c
_GRU_ORDER = (1, 0, 2)  # r, z, n -> z, r, h


@torch_op("rnnkit_onnx::lstm", trace_only=True)
def rnnkit_lstm(
    x: TFloat, h0: TFloat, c0: TFloat, weight_ih: TFloat, weight_hh: TFloat,
    bias_ih: TFloat | None = None, bias_hh: TFloat | None = None, peephole: TFloat | None = None,
    lengths=None, bidirectional: bool = False,
):  # fmt: skip
    w = _reorder(weight_ih, 4, _LSTM_ORDER, 1)
    r = _reorder(weight_hh, 4, _LSTM_ORDER, 1)
    b = _bias(bias_ih, bias_hh, 4, _LSTM_ORDER)
    p = None if peephole is None else _reorder(peephole, 3, (0, 2, 1), 1)  # i,f,o -> i,o,f
    y, h_n, c_n = op.LSTM(
        x, w, r, b, _sequence_lens(lengths), h0, c0, p,
        direction=_direction(bidirectional), hidden_size=_hidden_size(weight_hh),
    )  # fmt: skip
    return _output(y), h_n, c_n


@torch_op("rnnkit_onnx::gru", trace_only=True)
def rnnkit_gru(
    x: TFloat, h0: TFloat, weight_ih: TFloat, weight_hh: TFloat, bias_ih: TFloat | None = None,
    bias_hh: TFloat | None = None, lengths=None, bidirectional: bool = False,
):  # fmt: skip
    w = _reorder(weight_ih, 3, _GRU_ORDER, 1)
    r = _reorder(weight_hh, 3, _GRU_ORDER, 1)
    b = _bias(bias_ih, bias_hh, 3, _GRU_ORDER)
    y, h_n = op.GRU(
        x, w, r, b, _sequence_lens(lengths), h0, direction=_direction(bidirectional),
        hidden_size=_hidden_size(weight_hh), linear_before_reset=1,
    )  # fmt: skip
    return _output(y), h_n


@torch_op("rnnkit_onnx::rnn", trace_only=True)
def rnnkit_rnn(
    x: TFloat, h0: TFloat, weight_ih: TFloat, weight_hh: TFloat, bias_ih: TFloat | None = None,
    bias_hh: TFloat | None = None, lengths=None, bidirectional: bool = False, relu: bool = False,
):  # fmt: skip
    b = None if bias_ih is None else op.Concat(bias_ih, bias_hh, axis=1)
    activation = "Relu" if relu else "Tanh"
    y, h_n = op.RNN(
        x, weight_ih, weight_hh, b, _sequence_lens(lengths), h0,
        activations=[activation] * (2 if bidirectional else 1),
        direction=_direction(bidirectional), hidden_size=_hidden_size(weight_hh),
    )  # fmt: skip
    return _output(y), h_n


TABLE = {
    torch.ops.rnnkit_onnx.lstm.default: rnnkit_lstm,
    torch.ops.rnnkit_onnx.gru.default: rnnkit_gru,
    torch.ops.rnnkit_onnx.rnn.default: rnnkit_rnn,
}
"""The ``custom_translation_table`` for ``torch.onnx.export`` (already registered globally)."""
