"""Bad input gets a message naming the argument, the shape received and the shape expected."""

from __future__ import annotations

import re

import pytest
import torch

import rnnkit


def raises(match: str):
    return pytest.raises(ValueError, match=re.escape(match))


def test_wrong_number_of_dimensions():
    with raises(
        "LSTM: expected `input` with 2 or 3 dimensions ((L, H_in) unbatched or (L, N, H_in)), "
        "got 4 dimensions with shape (2, 3, 4, 5)"
    ):
        rnnkit.LSTM(5, 8)(torch.randn(2, 3, 4, 5))
    with raises(
        "GRU: expected `input` with 2 or 3 dimensions ((L, H_in) unbatched or (N, L, H_in))"
    ):
        rnnkit.GRU(5, 8, batch_first=True)(torch.randn(5))


def test_wrong_feature_size():
    with raises(
        "RNN: `input` has 7 features in its last dimension (shape (4, 2, 7)), expected "
        "input_size=5 (shape (4, 2, 5))"
    ):
        rnnkit.RNN(5, 8)(torch.randn(4, 2, 7))


def test_initial_state_of_wrong_shape_or_batch():
    layer = rnnkit.LSTM(5, 8, num_layers=2)
    x = torch.randn(4, 3, 5)
    with raises(
        "LSTM: `h_0` has shape (1, 3, 8), expected (2, 3, 8) = "
        "(num_layers * num_directions, batch, hidden_size)"
    ):
        layer(x, (torch.zeros(1, 3, 8), torch.zeros(2, 3, 8)))
    with raises("LSTM: `c_0` has shape (2, 4, 8), expected (2, 3, 8)"):
        layer(x, (torch.zeros(2, 3, 8), torch.zeros(2, 4, 8)))
    with raises("LSTM: `hx` must be a tuple (h_0, c_0), got Tensor"):
        layer(x, torch.zeros(2, 3, 8))
    with raises(
        "GRU: `h_0` has shape (1, 3, 8), expected (1, 8) = "
        "(num_layers * num_directions, hidden_size) for unbatched input"
    ):
        rnnkit.GRU(5, 8)(torch.randn(4, 5), torch.zeros(1, 3, 8))
    with raises("LSTM: `h_0` has shape (2, 3, 8), expected (2, 3, 2)"):
        rnnkit.LSTM(5, 8, proj_size=2, bidirectional=True)(
            x, (torch.zeros(2, 3, 8), torch.zeros(2, 3, 8))
        )


def test_mismatched_dtype_and_device():
    with raises("LSTM: `input` has dtype torch.float64 but the parameters are torch.float32"):
        rnnkit.LSTM(5, 8)(torch.randn(4, 2, 5, dtype=torch.float64))
    with raises("GRU: `h_0` has dtype torch.float64 but the parameters are torch.float32"):
        rnnkit.GRU(5, 8)(torch.randn(4, 2, 5), torch.zeros(1, 2, 8, dtype=torch.float64))
    with raises("RNN: `input` is on device meta but the parameters are on cpu"):
        rnnkit.RNN(5, 8)(torch.empty(4, 2, 5, device="meta"))
    with raises("RNN: `input` must be a floating-point tensor, got dtype torch.int64"):
        rnnkit.RNN(5, 8)(torch.zeros(4, 2, 5, dtype=torch.long))


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5, "0.2"])
def test_dropout_outside_unit_interval(dropout):
    with raises(f"LSTM: `dropout` must be a probability in [0, 1), got {dropout!r}"):
        rnnkit.LSTM(5, 8, dropout=dropout)


@pytest.mark.parametrize("argument", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_non_positive_sizes(argument, value):
    kwargs = {"input_size": 5, "hidden_size": 8, "num_layers": 1, argument: value}
    with raises(f"GRU: `{argument}` must be a positive integer, got {value!r}"):
        rnnkit.GRU(**kwargs)


def test_other_constructor_errors():
    with raises("RNN: `nonlinearity` must be one of tanh, relu, got 'sigmoid'"):
        rnnkit.RNN(5, 8, nonlinearity="sigmoid")
    with raises("LSTM: `proj_size` must be smaller than hidden_size=8, got 8"):
        rnnkit.LSTM(5, 8, proj_size=8)
    with raises("LSTM: `proj_size` must be a non-negative integer, got -1"):
        rnnkit.LSTM(5, 8, proj_size=-1)
    with raises("backend must be one of auto, fused, reference; got 'cuda'"):
        rnnkit.LSTM(5, 8, backend="cuda")
    with raises("LSTMCell: `hidden_size` must be a positive integer, got 0"):
        rnnkit.LSTMCell(5, 0)


def test_cell_input_errors():
    cell = rnnkit.LSTMCell(5, 8)
    with raises(
        "LSTMCell: `input` has 4 features in its last dimension (shape (3, 4)), expected "
        "input_size=5"
    ):
        cell(torch.randn(3, 4))
    with raises("LSTMCell: `h` has shape (2, 8), expected (3, 8) = (batch, hidden_size)"):
        cell(torch.randn(3, 5), (torch.zeros(2, 8), torch.zeros(3, 8)))
    with raises(
        "GRUCell: expected `input` with 1 or 2 dimensions ((H_in) unbatched or (N, H_in)), "
        "got 3 dimensions"
    ):
        rnnkit.GRUCell(5, 8)(torch.randn(1, 3, 5))
