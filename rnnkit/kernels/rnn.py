"""The vanilla RNN's fused backend: ``rnn_sequence`` and ``rnn_variant`` on the
``rnnkit::rnn_*`` operators (``csrc/rnn*.cpp``), taking and returning exactly what their
reference twins in :mod:`rnnkit.bptt.rnn` and :mod:`rnnkit.bptt.rnn_variants` do.

Inputs the kernels do not cover (a CUDA tensor, a dtype other than float32/float64) go to the
reference functions. The GradientRecorder (``return_internals=True``'s dL/dh_t) is filled in
eager mode only: under torch.compile / torch.export the operators run without it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.rnn import rnn_sequence as reference_sequence
from rnnkit.bptt.rnn_variants import RNNVariantFunction
from rnnkit.kernels import infer, ops
from rnnkit.kernels.ops import (
    BELOW_AUTOGRAD,
    RNNGrads,
    RNNVariantBuffers,
    clone_if,
    combined_bias,
    covered,
    eager_graph,
    held_output,
)


class EagerRNNFunction(torch.autograd.Function):
    """Eager RNN node: ``rnnkit::rnn_forward`` in, (output, h_n) out."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu, mask, recorder):
        bias = combined_bias(bias_ih, bias_hh)
        with BELOW_AUTOGRAD():
            hiddens = ops.kernels.rnn_forward(x, h0, weight_ih, weight_hh, bias, relu, mask)
        ctx.set_materialize_grads(False)
        ctx.bf16 = ops.bf16_on()  # the backward runs its GEMMs as the forward did
        ctx.save_for_backward(x, weight_ih, weight_hh, hiddens, mask)
        ctx.has_bias, ctx.relu, ctx.recorder = bias_ih is not None, relu, recorder
        return held_output(hiddens, mask), hiddens[x.shape[0]].clone()

    @staticmethod
    def backward(ctx, grad_output, grad_h_n):
        x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
        needs, recorder = ctx.needs_input_grad, ctx.recorder
        with BELOW_AUTOGRAD(), ops.bf16_matmul(ctx.bf16):
            grads = RNNGrads(*ops.kernels.rnn_backward(
                grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, ctx.relu,
                recorder is not None, ctx.has_bias,
                [needs[0], needs[2], needs[3], needs[4] or needs[5]]))
        if recorder is not None:
            recorder.store(grads.hidden_grads, None, None)
        return (grads.grad_x, grads.grad_h0 if needs[1] else None, grads.grad_weight_ih,
                grads.grad_weight_hh, grads.grad_bias if needs[4] else None,
                clone_if(grads.grad_bias, needs[5]), None, None, None)


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
        return reference_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity,
                                 mask, recorder)
    if infer.wanted(recorder, (x, h0, weight_ih, weight_hh, bias_ih, bias_hh)):
        return infer.call("rnn_infer", x, h0, weight_ih, weight_hh,
                          infer.combined_bias(bias_ih, bias_hh), nonlinearity == "relu", mask)
    if eager_graph((x, h0, weight_ih, weight_hh, bias_ih, bias_hh)):
        return EagerRNNFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh,
                                      nonlinearity == "relu", mask, recorder)
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", mask)
    hiddens = ops.run("rnn_forward", recorder, inputs[:5], *inputs)
    return held_output(hiddens, mask), hiddens[x.shape[0]]


def rnn_variant(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask,
                zone_h, mask, recorder):
    """``RNNVariantFunction.apply`` on the fused operator: (output, h_n)."""
    if not covered(x):
        return RNNVariantFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh,
                                        nonlinearity, recurrent_mask, zone_h, mask, recorder)
    if infer.wanted(recorder, (x, h0, weight_ih, weight_hh, bias_ih, bias_hh)):
        return infer.call("rnn_variant_infer", x, h0, weight_ih, weight_hh,
                          infer.combined_bias(bias_ih, bias_hh), nonlinearity == "relu",
                          recurrent_mask, zone_h, mask)
    inputs = (x, h0, weight_ih, weight_hh, combined_bias(bias_ih, bias_hh),
              nonlinearity == "relu", recurrent_mask, zone_h, mask)
    buffers = RNNVariantBuffers(*ops.run("rnn_variant_forward", recorder, inputs[:5], *inputs))
    return held_output(buffers.hiddens, mask), buffers.hiddens[x.shape[0]]
