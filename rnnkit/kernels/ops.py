"""The ``torch.ops.rnnkit`` operators' Python half: fake implementations, autograd, results.

``csrc/ops.cpp`` defines twelve operators (the forward and the backward of the LSTM, GRU, RNN
and their variants) with typed schemas and CPU implementations. :func:`register` adds, once the
library is loaded, what torch needs beyond that to trace them (``torch.compile``,
``torch.export``, ``torch.jit.trace``): a fake implementation per operator (shapes and dtypes
only, exactly those of the C++ allocations, and None where the C++ returns an undefined tensor),
and for each forward operator an autograd formula whose backward is the matching backward
operator.

The forward operators return the kernels' full buffers, h_0 included (``hiddens[0]``); the
layers' outputs are views of them (``hiddens[1:]``, ``hiddens[T]``, ``cells[T]``). The autograd
formula covers the gradients those views carry: ``hiddens[1:]`` and ``cells[T]`` (the layers
hand out the gates, ``cells[1:]`` and the other saved buffers detached). Under a ragged
``mask`` the kernels hold a finished row's state and ignore dL/d(output) at its held steps,
passing dL/dh through them; the part of ``hiddens[T]``'s gradient that belongs to rows held at
step T-1 (their h_n) therefore enters as ``grad_h_n``, while rows still running at T-1 take it
with ``grad_output[T-1]``.

Every call goes through :data:`kernels` (``torch.ops.rnnkit``), the one seam a test can wrap
to count which operators ran.
"""

from __future__ import annotations

import contextlib
import threading
from typing import NamedTuple

import torch
from torch import Tensor

kernels = torch.ops.rnnkit  # the seam: tests/conftest.py wraps it to count calls
# eager calls go straight to the CPU kernel (what torch.library's own wrapper does inside)
BELOW_AUTOGRAD = torch._C._AutoDispatchBelowAutograd
_registered = False
_precision = threading.local()  # .bf16: this thread's operators run their GEMMs in bf16


def bf16_on() -> bool:
    """Whether this thread is in bf16 mode (:func:`bf16_matmul`): a Function's forward keeps it
    for its backward."""
    return getattr(_precision, "bf16", False)


@contextlib.contextmanager
def bf16_matmul(on: bool):
    """The operators called on this thread inside run their GEMMs on the bf16 kernel
    (``rnnkit::set_bf16_matmul``, see :mod:`rnnkit.precision`) when ``on``, in float32 when
    not. Nothing is called when the mode is already the one asked for."""
    if bool(on) == bf16_on():
        yield
        return
    was = bf16_on()
    kernels.set_bf16_matmul(bool(on))
    _precision.bf16 = bool(on)
    try:
        yield
    finally:
        kernels.set_bf16_matmul(was)
        _precision.bf16 = was


# ---- what the operators return, by name ---------------------------------------------------------
class LSTMBuffers(NamedTuple):
    hiddens: Tensor  # [T+1, N, P] h_0 .. h_T
    cells: Tensor  # [T+1, N, H] c_0 .. c_T
    gates: Tensor  # [T, N, 4H] i, f, g, o after their nonlinearities


class GRUBuffers(NamedTuple):
    hiddens: Tensor  # [T+1, N, H]
    gates: Tensor  # [T, N, 3H] r, z, n
    hidden_new: Tensor  # [T, N, H] W_hn h_{t-1} + b_hn


class LSTMVariantBuffers(NamedTuple):
    hiddens: Tensor
    cells: Tensor
    new_cells: Tensor | None  # the cell before zoneout; None without zoneout (= cells[1:])
    gates: Tensor
    recurrent_inputs: Tensor | None  # h_{t-1} times the recurrent-dropout mask
    normalized_ih: Tensor | None
    rstd_ih: Tensor | None
    normalized_hh: Tensor | None
    rstd_hh: Tensor | None
    normalized_cell: Tensor | None
    rstd_cell: Tensor | None


class GRUVariantBuffers(NamedTuple):
    hiddens: Tensor
    gates: Tensor
    hidden_new: Tensor
    recurrent_inputs: Tensor | None
    normalized_ih: Tensor | None
    rstd_ih: Tensor | None
    normalized_hh: Tensor | None
    rstd_hh: Tensor | None


