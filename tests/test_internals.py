"""Internals equal a plain step-by-step loop over the reference cells, in the caller's layout."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.cells.gru import gru_reference_loop
from rnnkit.cells.lstm import lstm_reference_loop
from rnnkit.cells.rnn import rnn_reference_loop


def weights(layer, index, suffix=""):
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"]
    return [getattr(layer, f"{name}_l{index}{suffix}", None) for name in names]


def test_lstm_internals_equal_reference_loop():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 5, num_layers=2, proj_size=2).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    _, _, internals = layer(x, return_internals=True)
    layer_input = x
    for index in range(2):
        zeros_h = x.new_zeros(4, 2)
        zeros_c = x.new_zeros(4, 5)
        outputs, _, _, cells, gates = lstm_reference_loop(
            layer_input, zeros_h, zeros_c, *weights(layer, index)
        )
        found = internals[index][0]
        torch.testing.assert_close(found.hidden, outputs, rtol=0, atol=1e-12)
        torch.testing.assert_close(found.cell, cells, rtol=0, atol=1e-12)
        for name, values in gates.items():
            torch.testing.assert_close(found.gates[name], values, rtol=0, atol=1e-12)
        layer_input = outputs


def test_gru_and_rnn_internals_equal_reference_loop():
    torch.manual_seed(1)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    gru = rnnkit.GRU(3, 4).double()
    output, _, internals = gru(x, return_internals=True)
    outputs, _, gates = gru_reference_loop(x, x.new_zeros(2, 4), *weights(gru, 0)[:4])
    torch.testing.assert_close(internals.last.hidden, outputs, rtol=0, atol=1e-12)
    assert internals.last.cell is None
    for name in ("reset", "update", "new"):
        torch.testing.assert_close(internals.gate(name), gates[name], rtol=0, atol=1e-12)
    rnn = rnnkit.RNN(3, 4, nonlinearity="relu").double()
    _, _, internals = rnn(x, return_internals=True)
    outputs, _ = rnn_reference_loop(x, x.new_zeros(2, 4), *weights(rnn, 0)[:4], "relu")
    torch.testing.assert_close(internals.last.hidden, outputs, rtol=0, atol=1e-12)
    assert internals.last.gates == {}


def test_reverse_direction_packed_batch_first_internals():
    """Reverse direction of a packed, unsorted, batch_first batch: the caller's order, zeros past
    each end, and step t holding the state after reading x_t from the right."""
    torch.manual_seed(2)
    layer = rnnkit.LSTM(3, 4, bidirectional=True, batch_first=True).double()
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([4, 6, 2])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, _, internals = layer(packed, return_internals=True)
    backward = internals[0][1]
    assert backward.hidden.shape == (3, 6, 4)
    for b, length in enumerate(lengths.tolist()):
        sequence = x[b, :length].flip(0).unsqueeze(1)  # (L, 1, 3), read from the right
        outputs, _, _, cells, gates = lstm_reference_loop(
            sequence, x.new_zeros(1, 4), x.new_zeros(1, 4), *weights(layer, 0, "_reverse")
        )
        torch.testing.assert_close(
            backward.hidden[b, :length], outputs[:, 0].flip(0), rtol=0, atol=1e-12
        )
        torch.testing.assert_close(
            backward.cell[b, :length], cells[:, 0].flip(0), rtol=0, atol=1e-12
        )
        torch.testing.assert_close(
            backward.gates["forget"][b, :length], gates["forget"][:, 0].flip(0), rtol=0, atol=1e-12
        )
        assert not backward.hidden[b, length:].any()
        assert not backward.gates["input"][b, length:].any()


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_gradient_flow_equals_autograd_on_unrolled_loop(mode):
    """hidden_grad / cell_grad after backward equal dL/dh_t, dL/dc_t from autograd on a loop."""
    torch.manual_seed(3)
    layer = getattr(rnnkit, mode)(3, 4).double()
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    output, _, internals = layer(x, return_internals=True)
    target = torch.randn(2, 4, dtype=torch.float64)
    ((output[-1] - target) ** 2).sum().backward()  # the loss sits at the last step

    from rnnkit.cells import gru_cell, lstm_cell, rnn_cell

    w = weights(layer, 0)
    h = x.new_zeros(2, 4)
    c = x.new_zeros(2, 4)
    hiddens, cells = [], []
    for x_t in x:
        if mode == "LSTM":
            h, c, _ = lstm_cell(x_t, h, c, *w)
            c.retain_grad()
            cells.append(c)
        elif mode == "GRU":
            h, _ = gru_cell(x_t, h, *w[:4])
        else:
            h = rnn_cell(x_t, h, *w[:4])
        h.retain_grad()
        hiddens.append(h)
    ((hiddens[-1] - target) ** 2).sum().backward()
    expected = torch.stack([h.grad for h in hiddens])
    torch.testing.assert_close(internals.last.hidden_grad, expected, rtol=1e-10, atol=1e-12)
    if mode == "LSTM":
        expected_cells = torch.stack([c.grad for c in cells])
        torch.testing.assert_close(internals.last.cell_grad, expected_cells, rtol=1e-10, atol=1e-12)


def test_unbatched_internals_shapes():
    layer = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True)
    output, h_n, internals = layer(torch.randn(5, 3), return_internals=True)
    assert output.shape == (5, 8) and h_n.shape == (4, 4)
    assert len(internals) == 2 and len(internals[1]) == 2
    assert internals[1][1].gates["update"].shape == (5, 4)
    with pytest.raises(KeyError, match="reset"):
        internals.gate("forget")
