"""rnnkit: RNN, GRU and LSTM layers you can read, run fast and look inside.

``from rnnkit import LSTM`` gives a drop-in ``torch.nn.LSTM`` whose backward pass through
time is written by hand and whose every state and gate is returned on request.
"""

from rnnkit.cell_layers import GRUCell, LSTMCell, RNNCell
from rnnkit.internals import DirectionInternals, Internals
from rnnkit.layers import GRU, LSTM, RNN, IndRNN
from rnnkit.quantization import quantize

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "IndRNN",
    "LSTM",
    "RNN",
    "DirectionInternals",
    "GRUCell",
    "Internals",
    "LSTMCell",
    "RNNCell",
    "quantize",
    "__version__",
]