class RNNVariantBuffers(NamedTuple):
    hiddens: Tensor
    new_hiddens: Tensor | None  # the state before zoneout; None without zoneout (= hiddens[1:])
    recurrent_inputs: Tensor | None


class LSTMGrads(NamedTuple):
    grad_x: Tensor | None
    grad_h0: Tensor
    grad_c0: Tensor
    grad_weight_ih: Tensor | None
    grad_weight_hh: Tensor | None
    grad_bias: Tensor | None
    grad_weight_hr: Tensor | None
    hidden_grads: Tensor | None
    cell_grads: Tensor | None


class GRUGrads(NamedTuple):
    grad_x: Tensor | None
    grad_h0: Tensor
    grad_weight_ih: Tensor | None
    grad_weight_hh: Tensor | None
    grad_bias_ih: Tensor | None
    grad_bias_hh: Tensor | None
    hidden_grads: Tensor | None


class RNNGrads(NamedTuple):
    grad_x: Tensor | None
    grad_h0: Tensor
    grad_weight_ih: Tensor | None
    grad_weight_hh: Tensor | None
    grad_bias: Tensor | None
    hidden_grads: Tensor | None


class LSTMVariantGrads(NamedTuple):
    grad_x: Tensor | None
    grad_h0: Tensor
    grad_c0: Tensor
    grad_weight_ih: Tensor | None
    grad_weight_hh: Tensor | None
    grad_bias: Tensor | None
    grad_ln_ih_weight: Tensor | None
    grad_ln_ih_bias: Tensor | None
    grad_ln_hh_weight: Tensor | None
    grad_ln_hh_bias: Tensor | None
    grad_ln_cell_weight: Tensor | None
    grad_ln_cell_bias: Tensor | None
    grad_peephole: Tensor | None
    hidden_grads: Tensor | None
    cell_grads: Tensor | None


class GRUVariantGrads(NamedTuple):
    grad_x: Tensor | None
    grad_h0: Tensor
    grad_weight_ih: Tensor | None
    grad_weight_hh: Tensor | None
    grad_bias_ih: Tensor | None
    grad_bias_hh: Tensor | None
    grad_ln_ih_weight: Tensor | None
    grad_ln_ih_bias: Tensor | None
    grad_ln_hh_weight: Tensor | None
    grad_ln_hh_bias: Tensor | None
    hidden_grads: Tensor | None


# ---- fake implementations: the C++ allocations, shape for shape --------------------------------
def _empty(like: Tensor, *shape) -> Tensor:
    return like.new_empty(shape)


def _fake_lstm_forward(x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask):
    steps, batch = x.shape[0], x.shape[1]
    hidden, out_size = c0.shape[1], h0.shape[1]
    return (_empty(x, steps + 1, batch, out_size), _empty(x, steps + 1, batch, hidden),
            _empty(x, steps, batch, 4 * hidden))


def _fake_lstm_backward(grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh, weight_hr,
                        hiddens, cells, gates, mask, record, has_bias, needs):
    steps, batch, width = gates.shape
    hidden, out_size = width // 4, hiddens.shape[2]
    return (
        _empty(gates, steps, batch, weight_ih.shape[1]) if needs[0] else None,
        _empty(gates, batch, out_size),
        _empty(gates, batch, hidden),
        _empty(gates, *weight_ih.shape) if needs[1] else None,
        _empty(gates, *weight_hh.shape) if needs[2] else None,
        _empty(gates, width) if has_bias and needs[3] else None,
        _empty(gates, *weight_hr.shape) if weight_hr is not None and needs[4] else None,
        _empty(gates, steps, batch, out_size) if record else None,
        _empty(gates, steps, batch, hidden) if record else None,
    )


def _fake_gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask):
    steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
    return (_empty(x, steps + 1, batch, hidden), _empty(x, steps, batch, 3 * hidden),
            _empty(x, steps, batch, hidden))


def _fake_gru_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates,
                       hidden_new, mask, record, has_bias, needs):
    steps, batch, width = gates.shape
    hidden = width // 3
    return (
        _empty(gates, steps, batch, weight_ih.shape[1]) if needs[0] else None,
        _empty(gates, batch, hidden),
        _empty(gates, *weight_ih.shape) if needs[1] else None,
        _empty(gates, width, hidden) if needs[2] else None,
        _empty(gates, width) if has_bias and needs[3] else None,
        _empty(gates, width) if has_bias and needs[4] else None,
        _empty(gates, steps, batch, hidden) if record else None,
    )


