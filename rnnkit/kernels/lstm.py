"""The LSTM's fused backend: ``lstm_sequence`` and ``lstm_variant`` on the ``rnnkit::lstm_*``
operators (``csrc/lstm*.cpp``), taking and returning exactly what their reference twins in
:mod:`rnnkit.bptt.lstm` and :mod:`rnnkit.bptt.lstm_variants` do.

Inputs the kernels do not cover (a CUDA tensor, a dtype other than float32/float64) go to the
reference functions. The GradientRecorder (``return_internals=True``'s dL/dh_t) is filled in
eager mode only: under torch.compile / torch.export the operators run without it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.lstm import lstm_sequence as reference_sequence
from rnnkit.bptt.lstm_variants import LSTMVariantFunction
from rnnkit.kernels import infer, ops
from rnnkit.kernels.ops import (
    BELOW_AUTOGRAD,
    LSTMBuffers,
    LSTMGrads,
    LSTMVariantBuffers,
    clone_if,
    combined_bias,
    covered,
    detached,
    eager_graph,
    held_output,
)


class EagerLSTMFunction(torch.autograd.Function):
    """Eager LSTM node: ``rnnkit::lstm_forward`` in, (output, h_n, c_n, all c_t, gates) out;
    backward ``rnnkit::lstm_backward`` on dL/d(output), dL/dh_n and dL/dc_n."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, mask, recorder):
        bias = combined_bias(bias_ih, bias_hh)
        with BELOW_AUTOGRAD():
            buffers = LSTMBuffers(*ops.kernels.lstm_forward(
                x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask))
        ctx.set_materialize_grads(False)
        ctx.bf16 = ops.bf16_on()  # the backward runs its GEMMs as the forward did
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
        with BELOW_AUTOGRAD(), ops.bf16_matmul(ctx.bf16):
            grads = LSTMGrads(*ops.kernels.lstm_backward(
                grad_output, grad_h_n, grad_c_n, x, weight_ih, weight_hh, weight_hr, hiddens,
                cells, gates, mask, recorder is not None, ctx.has_bias,
                [needs[0], needs[3], needs[4], needs[5] or needs[6], needs[7]]))
        if recorder is not None:
            recorder.store(grads.hidden_grads, grads.cell_grads, None)
        return (grads.grad_x, grads.grad_h0 if needs[1] else None,
                grads.grad_c0 if needs[2] else None, grads.grad_weight_ih, grads.grad_weight_hh,
                grads.grad_bias if needs[5] else None, clone_if(grads.grad_bias, needs[6]),
                grads.grad_weight_hr, None, None)


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
        return reference_sequence(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr,
                                  mask, recorder)
    if infer.wanted(recorder, (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr)):
        output, h_n, c_n = infer.call("lstm_infer", x, h0, c0, weight_ih, weight_hh,
                                      infer.combined_bias(bias_ih, bias_hh), weight_hr, mask)
        return output, h_n, c_n, None, None  # no cells, no gates: nothing kept for a backward
    if eager_graph((x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr)):
        return EagerLSTMFunction.apply(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
                                       weight_hr, mask, recorder)
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, c0, weight_ih, weight_hh, bias, weight_hr, mask)
    buffers = LSTMBuffers(*ops.run("lstm_forward", recorder, inputs, *inputs))
    steps = x.shape[0]
    return (held_output(buffers.hiddens, mask), buffers.hiddens[steps], buffers.cells[steps],
            buffers.cells[1:].detach(), buffers.gates.detach())


def lstm_variant(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                 ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole,
                 recurrent_mask, zone_h, zone_c, coupled, mask, recorder):
    """``LSTMVariantFunction.apply`` on the fused operator: (output, h_n, c_n, all c_t, gates,
    normalized_ih, normalized_hh, normalized_cell), all after c_n detached."""
    if not covered(x):
        return LSTMVariantFunction.apply(
            x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
            ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole, recurrent_mask,
            zone_h, zone_c, coupled, mask, recorder,
        )
    if infer.wanted(recorder, (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight,
                               ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight,
                               ln_cell_bias, peephole)):
        output, h_n, c_n = infer.call(
            "lstm_variant_infer", x, h0, c0, weight_ih, weight_hh,
            infer.combined_bias(bias_ih, bias_hh), ln_ih_weight, ln_ih_bias, ln_hh_weight,
            ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole, recurrent_mask, zone_h, zone_c,
            coupled, mask)
        return output, h_n, c_n, None, None, None, None, None
    inputs = (x, h0, c0, weight_ih, weight_hh, combined_bias(bias_ih, bias_hh), ln_ih_weight,
              ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias, peephole,
              recurrent_mask, zone_h, zone_c, coupled, mask)
    buffers = LSTMVariantBuffers(*ops.run("lstm_variant_forward", recorder, inputs[:13], *inputs))
    steps = x.shape[0]
    return (
        held_output(buffers.hiddens, mask),
        buffers.hiddens[steps],
        buffers.cells[steps],
        buffers.cells[1:].detach(),
        buffers.gates.detach(),
        detached(buffers.normalized_ih),
        detached(buffers.normalized_hh),
        detached(buffers.normalized_cell),
    )
