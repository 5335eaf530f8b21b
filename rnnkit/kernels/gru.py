"""The GRU's fused backend: ``gru_sequence`` and ``gru_variant`` on the ``rnnkit::gru_*``
operators (``csrc/gru*.cpp``), taking and returning exactly what their reference twins in
:mod:`rnnkit.bptt.gru` and :mod:`rnnkit.bptt.gru_variants` do.

Inputs the kernels do not cover (a CUDA tensor, a dtype other than float32/float64) go to the
reference functions. The GradientRecorder (``return_internals=True``'s dL/dh_t) is filled in
eager mode only: under torch.compile / torch.export the operators run without it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.gru import gru_sequence as reference_sequence
from rnnkit.bptt.gru_variants import GRUVariantFunction
from rnnkit.kernels import infer, ops
from rnnkit.kernels.ops import (
    BELOW_AUTOGRAD,
    GRUBuffers,
    GRUGrads,
    GRUVariantBuffers,
    covered,
    detached,
    eager_graph,
    held_output,
)


class EagerGRUFunction(torch.autograd.Function):
    """Eager GRU node: ``rnnkit::gru_forward`` in, (output, h_n, gates) out."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder):
        with BELOW_AUTOGRAD():
            buffers = GRUBuffers(*ops.kernels.gru_forward(
                x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask))
        ctx.set_materialize_grads(False)
        ctx.bf16 = ops.bf16_on()  # the backward runs its GEMMs as the forward did
        ctx.save_for_backward(x, weight_ih, weight_hh, *buffers, mask)
        ctx.has_bias, ctx.recorder = bias_ih is not None, recorder
        ctx.mark_non_differentiable(buffers.gates)
        return (held_output(buffers.hiddens, mask), buffers.hiddens[x.shape[0]].clone(),
                buffers.gates)

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, _grad_gates):
        x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask = ctx.saved_tensors
        needs, recorder = ctx.needs_input_grad, ctx.recorder
        with BELOW_AUTOGRAD(), ops.bf16_matmul(ctx.bf16):
            grads = GRUGrads(*ops.kernels.gru_backward(
                grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, gates, hidden_new, mask,
                recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3], needs[4], needs[5]]))
        if recorder is not None:
            recorder.store(grads.hidden_grads, None, None)
        return (grads.grad_x, grads.grad_h0 if needs[1] else None, grads.grad_weight_ih,
                grads.grad_weight_hh, grads.grad_bias_ih, grads.grad_bias_hh, None, None)


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
        return reference_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask, recorder)
    if infer.wanted(recorder, (x, h0, weight_ih, weight_hh, bias_ih, bias_hh)):
        output, h_n = infer.call("gru_infer", x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask)
        return output, h_n, None  # no gates: nothing kept for a backward
    if eager_graph((x, h0, weight_ih, weight_hh, bias_ih, bias_hh)):
        return EagerGRUFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask,
                                      recorder)
    inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, mask)
    buffers = GRUBuffers(*ops.run("gru_forward", recorder, inputs, *inputs))
    return (held_output(buffers.hiddens, mask), buffers.hiddens[x.shape[0]],
            buffers.gates.detach())


def gru_variant(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask, recorder):
    """``GRUVariantFunction.apply`` on the fused operator: (output, h_n, gates, normalized_ih,
    normalized_hh), all after h_n detached."""
    inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
              ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask)
    if not covered(x):
        return GRUVariantFunction.apply(*inputs, recorder)
    if infer.wanted(recorder, inputs[:10]):
        output, h_n = infer.call("gru_variant_infer", *inputs)
        return output, h_n, None, None, None
    buffers = GRUVariantBuffers(*ops.run("gru_variant_forward", recorder, inputs[:10], *inputs))
    return (
        held_output(buffers.hiddens, mask),
        buffers.hiddens[x.shape[0]],
        buffers.gates.detach(),
        detached(buffers.normalized_ih),
        detached(buffers.normalized_hh),
    )