def _fake_rnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask):
    return _empty(x, x.shape[0] + 1, x.shape[1], h0.shape[1])


def _rnn_grads(x, weight_ih, weight_hh, hiddens, record, has_bias, needs):
    steps, batch, hidden = hiddens.shape[0] - 1, hiddens.shape[1], hiddens.shape[2]
    return (
        _empty(hiddens, steps, batch, x.shape[2]) if needs[0] else None,
        _empty(hiddens, batch, hidden),
        _empty(hiddens, *weight_ih.shape) if needs[1] else None,
        _empty(hiddens, *weight_hh.shape) if needs[2] else None,
        _empty(hiddens, hidden) if has_bias and needs[3] else None,
        _empty(hiddens, steps, batch, hidden) if record else None,
    )


def _fake_rnn_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, relu,
                       record, has_bias, needs):
    return _rnn_grads(x, weight_ih, weight_hh, hiddens, record, has_bias, needs)


def _fake_lstm_variant_forward(x, h0, c0, weight_ih, weight_hh, bias, ln_ih_weight, ln_ih_bias,
                               ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole,
                               recurrent_mask, zone_h, zone_c, coupled, mask):
    steps, batch, hidden = x.shape[0], x.shape[1], c0.shape[1]
    width = 4 * hidden
    norm = ln_ih_weight is not None
    zoneout = zone_h is not None or zone_c is not None
    return (
        _empty(x, steps + 1, batch, hidden),
        _empty(x, steps + 1, batch, hidden),
        _empty(x, steps, batch, hidden) if zoneout else None,
        _empty(x, steps, batch, width),
        _empty(x, steps, batch, hidden) if recurrent_mask is not None else None,
        _empty(x, steps, batch, width) if norm else None,
        _empty(x, steps, batch) if norm else None,
        _empty(x, steps, batch, width) if norm else None,
        _empty(x, steps, batch) if norm else None,
        _empty(x, steps, batch, hidden) if norm else None,
        _empty(x, steps, batch) if norm else None,
    )


def _fake_lstm_variant_backward(grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh,
                                hiddens, cells, new_cells, gates, recurrent_inputs, ln_ih_weight,
                                ln_hh_weight, ln_cell_weight, ln_cell_bias, normalized_ih,
                                rstd_ih, normalized_hh, rstd_hh, normalized_cell, rstd_cell,
                                peephole, recurrent_mask, zone_h, zone_c, coupled, mask, record,
                                has_bias, needs):
    steps, batch, width = gates.shape
    hidden = width // 4
    norm = ln_ih_weight is not None

    def vector(size, present):
        return _empty(gates, size) if present else None

    return (
        _empty(gates, steps, batch, x.shape[2]) if needs[0] else None,
        _empty(gates, batch, hidden),
        _empty(gates, batch, hidden),
        _empty(gates, *weight_ih.shape) if needs[1] else None,
        _empty(gates, *weight_hh.shape) if needs[2] else None,
        vector(width, has_bias),
        vector(width, norm),
        vector(width, norm),
        vector(width, norm),
        vector(width, norm),
        vector(hidden, norm),
        vector(hidden, norm),
        vector(3 * hidden, peephole is not None),
        _empty(gates, steps, batch, hidden) if record else None,
        _empty(gates, steps, batch, hidden) if record else None,
    )


def _fake_gru_variant_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                              ln_ih_bias, ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask):
    steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
    width = 3 * hidden
    norm = ln_ih_weight is not None
    return (
        _empty(x, steps + 1, batch, hidden),
        _empty(x, steps, batch, width),
        _empty(x, steps, batch, hidden),
        _empty(x, steps, batch, hidden) if recurrent_mask is not None else None,
        _empty(x, steps, batch, width) if norm else None,
        _empty(x, steps, batch) if norm else None,
        _empty(x, steps, batch, width) if norm else None,
        _empty(x, steps, batch) if norm else None,
    )


