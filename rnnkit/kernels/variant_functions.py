"""The binding tier of the variants: autograd.Functions around the C++ variant kernels.

``lstm_variant`` takes and returns exactly what
:class:`rnnkit.bptt.lstm_variants.LSTMVariantFunction` ``.apply`` does (same argument order,
same outputs, same recorder behaviour); the loops inside are C++ (``csrc/lstm_variants*.cpp``).
Inputs the kernels do not cover (a CUDA tensor, a dtype other than float32/float64) go to the
reference Function.
"""

from __future__ import annotations

from types import ModuleType

import torch

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.lstm_variants import LSTMVariantFunction
from rnnkit.kernels.functions import _autocast_off, _clone, _covered, _held_output, _needs_graph

_extension: ModuleType | None = None


def bind(extension: ModuleType) -> None:
    """Point the Functions here at the built extension (called by ``functions.namespace``)."""
    global _extension
    _extension = extension


def _lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, layer_norms, peephole,
                  recurrent_mask, zone_h, zone_c, coupled, mask):
    bias = None if bias_ih is None else bias_ih + bias_hh
    with _autocast_off():
        return _extension.lstm_variant_forward(
            x, h0, c0, weight_ih, weight_hh, bias, *layer_norms, peephole, recurrent_mask,
            zone_h, zone_c, coupled, mask,
        )


def _lstm_outputs(results, mask, steps):
    """(output, h_n, c_n, all c_t, gates, normalized_ih, normalized_hh, normalized_cell)."""
    hiddens, cells, _new_cells, gates = results[:4]
    normalized_ih, normalized_hh, normalized_cell = results[5], results[7], results[9]
    return (
        _held_output(hiddens, mask),
        hiddens[steps].clone(),
        cells[steps].clone(),
        cells[1:],
        gates,
        normalized_ih,
        normalized_hh,
        normalized_cell,
    )


class FusedLSTMVariantFunction(torch.autograd.Function):
    """:class:`LSTMVariantFunction` with its two time loops in C++ (same inputs and outputs)."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole, recurrent_mask,
                zone_h, zone_c, coupled, mask, recorder):
        layer_norms = (ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight,
                       ln_cell_bias)
        results = _lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, layer_norms,
                                peephole, recurrent_mask, zone_h, zone_c, coupled, mask)
        hiddens, cells, new_cells, gates, recurrent_inputs = results[:5]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(
            x, weight_ih, weight_hh, hiddens, cells, new_cells, gates, recurrent_inputs,
            ln_ih_weight, ln_hh_weight, ln_cell_weight, ln_cell_bias, *results[5:], peephole,
            recurrent_mask, zone_h, zone_c, mask,
        )
        ctx.coupled, ctx.recorder, ctx.has_bias = coupled, recorder, bias_ih is not None
        outputs = _lstm_outputs(results, mask, x.shape[0])
        ctx.mark_non_differentiable(*[t for t in outputs[3:] if t is not None])
        return outputs

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n, *_unused):
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad
        recorder: GradientRecorder | None = ctx.recorder
        with _autocast_off():
            # saved ends with the ragged mask; the kernel takes `coupled` just before it
            grads = _extension.lstm_variant_backward(
                grad_output, grad_h_n, grad_c_n, *saved[:-1], ctx.coupled, saved[-1],
                recorder is not None, ctx.has_bias,
                [needs[0], needs[3], needs[4], needs[5] or needs[6]],
            )
        (grad_x, grad_h0, grad_c0, grad_weight_ih, grad_weight_hh, grad_bias, *ln_grads,
         grad_peephole, hidden_grads, cell_grads) = grads
        if recorder is not None:
            recorder.store(hidden_grads, cell_grads, None)  # finished steps already hold zero
        return (
            grad_x,
            grad_h0 if needs[1] else None,
            grad_c0 if needs[2] else None,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias if needs[5] else None,
            _clone(grad_bias, needs[6]),
            *[grad if need else None for grad, need in zip(ln_grads, needs[7:13])],
            grad_peephole if needs[13] else None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def lstm_variant(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                 ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole,
                 recurrent_mask, zone_h, zone_c, coupled, mask, recorder):
    """``LSTMVariantFunction.apply`` on the fused kernel; see it for shapes and outputs."""
    arguments = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                 ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole,
                 recurrent_mask, zone_h, zone_c, coupled, mask, recorder)
    if not _covered(x):
        return LSTMVariantFunction.apply(*arguments)
    differentiable = (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                      ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias,
                      peephole)
    if _needs_graph(*differentiable):
        return FusedLSTMVariantFunction.apply(*arguments)
    with torch.no_grad():  # inference: nothing to save, no graph node to build
        layer_norms = (ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight,
                       ln_cell_bias)
        results = _lstm_forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, layer_norms,
                                peephole, recurrent_mask, zone_h, zone_c, coupled, mask)
    return _lstm_outputs(results, mask, x.shape[0])
