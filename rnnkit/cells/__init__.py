"""The readable reference: one step of each recurrent family as a plain function.

These functions are the specification. Every other path in rnnkit (the hand-written backward
in ``rnnkit.bptt``, the fused kernels) is tested against a step-by-step loop over them.
"""

from rnnkit.cells.gru import GRU_GATES, gru_cell
from rnnkit.cells.lstm import LSTM_GATES, lstm_cell
from rnnkit.cells.rnn import rnn_cell

__all__ = ["GRU_GATES", "LSTM_GATES", "gru_cell", "lstm_cell", "rnn_cell"]
