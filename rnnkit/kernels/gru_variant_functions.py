"""The GRU and RNN variants of the fused backend, on the ``rnnkit::gru_variant_forward`` and
``rnnkit::rnn_variant_forward`` operators.

``gru_variant`` and ``rnn_variant`` take and return exactly what
:class:`rnnkit.bptt.gru_variants.GRUVariantFunction` and ``RNNVariantFunction`` ``.apply`` do
(same argument order, same outputs, same recorder behaviour in eager mode); the loops inside are
C++ (``csrc/gru_variants*.cpp``, ``csrc/rnn_variants.cpp``). Inputs the kernels do not cover (a
CUDA tensor, a dtype other than float32/float64) go to the reference Functions.
"""

from __future__ import annotations

from rnnkit.bptt.gru_variants import GRUVariantFunction, RNNVariantFunction
from rnnkit.kernels import ops
from rnnkit.kernels.ops import (
    GRUVariantBuffers,
    RNNVariantBuffers,
    combined_bias,
    covered,
    held_output,
)
from rnnkit.kernels.variant_functions import _detached


def gru_variant(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
                ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask, recorder):
    """``GRUVariantFunction.apply`` on the fused operator: (output, h_n, gates, normalized_ih,
    normalized_hh), all after h_n detached."""
    inputs = (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, ln_ih_weight, ln_ih_bias,
              ln_hh_weight, ln_hh_bias, recurrent_mask, zone_h, mask)
    if not covered(x):
        return GRUVariantFunction.apply(*inputs, recorder)
    buffers = GRUVariantBuffers(*ops.run("gru_variant_forward", recorder, inputs[:10], *inputs))
    return (
        held_output(buffers.hiddens, mask),
        buffers.hiddens[x.shape[0]],
        buffers.gates.detach(),
        _detached(buffers.normalized_ih),
        _detached(buffers.normalized_hh),
    )


def rnn_variant(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity, recurrent_mask,
                zone_h, mask, recorder):
    """``RNNVariantFunction.apply`` on the fused operator: (output, h_n)."""
    if not covered(x):
        return RNNVariantFunction.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh,
                                        nonlinearity, recurrent_mask, zone_h, mask, recorder)
    inputs = (x, h0, weight_ih, weight_hh, combined_bias(bias_ih, bias_hh),
              nonlinearity == "relu", recurrent_mask, zone_h, mask)
    buffers = RNNVariantBuffers(*ops.run("rnn_variant_forward", recorder, inputs[:5], *inputs))
    return held_output(buffers.hiddens, mask), buffers.hiddens[x.shape[0]]