def _fake_gru_variant_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates,
                               hidden_new, recurrent_inputs, ln_ih_weight, ln_hh_weight,
                               normalized_ih, rstd_ih, normalized_hh, rstd_hh, recurrent_mask,
                               zone_h, mask, record, has_bias, needs):
    steps, batch, width = gates.shape
    hidden = width // 3
    norm = ln_ih_weight is not None

    def vector(present):
        return _empty(gates, width) if present else None

    return (
        _empty(gates, steps, batch, x.shape[2]) if needs[0] else None,
        _empty(gates, batch, hidden),
        _empty(gates, *weight_ih.shape) if needs[1] else None,
        _empty(gates, width, hidden) if needs[2] else None,
        vector(has_bias),
        vector(has_bias),
        vector(norm),
        vector(norm),
        vector(norm),
        vector(norm),
        _empty(gates, steps, batch, hidden) if record else None,
    )


def _fake_rnn_variant_forward(x, h0, weight_ih, weight_hh, bias, relu, recurrent_mask, zone_h,
                              mask):
    steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
    return (
        _empty(x, steps + 1, batch, hidden),
        _empty(x, steps, batch, hidden) if zone_h is not None else None,
        _empty(x, steps, batch, hidden) if recurrent_mask is not None else None,
    )


def _fake_rnn_variant_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens,
                               new_hiddens, recurrent_inputs, recurrent_mask, zone_h, mask, relu,
                               record, has_bias, needs):
    return _rnn_grads(x, weight_ih, weight_hh, hiddens, record, has_bias, needs)


# ---- autograd: each forward operator's backward is its backward operator -----------------------
def _last_steps(grad_hiddens: Tensor | None, mask: Tensor | None):
    """(grad_output, grad_h_n) for a backward kernel from dL/d(hiddens); see the module doc."""
    if grad_hiddens is None:
        return None, None
    grad_output = grad_hiddens[1:]
    if mask is None:
        return grad_output, None
    steps = grad_hiddens.shape[0] - 1
    return grad_output, grad_hiddens[steps] * (1 - mask[steps - 1])


def _at(tensors: Tensor | None, index: int) -> Tensor | None:
    return None if tensors is None else tensors[index]


def _gated(grad, need: bool):
    return grad if need else None


# Each forward operator: setup (what to save), call (the backward operator from the output
# grads, `needs` being the forward inputs' needs_input_grad) and grads (the inputs' gradients,
# None for the non-differentiable trailing ones).
def _setup_lstm(ctx, inputs, output):
    x, _h0, _c0, weight_ih, weight_hh, bias, weight_hr, mask = inputs
    hiddens, cells, gates = output
    ctx.save_for_backward(x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask)
    ctx.has_bias = bias is not None


def _call_lstm(ctx, needs, record, grad_hiddens, grad_cells, _grad_gates) -> LSTMGrads:
    x, weight_ih, weight_hh, weight_hr, hiddens, cells, gates, mask = ctx.saved_tensors
    grad_output, grad_h_n = _last_steps(grad_hiddens, mask)
    return LSTMGrads(*kernels.lstm_backward(
        grad_output, grad_h_n, _at(grad_cells, gates.shape[0]), x, weight_ih, weight_hh,
        weight_hr, hiddens, cells, gates, mask, record, ctx.has_bias,
        [needs[0], needs[3], needs[4], needs[5], needs[6]],
    ))


def _grads_lstm(grads: LSTMGrads, needs) -> tuple:
    return (grads.grad_x, _gated(grads.grad_h0, needs[1]), _gated(grads.grad_c0, needs[2]),
            grads.grad_weight_ih, grads.grad_weight_hh, grads.grad_bias, grads.grad_weight_hr,
            None)


def _setup_gru(ctx, inputs, output):
    x, _h0, weight_ih, weight_hh, bias_ih, _bias_hh, mask = inputs
    ctx.save_for_backward(x, weight_ih, weight_hh, *output, mask)
    ctx.has_bias = bias_ih is not None


def _call_gru(ctx, needs, record, grad_hiddens, *_unused) -> GRUGrads:
    x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask = ctx.saved_tensors
    grad_output, grad_h_n = _last_steps(grad_hiddens, mask)
    return GRUGrads(*kernels.gru_backward(
        grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask, record,
        ctx.has_bias, [needs[0], needs[2], needs[3], needs[4], needs[5]],
    ))


def _grads_gru(grads: GRUGrads, needs) -> tuple:
    return (grads.grad_x, _gated(grads.grad_h0, needs[1]), grads.grad_weight_ih,
            grads.grad_weight_hh, grads.grad_bias_ih, grads.grad_bias_hh, None)


