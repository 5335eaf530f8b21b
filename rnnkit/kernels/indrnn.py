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
from rnnkit.kernels import infer, ops
from rnnkit.kernels.ops import RNNGrads, combined_bias, covered, held_output


def _call(ctx, needs, record, grad_hiddens) -> RNNGrads:
    x, weight_ih, weight_hh, hiddens, mask = ctx.saved_tensors
    grad_output, grad_h_n = ops._last_steps(grad_hiddens, mask)
    return RNNGrads(*ops.kernels.indrnn_backward(
        grad_output, grad_h_n, x, weight_ih, weight_hh, hiddens, mask, ctx.relu, record,
        ctx.has_bias, [needs[0], needs[2], needs[3], needs[4]],
    ))


# the operators take the RNN's arguments and return its buffers and gradients (u's gradient
# has u's shape), so their fakes, saved tensors and gradient routing are the RNN's; only the
# backward operator called differs
ops.define("indrnn_forward", "indrnn_backward", ops._fake_rnn_forward, ops._fake_rnn_backward,
           ops._setup_rnn, _call, ops._grads_rnn)


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
    if infer.wanted(recorder, (x, h0, weight_ih, weight_hh, bias_ih, bias_hh)):
        return infer.call("indrnn_infer", x, h0, weight_ih, weight_hh,
                          infer.combined_bias(bias_ih, bias_hh), nonlinearity == "relu", mask)
    bias = combined_bias(bias_ih, bias_hh)
    inputs = (x, h0, weight_ih, weight_hh, bias, nonlinearity == "relu", mask)
    hiddens = ops.run("indrnn_forward", recorder, inputs[:5], *inputs)
    return held_output(hiddens, mask), hiddens[x.shape[0]]
