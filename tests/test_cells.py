"""RNNCell, GRUCell and LSTMCell give torch.nn's numbers, batched and unbatched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

CELLS = [
    ("RNNCell", {"nonlinearity": "tanh"}),
    ("RNNCell", {"nonlinearity": "relu"}),
    ("GRUCell", {}),
    ("LSTMCell", {}),
    ("LSTMCell", {"bias": False}),
]


@pytest.mark.parametrize("name,kwargs", CELLS, ids=[f"{c[0]}{c[1]}" for c in CELLS])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(name, kwargs, batched):
    torch.manual_seed(0)
    original = getattr(nn, name)(3, 4, **kwargs).double()
    ours = getattr(rnnkit, name)(3, 4, **kwargs).double()
    ours.load_state_dict(original.state_dict())
    shape = (2, 3) if batched else (3,)
    state_shape = (2, 4) if batched else (4,)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    state = torch.randn(state_shape, dtype=torch.float64, requires_grad=True)
    hx = (state, state * 0.5) if name == "LSTMCell" else state
    expected = original(x, hx)
    actual = ours(x, hx)
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = actual if isinstance(actual, tuple) else (actual,)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    grads_expected = torch.autograd.grad(
        sum(t.sum() * (i + 1) for i, t in enumerate(expected)),
        [x, state, *original.parameters()],
        retain_graph=True,
    )
    grads_actual = torch.autograd.grad(
        sum(t.sum() * (i + 1) for i, t in enumerate(actual)), [x, state, *ours.parameters()]
    )
    for e, a in zip(grads_expected, grads_actual):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    zero_state = ours(x)
    expected_zero = original(x)
    first = zero_state[0] if isinstance(zero_state, tuple) else zero_state
    first_expected = expected_zero[0] if isinstance(expected_zero, tuple) else expected_zero
    torch.testing.assert_close(first, first_expected, rtol=1e-12, atol=1e-12)