def _setup_rnn(ctx, inputs, output):
    x, _h0, weight_ih, weight_hh, bias, relu, mask = inputs
    ctx.save_for_backward(x, weight_ih, weight_hh, output, mask)
    ctx.has_bias, ctx.relu = bias is not None, relu


def _call_rnn(ctx, needs, record, grad_hiddens) -> RNNGrads:
    x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
    grad_output, grad_h_n = _last_steps(grad_hiddens, mask)
    return RNNGrads(*kernels.rnn_backward(
        grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, ctx.relu, record,
        ctx.has_bias, [needs[0], needs[2], needs[3], needs[4]],
    ))


def _grads_rnn(grads: RNNGrads, needs) -> tuple:
    return (grads.grad_x, _gated(grads.grad_h0, needs[1]), grads.grad_weight_ih,
            grads.grad_weight_hh, grads.grad_bias, None, None)


# the inputs of lstm_variant_forward after x, h0, c0, w_ih, w_hh and bias
_LSTM_VARIANT_REST = ("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
                      "ln_cell_weight", "ln_cell_bias", "peephole", "recurrent_mask", "zone_h",
                      "zone_c", "coupled", "mask")


def _setup_lstm_variant(ctx, inputs, output):
    x, _h0, _c0, weight_ih, weight_hh, bias = inputs[:6]
    rest = dict(zip(_LSTM_VARIANT_REST, inputs[6:]))
    buffers = LSTMVariantBuffers(*output)
    ctx.save_for_backward(
        x, weight_ih, weight_hh, buffers.hiddens, buffers.cells, buffers.new_cells,
        buffers.gates, buffers.recurrent_inputs, rest["ln_ih_weight"], rest["ln_hh_weight"],
        rest["ln_cell_weight"], rest["ln_cell_bias"], *buffers[5:], rest["peephole"],
        rest["recurrent_mask"], rest["zone_h"], rest["zone_c"], rest["mask"],
    )
    ctx.coupled, ctx.has_bias = rest["coupled"], bias is not None


def _call_lstm_variant(ctx, needs, record, grad_hiddens, grad_cells, *_unused):
    saved = ctx.saved_tensors
    steps = saved[6].shape[0]  # the gates
    grad_output, grad_h_n = _last_steps(grad_hiddens, saved[-1])
    # saved ends with the ragged mask; the operator takes `coupled` just before it
    return LSTMVariantGrads(*kernels.lstm_variant_backward(
        grad_output, grad_h_n, _at(grad_cells, steps), *saved[:-1], ctx.coupled, saved[-1],
        record, ctx.has_bias, [needs[0], needs[3], needs[4], needs[5]],
    ))


def _grads_lstm_variant(grads: LSTMVariantGrads, needs) -> tuple:
    return (
        grads.grad_x,
        _gated(grads.grad_h0, needs[1]),
        _gated(grads.grad_c0, needs[2]),
        grads.grad_weight_ih,
        grads.grad_weight_hh,
        _gated(grads.grad_bias, needs[5]),
        *[_gated(grad, need) for grad, need in zip(grads[6:12], needs[6:12])],
        _gated(grads.grad_peephole, needs[12]),
        None, None, None, None, None,  # recurrent_mask, zone_h, zone_c, coupled, mask
    )


def _setup_gru_variant(ctx, inputs, output):
    (x, _h0, weight_ih, weight_hh, bias_ih, _bias_hh, ln_ih_weight, _ln_ih_bias, ln_hh_weight,
     _ln_hh_bias, recurrent_mask, zone_h, mask) = inputs
    buffers = GRUVariantBuffers(*output)
    ctx.save_for_backward(
        x, weight_ih, weight_hh, *buffers[:4], ln_ih_weight, ln_hh_weight, *buffers[4:],
        recurrent_mask, zone_h, mask,
    )
    ctx.has_bias = bias_ih is not None


def _call_gru_variant(ctx, needs, record, grad_hiddens, *_unused) -> GRUVariantGrads:
    grad_output, grad_h_n = _last_steps(grad_hiddens, ctx.saved_tensors[-1])
    return GRUVariantGrads(*kernels.gru_variant_backward(
        grad_output, grad_h_n, *ctx.saved_tensors, record, ctx.has_bias,
        [needs[0], needs[2], needs[3]],
    ))


