"""Forget-gate bias and chrono initialisation set the biases the papers describe."""

from __future__ import annotations

import math

import pytest
import torch

import rnnkit
from rnnkit.init import chrono_init, forget_bias


def test_forget_bias_sets_the_sum_of_both_biases():
    layer = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True)
    forget_bias(layer, 2.5)
    for suffix in ("l0", "l1", "l0_reverse", "l1_reverse"):
        total = getattr(layer, f"bias_ih_{suffix}") + getattr(layer, f"bias_hh_{suffix}")
        assert torch.equal(total[4:8], torch.full((4,), 2.5))
    x = torch.zeros(1, 1, 3)
    _, _, internals = layer(x, return_internals=True)
    expected = torch.sigmoid(torch.tensor(2.5))
    torch.testing.assert_close(internals[0][0].gates["forget"][0, 0], expected.expand(4))


def test_chrono_init_spreads_time_scales():
    layer = rnnkit.LSTM(3, 200)
    chrono_init(layer, max_len=100, generator=torch.Generator().manual_seed(0))
    forget = layer.bias_ih_l0[200:400] + layer.bias_hh_l0[200:400]
    input = layer.bias_ih_l0[:200] + layer.bias_hh_l0[:200]
    assert forget.min() >= 0 and forget.max() <= math.log(99) + 1e-6
    assert forget.max() > math.log(60)  # spread towards max_len, not clustered
    torch.testing.assert_close(input, -forget)
    gru = chrono_init(rnnkit.GRU(3, 50), max_len=10)
    update = gru.bias_ih_l0[50:100] + gru.bias_hh_l0[50:100]
    assert update.min() >= 0 and update.max() <= math.log(9) + 1e-6


def test_init_errors():
    with pytest.raises(ValueError, match="RNN has no forget/update gate"):
        forget_bias(rnnkit.RNN(3, 4))
    with pytest.raises(ValueError, match="bias=False"):
        chrono_init(rnnkit.LSTM(3, 4, bias=False), max_len=10)
    with pytest.raises(ValueError, match="`max_len` must be at least 3, got 2"):
        chrono_init(rnnkit.LSTM(3, 4), max_len=2)
