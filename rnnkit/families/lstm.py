"""The LSTM family: declaration and how a layer runs one direction of it."""

from __future__ import annotations

from torch import nn

from rnnkit.cells.lstm import LSTM_GATES, lstm_cell
from rnnkit.families.base import Family, register
from rnnkit.variants import draw_masks


def run(impl, x, states, weights, variants, training, nonlinearity, mask, recorder):
    """One layer, one direction: (output, (h_n, c_n), tensors for the internals)."""
    if not variants.in_step:
        output, h_n, c_n, cells, gates = impl.plain(
            x, states[0], states[1], weights["weight_ih"], weights["weight_hh"],
            weights["bias_ih"], weights["bias_hh"], weights["weight_hr"], mask, recorder,
        )
        return output, (h_n, c_n), {"cells": cells, "gates": gates}
    recurrent, zone_h, zone_c = draw_masks(variants, training, x.shape[0], x.shape[1], states[0])
    output, h_n, c_n, cells, gates, normalized_ih, normalized_hh, normalized_cell = impl.variant(
        x, states[0], states[1], weights["weight_ih"], weights["weight_hh"], weights["bias_ih"],
        weights["bias_hh"], weights["ln_ih_weight"], weights["ln_ih_bias"],
        weights["ln_hh_weight"], weights["ln_hh_bias"], weights["ln_cell_weight"],
        weights["ln_cell_bias"], weights["peephole_weight"], recurrent, zone_h, zone_c,
        variants.coupled_gates, mask, recorder,
    )
    extras = {"cells": cells, "gates": gates, "normalized_ih": normalized_ih,
              "normalized_hh": normalized_hh, "normalized_cell": normalized_cell,
              "recurrent_mask": recurrent, "zoneout_hidden": zone_h, "zoneout_cell": zone_c}
    return output, (h_n, c_n), extras


LSTM_FAMILY = register(Family(
    name="LSTM",
    gates=LSTM_GATES,
    blocks=4,
    has_cell=True,
    keep_gate=1,
    chrono_write_gate=0,
    torch_twin=nn.LSTM,
    options=("layer_norm", "zoneout", "zoneout_cell", "recurrent_dropout", "weight_drop",
             "peephole", "coupled_gates"),
    projection=True,
    step=lstm_cell,
    run="rnnkit.families.lstm:run",
    reference={"plain": "rnnkit.bptt.lstm:lstm_sequence",
               "variant": "rnnkit.bptt.lstm_variants:LSTMVariantFunction.apply"},
    fused={"plain": "rnnkit.kernels.lstm:lstm_sequence",
           "variant": "rnnkit.kernels.lstm:lstm_variant"},
    stream="rnnkit.kernels.stream:lstm_stepper",
    cli={"lstm": None, "lstm-chrono": "chrono"},
    onnx=True,
))
