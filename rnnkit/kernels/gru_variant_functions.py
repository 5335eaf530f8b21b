"""The binding tier of the GRU and RNN variants: autograd.Functions around their C++ kernels.

``gru_variant`` and ``rnn_variant`` take and return exactly what
:class:`rnnkit.bptt.gru_variants.GRUVariantFunction` and ``RNNVariantFunction`` ``.apply`` do
(same argument order, same outputs, same recorder behaviour); the loops inside are C++
(``csrc/gru_variants*.cpp``, ``csrc/rnn_variants.cpp``). Inputs the kernels do not cover (a CUDA
tensor, a dtype other than float32/float64) go to the reference Functions.
"""

from __future__ import annotations

import torch

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.gru_variants import GRUVariantFunction, RNNVariantFunction
from rnnkit.kernels import functions
from rnnkit.kernels.functions import _autocast_off, _clone, _covered, _held_output, _needs_graph


def _kernels():
    return functions._extension  # set by functions.namespace before any of this runs


def _gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, layer_norms, recurrent_mask,
                 zone_h, mask):
    """(hiddens, gates, hidden_new, recurrent_inputs, normalized_ih, rstd_ih, normalized_hh,
    rstd_hh); see csrc/gru_variants.cpp for the shapes."""
    with _autocast_off():
        return _kernels().gru_variant_forward(
            x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *layer_norms, recurrent_mask, zone_h,
            mask,
        )


def _gru_outputs(results, mask, steps):
    """(output, h_n, gates, normalized_ih, normalized_hh), as GRUVariantFunction returns."""
    hiddens, gates, normalized_ih, normalized_hh = results[0], results[1], results[4], results[6]
    return _held_output(hiddens, mask), hiddens[steps].clone(), gates, normalized_ih, normalized_hh


class FusedGRUVariantFunction(torch.autograd.Function):
    """:class:`GRUVariantFunction` with its two time loops in C++ (same inputs and outputs)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask, recorder):
        layer_norms = (ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias)
        results = _gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, layer_norms,
                               recurrent_mask, zone_h, mask)
        hiddens, gates, hidden_new, recurrent_inputs = results[:4]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(
            x, weight_ih, weight_hh, hiddens, gates, hidden_new, recurrent_inputs, ln_ih_weight,
            ln_hh_weight, *results[4:], recurrent_mask, zone_h, mask,
        )
        ctx.recorder, ctx.has_bias = recorder, bias_ih is not None
        outputs = _gru_outputs(results, mask, x.shape[0])
        ctx.mark_non_differentiable(*[t for t in outputs[2:] if t is not None])
        return outputs

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, *_unused):
        needs = ctx.needs_input_grad
        recorder: GradientRecorder | None = ctx.recorder
        with _autocast_off():
            grads = _kernels().gru_variant_backward(
                grad_output, grad_h_n, *ctx.saved_tensors, recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3]],
            )
        grad_x, grad_h0, grad_weight_ih, grad_weight_hh, *parameter_grads, hidden_grads = grads
        if recorder is not None:
            recorder.store(hidden_grads, None, None)  # finished steps already hold zero
        # parameter_grads: b_ih, b_hh, LN_ih gain and bias, LN_hh gain and bias
        return (
            grad_x,
            grad_h0 if needs[1] else None,
            grad_weight_ih,
            grad_weight_hh,
            *[grad if need else None for grad, need in zip(parameter_grads, needs[4:10])],
            None,
            None,
            None,
            None,
        )


def gru_variant(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask, recorder):
    """``GRUVariantFunction.apply`` on the fused kernel; see it for shapes and outputs."""
    arguments = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                 ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask, recorder)
    if not _covered(x):
        return GRUVariantFunction.apply(*arguments)
    if _needs_graph(*arguments[:10]):
        return FusedGRUVariantFunction.apply(*arguments)
    with torch.no_grad():  # inference: nothing to save, no graph node to build
        layer_norms = (ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias)
        results = _gru_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, layer_norms,
                               recurrent_mask, zone_h, mask)
    return _gru_outputs(results, mask, x.shape[0])


def _rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask,
                 zone_h, mask):
    """(hiddens, new_hiddens, recurrent_inputs); see csrc/rnn_variants.cpp for the shapes."""
    bias = None if bias_ih is None else bias_ih + bias_hh
    with _autocast_off():
        return _kernels().rnn_variant_forward(
            x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", recurrent_mask, zone_h,
            mask,
        )


class FusedRNNVariantFunction(torch.autograd.Function):
    """:class:`RNNVariantFunction` with its two time loops in C++ (same inputs and outputs)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask,
                zone_h, mask, recorder):
        hiddens, new_hiddens, recurrent_inputs = _rnn_forward(
            x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask, zone_h,
            mask,
        )
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, new_hiddens, recurrent_inputs,
                              recurrent_mask, zone_h, mask)
        ctx.relu, ctx.recorder = nonlinearity == "relu", recorder
        ctx.has_bias = bias_ih is not None
        return _held_output(hiddens, mask), hiddens[x.shape[0]].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        needs = ctx.needs_input_grad
        recorder: GradientRecorder | None = ctx.recorder
        with _autocast_off():
            grads = _kernels().rnn_variant_backward(
                grad_output, grad_h_n, *ctx.saved_tensors, ctx.relu, recorder is not None,
                ctx.has_bias, [needs[0], needs[2], needs[3], needs[4] or needs[5]],
            )
        grad_x, grad_h0, grad_weight_ih, grad_weight_hh, grad_bias, hidden_grads = grads
        if recorder is not None:
            recorder.store(hidden_grads, None, None)  # finished steps already hold zero
        return (
            grad_x,
            grad_h0 if needs[1] else None,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias if needs[4] else None,
            _clone(grad_bias, needs[5]),
            None,
            None,
            None,
            None,
            None,
        )


def rnn_variant(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask,
                zone_h, mask, recorder):
    """``RNNVariantFunction.apply`` on the fused kernel; see it for shapes and outputs."""
    arguments = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask,
                 zone_h, mask, recorder)
    if not _covered(x):
        return RNNVariantFunction.apply(*arguments)
    if _needs_graph(*arguments[:6]):
        return FusedRNNVariantFunction.apply(*arguments)
    with torch.no_grad():  # inference: nothing to save, no graph node to build
        hiddens, _, _ = _rnn_forward(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity,
                                     recurrent_mask, zone_h, mask)
    return _held_output(hiddens, mask), hiddens[x.shape[0]].clone()
