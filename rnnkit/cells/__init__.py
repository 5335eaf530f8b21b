"""The readable reference: one step of each recurrent family as a plain function.

These functions are the specification, variants included (layer norm, peepholes, coupled
gates, recurrent dropout, zoneout, as keyword options whose defaults give the plain cell).
Every other path in rnnkit (the hand-written backward in ``rnnkit.bptt``, the fused kernels)
is tested against a step-by-step loop over them (``tests/cell_loop.py``).
"""

from rnnkit.cells.common import LAYER_NORM_EPS, layer_norm, zoneout
from rnnkit.cells.gru import GRU_GATES, gru_cell
from rnnkit.cells.lstm import LSTM_GATES, lstm_cell
from rnnkit.cells.rnn import rnn_cell

__all__ = [
    "GRU_GATES",
    "LAYER_NORM_EPS",
    "LSTM_GATES",
    "gru_cell",
    "layer_norm",
    "lstm_cell",
    "rnn_cell",
    "zoneout",
]
