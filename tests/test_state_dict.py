"""State dicts load both ways between torch.nn and rnnkit, with the same outputs after."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

CASES = [
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 3}),
    ("GRU", {"num_layers": 2, "bidirectional": True, "bias": False}),
    ("RNN", {"nonlinearity": "relu", "num_layers": 3}),
]


@pytest.mark.parametrize("mode,kwargs", CASES, ids=[c[0] for c in CASES])
def test_state_dict_round_trip(mode, kwargs):
    torch.manual_seed(0)
    original = getattr(nn, mode)(4, 6, **kwargs)
    ours = getattr(rnnkit, mode)(4, 6, **kwargs)
    assert list(ours.state_dict()) == list(original.state_dict())
    ours.load_state_dict(original.state_dict())  # strict: same names and shapes
    back = getattr(nn, mode)(4, 6, **kwargs)
    back.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 4)
    for expected, actual in zip(original(x), ours(x)):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    for expected, actual in zip(original(x), back(x)):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_seeded_init_draws_torch_numbers(mode):
    torch.manual_seed(5)
    expected = getattr(nn, mode)(3, 7, num_layers=2, bidirectional=True).state_dict()
    torch.manual_seed(5)
    actual = getattr(rnnkit, mode)(3, 7, num_layers=2, bidirectional=True).state_dict()
    for name in expected:
        assert torch.equal(actual[name], expected[name]), name


def test_cell_state_dicts_load_both_ways():
    for name in ("RNNCell", "GRUCell", "LSTMCell"):
        original = getattr(nn, name)(3, 5)
        ours = getattr(rnnkit, name)(3, 5)
        ours.load_state_dict(original.state_dict())
        getattr(nn, name)(3, 5).load_state_dict(ours.state_dict())


def test_dropout_between_layers_is_active_only_in_training():
    torch.manual_seed(0)
    original = nn.LSTM(4, 6, num_layers=2, dropout=0.5)
    ours = rnnkit.LSTM(4, 6, num_layers=2, dropout=0.5)
    ours.load_state_dict(original.state_dict())
    x = torch.randn(5, 3, 4)
    original.eval()
    ours.eval()
    torch.testing.assert_close(ours(x)[0], original(x)[0], rtol=1e-5, atol=1e-5)
    ours.train()
    torch.manual_seed(1)
    first = ours(x)[0]
    torch.manual_seed(1)
    again = ours(x)[0]
    torch.manual_seed(2)
    other = ours(x)[0]
    assert torch.equal(first, again)  # the masks come from the torch RNG
    assert not torch.allclose(first, other)
    assert not torch.allclose(first, original(x)[0], atol=1e-3)
