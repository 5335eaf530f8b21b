"""What code written for torch.nn's recurrent layers calls: flatten_parameters(), all_weights,
a repr that builds the same layer again, and short reprs of the internals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

CASES = [
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
    ("LSTM", {"bias": False}),
    ("GRU", {"num_layers": 2}),
    ("RNN", {"bidirectional": True, "nonlinearity": "relu"}),
]


@pytest.mark.parametrize("name,options", CASES)
def test_all_weights_match_torch_nn(name, options):
    twin = getattr(nn, name)(3, 4, **options)
    layer = getattr(rnnkit, name)(3, 4, **options)
    layer.load_state_dict(twin.state_dict())
    ours, theirs = layer.all_weights, twin.all_weights
    assert len(ours) == len(theirs)
    for mine, torch_group in zip(ours, theirs):
        assert [tuple(p.shape) for p in mine] == [tuple(p.shape) for p in torch_group]
        for parameter, expected in zip(mine, torch_group):
            assert isinstance(parameter, nn.Parameter)
            torch.testing.assert_close(parameter, expected, rtol=0, atol=0)


def test_flatten_parameters_changes_nothing():
    layer = rnnkit.GRU(3, 4)
    x = torch.randn(5, 2, 3)
    before = layer(x)[0]
    assert layer.flatten_parameters() is None
    torch.testing.assert_close(layer(x)[0], before, rtol=0, atol=0)


@pytest.mark.parametrize("text", [
    "LSTM(3, 4, num_layers=2, bidirectional=True, zoneout=(0.1, 0.05))",
    "LSTM(3, 4, zoneout=0.1, layer_norm=True, peephole=True)",
    "GRU(3, 4, batch_first=True, zoneout=0.2, recurrent_dropout=0.1)",
    "RNN(3, 4, nonlinearity='relu', weight_drop=0.3)",
    "LSTM(3, 4, init='chrono', chrono_max_len=50)",
    "IndRNN(3, 4, nonlinearity='tanh', recurrent_max_len=100)",
])
def test_repr_builds_the_same_layer(text):
    layer = eval("rnnkit." + text)  # the user's own constructor call
    assert repr(layer) == text
    again = eval("rnnkit." + repr(layer))
    assert repr(again) == repr(layer) and again.variants == layer.variants


def test_internals_repr_is_short_and_names_the_shapes():
    layer = rnnkit.LSTM(3, 64, num_layers=2, bidirectional=True)
    _, _, internals = layer(torch.randn(50, 8, 3), return_internals=True)
    text = repr(internals)
    assert len(text) < 400, text
    assert text.startswith("Internals(2 layer(s) x 2 direction(s);")
    assert "hidden=(50, 8, 64)" in text and "forget: (50, 8, 64)" in text
    assert "tensor(" not in text and "tensor(" not in repr(internals[0][1])
