"""The vanilla RNN family: declaration and how a layer runs one direction of it."""

from __future__ import annotations

from torch import nn

from rnnkit.cells.rnn import rnn_cell
from rnnkit.families.base import Family, register
from rnnkit.variants import draw_masks


def run(impl, x, states, weights, variants, training, nonlinearity, mask, recorder):
    """One layer, one direction: (output, (h_n,), tensors for the internals)."""
    if not variants.in_step:
        output, h_n = impl.plain(
            x, states[0], weights["weight_ih"], weights["weight_hh"], weights["bias_ih"],
            weights["bias_hh"], nonlinearity, mask, recorder,
        )
        return output, (h_n,), {}
    recurrent, zone_h, _ = draw_masks(variants, training, x.shape[0], x.shape[1], states[0])
    output, h_n = impl.variant(
        x, states[0], weights["weight_ih"], weights["weight_hh"], weights["bias_ih"],
        weights["bias_hh"], nonlinearity, recurrent, zone_h, mask, recorder,
    )
    extras = {"recurrent_mask": recurrent, "zoneout_hidden": zone_h, "zoneout_cell": None}
    return output, (h_n,), extras


RNN_FAMILY = register(Family(
    name="RNN",
    gates=(),
    blocks=1,
    has_cell=False,
    keep_gate=None,
    torch_twin=nn.RNN,
    options=("zoneout", "recurrent_dropout", "weight_drop"),
    nonlinearity="tanh",
    step=rnn_cell,
    run="rnnkit.families.rnn:run",
    reference={"plain": "rnnkit.bptt.rnn:rnn_sequence",
               "variant": "rnnkit.bptt.rnn_variants:RNNVariantFunction.apply"},
    fused={"plain": "rnnkit.kernels.rnn:rnn_sequence",
           "variant": "rnnkit.kernels.rnn:rnn_variant"},
    stream="rnnkit.kernels.stream:rnn_stepper",
    cli={"rnn": None},
    title="vanilla RNN",
    onnx=True,
))