def _grads_gru_variant(grads: GRUVariantGrads, needs) -> tuple:
    # grads[4:10]: b_ih, b_hh, LN_ih gain and bias, LN_hh gain and bias
    return (grads.grad_x, _gated(grads.grad_h0, needs[1]), grads.grad_weight_ih,
            grads.grad_weight_hh, *[_gated(g, need) for g, need in zip(grads[4:10], needs[4:10])],
            None, None, None)


def _setup_rnn_variant(ctx, inputs, output):
    x, _h0, weight_ih, weight_hh, bias, relu, recurrent_mask, zone_h, mask = inputs
    ctx.save_for_backward(x, weight_ih, weight_hh, *output, recurrent_mask, zone_h, mask)
    ctx.has_bias, ctx.relu = bias is not None, relu


def _call_rnn_variant(ctx, needs, record, grad_hiddens, *_unused) -> RNNGrads:
    grad_output, grad_h_n = _last_steps(grad_hiddens, ctx.saved_tensors[-1])
    return RNNGrads(*kernels.rnn_variant_backward(
        grad_output, grad_h_n, *ctx.saved_tensors, ctx.relu, record, ctx.has_bias,
        [needs[0], needs[2], needs[3], needs[4]],
    ))


def _grads_rnn_variant(grads: RNNGrads, needs) -> tuple:
    return (grads.grad_x, _gated(grads.grad_h0, needs[1]), grads.grad_weight_ih,
            grads.grad_weight_hh, grads.grad_bias, None, None, None, None)


class _Formula(NamedTuple):
    setup: object
    call: object
    grads: object


FORMULAS = {
    "lstm_forward": _Formula(_setup_lstm, _call_lstm, _grads_lstm),
    "gru_forward": _Formula(_setup_gru, _call_gru, _grads_gru),
    "rnn_forward": _Formula(_setup_rnn, _call_rnn, _grads_rnn),
    "lstm_variant_forward": _Formula(_setup_lstm_variant, _call_lstm_variant,
                                     _grads_lstm_variant),
    "gru_variant_forward": _Formula(_setup_gru_variant, _call_gru_variant, _grads_gru_variant),
    "rnn_variant_forward": _Formula(_setup_rnn_variant, _call_rnn_variant, _grads_rnn_variant),
}


def _backward_of(formula: _Formula):
    def backward(ctx, *grads):
        needs = ctx.needs_input_grad
        return formula.grads(formula.call(ctx, needs, False, *grads), needs)

    return backward


class EagerFunction(torch.autograd.Function):
    """Eager mode's autograd node of a forward operator: the same formula as the registered one
    (:data:`FORMULAS`), without torch.library's generic Python wrapper around it, and, with a
    :class:`~rnnkit.bptt.common.GradientRecorder`, its backward also records dL/dh_t (and
    dL/dc_t) (the backward operator with ``record=True``).

    The registered formula is what torch.compile, torch.export and torch.jit.trace see; it
    cannot reach a Python recorder, so there the internals' ``hidden_grad`` / ``cell_grad`` stay
    None. In eager mode the generic wrapper costs about 100 us a call (argument defaults filled
    in Python, a redispatch), which a batch of one at small sizes feels: this Function calls
    the operators below the autograd key instead.
    """

    @staticmethod
    def forward(ctx, name, recorder, *inputs):
        with BELOW_AUTOGRAD():
            outputs = getattr(kernels, name)(*inputs)
        formula = FORMULAS[name]
        formula.setup(ctx, inputs, outputs)
        ctx.formula, ctx.recorder, ctx.operator = formula, recorder, name
        ctx.bf16 = bf16_on()
        ctx.set_materialize_grads(False)
        return outputs

    @staticmethod
    def backward(ctx, *grads):
        needs = ctx.needs_input_grad[2:]
        recorder = ctx.recorder
        with BELOW_AUTOGRAD(), bf16_matmul(ctx.bf16):
            results = ctx.formula.call(ctx, needs, recorder is not None, *grads)
        if recorder is not None:
            cell_grads = getattr(results, "cell_grads", None)
            recorder.store(results.hidden_grads, cell_grads, None)  # held steps hold zero
        return (None, None, *ctx.formula.grads(results, needs))


