"""The LSTM variants of the fused backend, on the ``rnnkit::lstm_variant_forward`` operator.

``lstm_variant`` takes and returns exactly what
:class:`rnnkit.bptt.lstm_variants.LSTMVariantFunction` ``.apply`` does (same argument order,
same outputs, same recorder behaviour in eager mode); the loops inside are C++
(``csrc/lstm_variants*.cpp``). Inputs the kernels do not cover (a CUDA tensor, a dtype other than
float32/float64) go to the reference Function.
"""

from __future__ import annotations

from rnnkit.bptt.lstm_variants import LSTMVariantFunction
from rnnkit.kernels import ops
from rnnkit.kernels.ops import LSTMVariantBuffers, combined_bias, covered, held_output


def _detached(tensor):
    return None if tensor is None else tensor.detach()


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
        _detached(buffers.normalized_ih),
        _detached(buffers.normalized_hh),
        _detached(buffers.normalized_cell),
    )
