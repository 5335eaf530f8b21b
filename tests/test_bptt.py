"""gradcheck in float64 on every hand-written backward-through-time Function."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from rnnkit.bptt import gru_sequence, lstm_sequence, rnn_sequence

STEPS, BATCH, FEATURES, HIDDEN, PROJECTION = 5, 3, 4, 6, 3


def tensors(*shapes, scale=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        (scale * torch.randn(shape, dtype=torch.float64, generator=generator)).requires_grad_(True)
        for shape in shapes
    ]


def ragged_mask():
    """Sequence 0 runs all 5 steps, sequence 1 ends after 3, sequence 2 after 1."""
    mask = torch.ones(STEPS, BATCH, 1, dtype=torch.float64)
    mask[3:, 1] = 0
    mask[1:, 2] = 0
    return mask


MASKS = {"full": None, "ragged": ragged_mask()}


@pytest.mark.parametrize("mask", MASKS, ids=str)
@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_gradcheck(mask, projection, bias):
    out = PROJECTION if projection else HIDDEN
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr = tensors(
        (STEPS, BATCH, FEATURES),
        (BATCH, out),
        (BATCH, HIDDEN),
        (4 * HIDDEN, FEATURES),
        (4 * HIDDEN, out),
        (4 * HIDDEN,),
        (4 * HIDDEN,),
        (PROJECTION, HIDDEN),
    )
    args = (
        x,
        h0,
        c0,
        w_ih,
        w_hh,
        b_ih if bias else None,
        b_hh if bias else None,
        w_hr if projection else None,
    )

    def function(*inputs):
        return lstm_sequence(*inputs, mask=MASKS[mask])[:3]

    assert gradcheck(function, args)


@pytest.mark.parametrize("mask", MASKS, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_gru_gradcheck(mask, bias):
    x, h0, w_ih, w_hh, b_ih, b_hh = tensors(
        (STEPS, BATCH, FEATURES),
        (BATCH, HIDDEN),
        (3 * HIDDEN, FEATURES),
        (3 * HIDDEN, HIDDEN),
        (3 * HIDDEN,),
        (3 * HIDDEN,),
    )
    args = (x, h0, w_ih, w_hh, b_ih if bias else None, b_hh if bias else None)
    assert gradcheck(lambda *inputs: gru_sequence(*inputs, mask=MASKS[mask])[:2], args)


@pytest.mark.parametrize("mask", MASKS, ids=str)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_gradcheck(mask, nonlinearity):
    x, h0, w_ih, w_hh, b_ih, b_hh = tensors(
        (STEPS, BATCH, FEATURES),
        (BATCH, HIDDEN),
        (HIDDEN, FEATURES),
        (HIDDEN, HIDDEN),
        (HIDDEN,),
        (HIDDEN,),
        scale=0.5,
    )
    args = (x, h0, w_ih, w_hh, b_ih, b_hh)
    function = lambda *inputs: rnn_sequence(  # noqa: E731
        *inputs, nonlinearity=nonlinearity, mask=MASKS[mask]
    )
    assert gradcheck(function, args)


def test_masked_steps_hold_state_and_output_zero():
    """Past its end a sequence's state is held and its output is zero."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = tensors(
        (STEPS, BATCH, FEATURES),
        (BATCH, HIDDEN),
        (BATCH, HIDDEN),
        (4 * HIDDEN, FEATURES),
        (4 * HIDDEN, HIDDEN),
        (4 * HIDDEN,),
        (4 * HIDDEN,),
    )
    mask = ragged_mask()
    output, h_n, c_n, cells, _ = lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, mask)
    assert torch.equal(output[3:, 1], torch.zeros_like(output[3:, 1]))
    assert torch.equal(h_n[1], output[2, 1])
    assert torch.equal(c_n[2], cells[0, 2])
    short, h_short, c_short, _, _ = lstm_sequence(
        x[:3, 1:2], h0[1:2], c0[1:2], w_ih, w_hh, b_ih, b_hh
    )
    torch.testing.assert_close(h_n[1:2], h_short, rtol=0, atol=1e-12)
    torch.testing.assert_close(c_n[1:2], c_short, rtol=0, atol=1e-12)
