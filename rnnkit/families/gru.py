"""The GRU family: declaration and how a layer runs one direction of it."""

from __future__ import annotations

from torch import nn

from rnnkit.cells.gru import GRU_GATES, gru_cell
from rnnkit.families.base import Family, register
from rnnkit.variants import draw_masks


def run(impl, x, states, weights, variants, training, nonlinearity, mask, recorder):
    """One layer, one direction: (output, (h_n,), tensors for the internals)."""
    if not variants.in_step:
        output, h_n, gates = impl.plain(
            x, states[0], weights["weight_ih"], weights["weight_hh"], weights["bias_ih"],
            weights["bias_hh"], mask, recorder,
        )
        return output, (h_n,), {"gates": gates}
    recurrent, zone_h, _ = draw_masks(variants, training, x.shape[0], x.shape[1], states[0])
    output, h_n, gates, normalized_ih, normalized_hh = impl.variant(
        x, states[0], weights["weight_ih"], weights["weight_hh"], weights["bias_ih"],
        weights["bias_hh"], weights["ln_ih_weight"], weights["ln_ih_bias"],
        weights["ln_hh_weight"], weights["ln_hh_bias"], recurrent, zone_h, mask, recorder,
    )
    extras = {"gates": gates, "normalized_ih": normalized_ih, "normalized_hh": normalized_hh,
              "recurrent_mask": recurrent, "zoneout_hidden": zone_h, "zoneout_cell": None}
    return output, (h_n,), extras


GRU_FAMILY = register(Family(
    name="GRU",
    gates=GRU_GATES,
    blocks=3,
    has_cell=False,
    keep_gate=1,
    torch_twin=nn.GRU,
    options=("layer_norm", "zoneout", "recurrent_dropout", "weight_drop"),
    step=gru_cell,
    run="rnnkit.families.gru:run",
    reference={"plain": "rnnkit.bptt.gru:gru_sequence",
               "variant": "rnnkit.bptt.gru_variants:GRUVariantFunction.apply"},
    fused={"plain": "rnnkit.kernels.gru:gru_sequence",
           "variant": "rnnkit.kernels.gru:gru_variant"},
    stream="rnnkit.kernels.stream:gru_stepper",
    cli={"gru": None, "gru-chrono": "chrono"},
    onnx=True,
))