_FAKES = {
    "lstm_forward": _fake_lstm_forward,
    "lstm_backward": _fake_lstm_backward,
    "gru_forward": _fake_gru_forward,
    "gru_backward": _fake_gru_backward,
    "rnn_forward": _fake_rnn_forward,
    "rnn_backward": _fake_rnn_backward,
    "lstm_variant_forward": _fake_lstm_variant_forward,
    "lstm_variant_backward": _fake_lstm_variant_backward,
    "gru_variant_forward": _fake_gru_variant_forward,
    "gru_variant_backward": _fake_gru_variant_backward,
    "rnn_variant_forward": _fake_rnn_variant_forward,
    "rnn_variant_backward": _fake_rnn_variant_backward,
}
OPERATORS = tuple(_FAKES)


def _register_one(name: str) -> None:
    torch.library.register_fake(f"rnnkit::{name}")(_FAKES[name])
    formula = FORMULAS.get(name)
    if formula is not None:
        torch.library.register_autograd(f"rnnkit::{name}", _backward_of(formula),
                                        setup_context=formula.setup)


def register() -> None:
    """Fake implementations and autograd formulas of the loaded operators (once a process)."""
    global _registered
    if _registered:
        return
    for name in _FAKES:
        _register_one(name)
    _registered = True


def define(forward: str, backward: str, fake_forward, fake_backward, setup, call, grads) -> None:
    """A family's own pair of operators (declared in its own ``csrc`` file, as
    ``TORCH_LIBRARY_FRAGMENT``): their fakes and the forward's autograd formula (``setup``,
    ``call``, ``grads`` as in :data:`FORMULAS`), so :func:`run` and :class:`EagerFunction`
    take them like the built-in ones. Called by the family's binding module at import."""
    global OPERATORS
    if forward in _FAKES:
        return
    _FAKES[forward], _FAKES[backward] = fake_forward, fake_backward
    FORMULAS[forward] = _Formula(setup, call, grads)
    OPERATORS = tuple(_FAKES)
    if _registered:
        _register_one(forward)
        _register_one(backward)


def define_fake(name: str, fake) -> None:
    """An operator with a fake implementation and no autograd formula (the inference
    operators, :mod:`rnnkit.kernels.infer`), registered like the others."""
    global OPERATORS
    if name in _FAKES:
        return
    _FAKES[name] = fake
    OPERATORS = tuple(_FAKES)
    if _registered:
        _register_one(name)


# ---- what the sequence functions share ----------------------------------------------------------
_KERNEL_DTYPES = (torch.float32, torch.float64)


def covered(x: Tensor) -> bool:
    """Whether the operators have a kernel for ``x`` (CPU, float32/float64); other inputs (a CUDA
    tensor, another dtype) go to the reference path in torch ops."""
    return x.device.type == "cpu" and x.dtype in _KERNEL_DTYPES


def held_output(hiddens: Tensor, mask: Tensor | None) -> Tensor:
    """The output h_1 .. h_T from the full buffer, zero past a sequence's end."""
    return hiddens[1:] if mask is None else hiddens[1:] * mask


def combined_bias(bias_ih: Tensor | None, bias_hh: Tensor | None) -> Tensor | None:
    """b_ih + b_hh for the kernels that take one bias; autograd's add hands each its gradient."""
    return None if bias_ih is None else bias_ih + bias_hh


def run(name: str, recorder, differentiable, *inputs):
    """The forward operator ``name`` on ``inputs``. Traced (torch.compile, torch.export,
    torch.jit.trace): the operator itself, with its fake and registered autograd formula. Eager:
    :class:`EagerFunction` when a graph is being built (recording the per-step gradients when
    given a recorder), else the CPU kernel straight below the autograd key."""
    if _traced():
        return getattr(kernels, name)(*inputs)
    if eager_graph(differentiable):
        return EagerFunction.apply(name, recorder, *inputs)
    with BELOW_AUTOGRAD():
        return getattr(kernels, name)(*inputs)


def _traced() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def eager_graph(tensors) -> bool:
    """Whether an eager call (not traced) builds a graph: grad on and a tensor requiring it."""
    if _traced() or not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


def clone_if(tensor: Tensor | None, needed: bool) -> Tensor | None:
    """A copy of a gradient for a second parameter: two must never share one gradient tensor."""
    return tensor.clone() if tensor is not None and needed else None


def detached(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach()
