"""The IndRNN's fused backend: ``indrnn_sequence`` on the ``rnnkit::indrnn_*`` operators
(``csrc/indrnn.cpp``), taking and returning exactly what :func:`rnnkit.bptt.indrnn.indrnn_sequence`
does: (output, h_n). Their fakes and autograd formula are defined here, through
:func:`rnnkit.kernels.ops.define`, so torch.compile and torch.export see the operators too.
Inputs the kernels do not cover (a CUDA tensor, a dtype other than float32/float64) go to the
reference function.
"""

from __future__ import annotations

from torch import Tensor

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.indrnn import indrnn_sequence as reference_sequence
from rnnkit.kernels import ops
from rnnkit.kernels.ops import RNNGrads, combined_bias, covered, held_output


def _fake_forward(x, h0, weight_ih, weight_hh, bias, relu, mask):
    return x.new_empty(x.shape[0] + 1, x.shape[1], h0.shape[1])


def _fake_backward(grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, relu, record,
                   has_bias, needs):
    steps, batch, hidden = hiddens.shape[0] - 1, hiddens.shape[1], hiddens.shape[2]
    return (
        hiddens.new_empty(steps, batch, x.shape[2]) if needs[0] else None,
        hiddens.new_empty(batch, hidden),
        hiddens.new_empty(*weight_ih.shape) if needs[1] else None,
        hiddens.new_empty(hidden) if needs[2] else None,
        hiddens.new_empty(hidden) if has_bias and needs[3] else None,
        hiddens.new_empty(steps, batch, hidden) if record else None,
    )


def _setup(ctx, inputs, output):
    x, _h0, weight_ih, weight_hh, bias, relu, mask = inputs
    ctx.save_for_backward(x, weight_ih, weight_hh, output, mask)
    ctx.has_bias, ctx.relu = bias is not None, relu


def _call(ctx, needs, record, grad_hiddens) -> RNNGrads:
    x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
    grad_output, grad_h_n = ops._last_steps(grad_hiddens, mask)
    return RNNGrads(*ops.kernels.indrnn_backward(
        grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, ctx.relu, record,
        ctx.has_bias, [needs[0], needs[2], needs[3], needs[4]],
    ))


def _grads(grads: RNNGrads, needs) -> tuple:
    return (grads.grad_x, ops._gated(grads.grad_h0, needs[1]), grads.grad_weight_ih,
            grads.grad_weight_hh, grads.grad_bias, None, None)


ops.define("indrnn_forward", "indrnn_backward", _fake_forward, _fake_backward, _setup, _call,
           _grads)


def indrnn_sequence(
    x: Tensor,
    h0: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "relu",
    mask: Tensor | None = None,
    recorder: GradientRecorder | None = None,
):
    """:func:`rnnkit.bptt.indrnn.indrnn_sequence` on ``rnnkit::indrnn_forward``: (output, h_n)."""
    if not covered(x):
        return reference_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity,
                                  mask, recorder)
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", mask)
    hiddens = ops.run("indrnn_forward", recorder, inputs[:5], *inputs)
    return held_output(hiddens, mask), hiddens[x.shape[0]]
