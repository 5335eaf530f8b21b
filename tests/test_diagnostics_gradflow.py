"""Gradient flow read from the layers' internals equals autograd on a hand-unrolled loop."""

from __future__ import annotations

import pytest
import torch

from rnnkit import GRU, LSTM, RNN
from rnnkit.cells import gru_cell, lstm_cell, rnn_cell
from rnnkit.diagnostics.gradflow import decay_per_step, from_internals, measure, norms_over_time
from rnnkit.tasks import make_task
from rnnkit.tasks.experiment import initial_gradient_flow

STEPS, BATCH, INPUT, HIDDEN = 12, 3, 4, 5


def unrolled(mode: str, layer, x):
    """Autograd through a loop over the reference cell; every h_t (and c_t) keeps its .grad."""
    weights = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0]
    h = torch.zeros(BATCH, HIDDEN, dtype=x.dtype)
    c = torch.zeros_like(h)
    hidden, cells = [], []
    for x_t in x:
        if mode == "LSTM":
            h, c, _ = lstm_cell(x_t, h, c, *weights)
            c.retain_grad()
            cells.append(c)
        elif mode == "GRU":
            h, _ = gru_cell(x_t, h, *weights)
        else:
            h = rnn_cell(x_t, h, *weights)
        h.retain_grad()
        hidden.append(h)
    return hidden, cells


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_internals_gradients_equal_autograd_on_unrolled_cells(mode):
    torch.manual_seed(0)
    layer = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}[mode](INPUT, HIDDEN, backend="reference")
    layer = layer.double()
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    readout = torch.randn(HIDDEN, dtype=torch.float64)

    output, _, internals = layer(x, return_internals=True)
    (output[-1] @ readout).pow(2).sum().backward()  # the loss sits at the last step
    hidden, cells = unrolled(mode, layer, x)
    (hidden[-1] @ readout).pow(2).sum().backward()

    expected_hidden = torch.stack([h.grad for h in hidden])  # (T, N, H)
    torch.testing.assert_close(internals[0][0].hidden_grad, expected_hidden, rtol=1e-9, atol=0)
    flow = from_internals(internals[0][0], mode)
    expected_norms = expected_hidden.norm(dim=-1).mean(dim=1).flip(0)
    torch.testing.assert_close(torch.tensor(flow.hidden_norm, dtype=torch.float64),
                               expected_norms, rtol=1e-9, atol=0)
    assert flow.hidden_norm[0] > flow.hidden_norm[-1] > 0
    if mode == "LSTM":
        expected_cells = torch.stack([c.grad for c in cells])
        torch.testing.assert_close(internals[0][0].cell_grad, expected_cells, rtol=1e-9, atol=0)
        torch.testing.assert_close(torch.tensor(flow.cell_norm, dtype=torch.float64),
                                   expected_cells.norm(dim=-1).mean(dim=1).flip(0),
                                   rtol=1e-9, atol=0)
    else:
        assert flow.cell_norm is None and flow.cell_decay is None


def test_decay_per_step_recovers_a_geometric_rate():
    norms = 3.0 * torch.tensor(0.8, dtype=torch.float64) ** torch.arange(40)
    assert decay_per_step(norms) == pytest.approx(0.8, rel=1e-9)
    with_zeros = torch.cat([norms[:20], torch.zeros(5)])  # underflow: fitted where positive
    assert decay_per_step(with_zeros) == pytest.approx(0.8, rel=1e-9)


def test_norms_over_time_layouts():
    grad = torch.randn(7, 3, 5)
    expected = grad.norm(dim=-1).mean(dim=1)
    torch.testing.assert_close(norms_over_time(grad), expected)
    torch.testing.assert_close(norms_over_time(grad.transpose(0, 1), batch_first=True), expected)
    torch.testing.assert_close(norms_over_time(grad[:, 0]), grad[:, 0].norm(dim=-1))


def test_measure_leaves_no_parameter_gradients():
    layer = LSTM(2, 4, backend="reference")
    x = torch.randn(6, 2, 2)
    flow = measure(lambda: layer(x, return_internals=True)[::2], lambda out: out[-1].sum(),
                   "probe", list(layer.parameters()))
    assert all(parameter.grad is None for parameter in layer.parameters())
    assert len(flow.hidden_norm) == 6 and len(flow.cell_norm) == 6


def test_rnn_forgets_and_chrono_lstm_remembers_at_initialisation():
    """The issue's picture, at T=200: the RNN's signal is orders of magnitude smaller 50
    steps back; the chrono LSTM's cell-state gradient stays within one order of magnitude."""
    flows = initial_gradient_flow(["rnn", "lstm", "lstm-chrono"], "adding", 200, batch=32,
                                  backend="reference")
    assert flows["rnn"].ratio(50) < 1e-4
    assert flows["lstm"].ratio(50, "cell") < 1e-4  # default forget gate ~0.5: fades like the RNN
    assert flows["lstm-chrono"].spread("cell") < 10
    assert flows["lstm-chrono"].cell_decay > 0.98 > flows["rnn"].hidden_decay
    assert make_task("adding", 200).sequence_length == len(flows["rnn"].hidden_norm)
