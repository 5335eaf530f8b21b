"""The IndRNN family (Li et al. 2018, arXiv 1803.04831): declaration and how a layer runs one
direction of it. Its layer is :class:`rnnkit.IndRNN`."""

from __future__ import annotations

from rnnkit.cells.indrnn import indrnn_cell
from rnnkit.families.base import Family, register


def run(impl, x, states, weights, variants, training, nonlinearity, mask, recorder):
    """One layer, one direction: (output, (h_n,), no extra tensors). The family takes no
    in-step variants (``options`` is empty, so the layer refuses them)."""
    output, h_n = impl.plain(
        x, states[0], weights["weight_ih"], weights["weight_hh"], weights["bias_ih"],
        weights["bias_hh"], nonlinearity, mask, recorder,
    )
    return output, (h_n,), {}


INDRNN_FAMILY = register(Family(
    name="IndRNN",
    gates=(),
    blocks=1,
    has_cell=False,
    keep_gate=None,
    torch_twin=None,
    options=(),
    nonlinearity="relu",
    step=indrnn_cell,
    run="rnnkit.families.indrnn:run",
    reference={"plain": "rnnkit.bptt.indrnn:indrnn_sequence"},
    fused={"plain": "rnnkit.kernels.indrnn:indrnn_sequence"},
    recurrent_shape=lambda rows, out: (rows,),  # u: one recurrent weight per unit
    cli={"indrnn": None},
    memory_option="recurrent_max_len",
    # a unit sees only itself, so selecting the marked values (u near 0) and adding them up
    # (u near 1) take a layer each: the paper's two layers for the adding problem
    task_layers=2,
))
