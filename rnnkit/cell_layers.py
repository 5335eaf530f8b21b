"""RNNCell, GRUCell and LSTMCell: one step at a time, drop-in for their torch.nn twins."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit import _validation as check
from rnnkit.cells import gru_cell, lstm_cell, rnn_cell
from rnnkit.cells.rnn import NONLINEARITIES


class _CellBase(nn.Module):
    gate_count = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = check.positive_int(name, "input_size", input_size)
        self.hidden_size = check.positive_int(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        factory = {"device": device, "dtype": dtype}
        gate_size = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gate_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gate_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gate_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def _prepare(self, input: Tensor, states) -> tuple[Tensor, list[Tensor], bool]:
        name = type(self).__name__
        check.input_dims(name, input, (1, 2), "(H_in) unbatched or (N, H_in)")
        check.feature_size(name, input, self.input_size)
        check.matching_tensor(name, "input", input, self.weight_ih)
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        batch = input.shape[0]
        prepared = []
        for state_name, state in states:
            if state is None:
                prepared.append(input.new_zeros(batch, self.hidden_size))
                continue
            expected = (batch, self.hidden_size) if batched else (self.hidden_size,)
            meaning = "(batch, hidden_size)" if batched else "(hidden_size) for unbatched input"
            check.state_shape(name, state_name, state, expected, meaning)
            check.matching_tensor(name, state_name, state, self.weight_ih)
            prepared.append(state if batched else state.unsqueeze(0))
        return input, prepared, batched


class RNNCell(_CellBase):
    r"""One vanilla RNN step, :math:`h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`.

    Arguments: input_size, hidden_size, bias=True, nonlinearity="tanh", device, dtype.
    Inputs: input ``(N, H_in)`` or ``(H_in)``, hx ``(N, H)`` or None. Output: h' ``(N, H)``.
    """

    def __init__(
        self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None
    ):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"RNNCell: `nonlinearity` must be one of {', '.join(NONLINEARITIES)}, "
                f"got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), batched = self._prepare(input, [("hx", hx)])
        h = rnn_cell(
            input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity
        )
        return h if batched else h.squeeze(0)


class GRUCell(_CellBase):
    """One GRU step (torch's variant); see :func:`rnnkit.cells.gru_cell` for the equations.

    Inputs: input ``(N, H_in)`` or ``(H_in)``, hx ``(N, H)`` or None. Output: h' ``(N, H)``.
    """

    gate_count = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), batched = self._prepare(input, [("hx", hx)])
        h, _ = gru_cell(input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase):
    """One LSTM step; see :func:`rnnkit.cells.lstm_cell` for the equations.

    Inputs: input ``(N, H_in)`` or ``(H_in)``, hx ``(h, c)`` each ``(N, H)``, or None.
    Output: ``(h', c')``.
    """

    gate_count = 4

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"LSTMCell: `hx` must be a tuple (h, c), got {type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        input, (h, c), batched = self._prepare(input, [("h", h), ("c", c)])
        h, c, _ = lstm_cell(input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))
