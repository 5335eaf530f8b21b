"""The hand-written backward pass through time, in torch ops: one autograd.Function per family.

Forward runs one GEMM for the input projection of all timesteps, then per step one recurrent
GEMM and the pointwise gate math, saving the post-activation gates. Backward walks time in
reverse and ends with time-batched GEMMs for the weight gradients and the input gradient.

All functions here are time-major and single-direction: ``x`` is ``(T, N, H_in)``; a reverse
direction or variable lengths are the caller's business (``mask`` holds a sequence's state
still past its end and zeroes its outputs there).
"""

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.gru import GRUFunction, gru_sequence
from rnnkit.bptt.lstm import LSTMFunction, lstm_sequence
from rnnkit.bptt.rnn import RNNFunction, rnn_sequence

__all__ = [
    "GRUFunction",
    "GradientRecorder",
    "LSTMFunction",
    "RNNFunction",
    "gru_sequence",
    "lstm_sequence",
    "rnn_sequence",
]
