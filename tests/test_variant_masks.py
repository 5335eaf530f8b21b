"""Zoneout and recurrent dropout against their papers, checked without trusting the layer.

tests/test_variants.py feeds the layer's own masks to the plain equations, so a mask drawn
with the wrong probability (or with "keep" and "drop" swapped) would pass there. Here, on a
large batch (256 x 64 units, float64), on both backends:

- the masks the layer reports take only the paper's values and occur at the asked rate p
  (within 5 standard errors): zoneout keeps the previous state with probability p (Krueger
  et al. 2016, arXiv 1606.01305); recurrent dropout zeroes a unit with probability p and
  scales the kept ones by 1/(1-p) (Gal & Ghahramani 2016, arXiv 1512.05287);
- the share of units whose h_t (c_t) equals h_{t-1} (c_{t-1}) in the layer's OUTPUT is p;
- the share of units of h_0 that do not reach the first step's output (read from its
  gradient) is p, and the others reach it 1/(1-p) times as strongly as without dropout;
- in eval, zoneout is its expectation, h_t = p h_{t-1} + (1-p) h_new (c likewise with p_c),
  and recurrent dropout is the identity: the layer equals a step loop over torch.nn cells.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import rnnkit

DTYPE = torch.float64
STEPS, BATCH, FEATURES, HIDDEN = 4, 256, 8, 64
P_H, P_C, P_DROP = 0.2, 0.45, 0.3  # none is 0.5: p and 1 - p must give different numbers
LAYERS = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "RNN": rnnkit.RNN}
CELLS = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell, "RNN": nn.RNNCell}
BACKENDS = ["reference", "fused"]
# fused: skipped where the kernels do not build, and failing unless a C++ kernel ran
CASES = [pytest.param(mode, backend, marks=[pytest.mark.fused] if backend == "fused" else [])
         for mode in LAYERS for backend in BACKENDS]


def zoneout_of(mode):
    return (P_H, P_C) if mode == "LSTM" else P_H


def make_layer(mode, backend, seed=0, **options):
    torch.manual_seed(seed)
    return LAYERS[mode](FEATURES, HIDDEN, backend=backend, **options).to(DTYPE)


def nn_cell(mode, layer):
    """The torch.nn cell with the layer's weights."""
    cell = CELLS[mode](FEATURES, HIDDEN).to(DTYPE)
    cell.load_state_dict({name[: -len("_l0")]: value for name, value in
                          layer.state_dict().items()})
    return cell


def inputs(mode, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=DTYPE, generator=generator)
    states = [torch.randn(1, BATCH, HIDDEN, dtype=DTYPE, generator=generator)
              for _ in range(2 if mode == "LSTM" else 1)]
    return x, (tuple(states) if mode == "LSTM" else states[0])


def assert_rate(share, p, count, what):
    """``share`` of ``count`` Bernoulli(p) draws is p within 5 standard errors."""
    error = math.sqrt(p * (1 - p) / count)
    assert abs(share - p) < 5 * error, f"{what}: share {share:.4f}, expected {p} +- {5 * error:.4f}"


def unmoved(current, previous, backend):
    """Where a state did not move. The reference path keeps it bit for bit (torch.lerp by 1);
    the fused kernel computes h + z (h_{t-1} - h), one rounding away from h_{t-1} at z = 1."""
    if backend == "reference":
        return current == previous
    return (current - previous).abs() <= 1e-14  # a few roundings of numbers of order 1


def step(mode, cell, x_t, h, c, recurrent_mask=None):
    """One step of the plain cell: (h_new, c_new); dropout on h only in the recurrent product."""
    h_in = h if recurrent_mask is None else h * recurrent_mask
    if mode == "LSTM":
        return cell(x_t, (h_in, c))
    if mode == "RNN":
        return cell(x_t, h_in), None
    if recurrent_mask is None:
        return cell(x_t, h), None
    # the GRU's update gate mixes in the undropped h_{t-1}: (1 - z) n + z h_{t-1}
    reset_i, update_i, new_i = (x_t @ cell.weight_ih.T + cell.bias_ih).chunk(3, 1)
    reset_h, update_h, new_h = (h_in @ cell.weight_hh.T + cell.bias_hh).chunk(3, 1)
    reset, update = (reset_i + reset_h).sigmoid(), (update_i + update_h).sigmoid()
    new = (new_i + reset * new_h).tanh()
    return (1 - update) * new + update * h, None


@pytest.mark.parametrize("mode,backend", CASES)
def test_training_masks_take_the_papers_values_at_rate_p(mode, backend):
    layer = make_layer(mode, backend, zoneout=zoneout_of(mode), recurrent_dropout=P_DROP)
    x, hx = inputs(mode)
    torch.manual_seed(2)
    extras = layer(x, hx, return_internals=True)[2][0][0].extras
    zoneouts = [("zoneout_hidden", P_H)] + ([("zoneout_cell", P_C)] if mode == "LSTM" else [])
    assert set(extras) == {"recurrent_mask"} | {name for name, _ in zoneouts}
    for name, p in zoneouts:
        mask = extras[name]
        assert mask.shape == (STEPS, BATCH, HIDDEN) and mask.dtype == DTYPE
        assert set(mask.unique().tolist()) == {0.0, 1.0}, name
        assert_rate(mask.mean().item(), p, mask.numel(), f"{name} ones (kept previous)")
    dropout = extras["recurrent_mask"]
    assert dropout.shape == (BATCH, HIDDEN)  # one mask per sequence, for every step
    values = dropout.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0
    assert values[1] == pytest.approx(1 / (1 - P_DROP), rel=1e-15, abs=0)
    assert_rate((dropout == 0).double().mean().item(), P_DROP, dropout.numel(),
                "recurrent_mask zeros")
    if mode == "LSTM":  # the h and c masks are drawn independently
        both = (extras["zoneout_hidden"] * extras["zoneout_cell"]).mean().item()
        assert_rate(both, P_H * P_C, STEPS * BATCH * HIDDEN, "h and c both kept")


@pytest.mark.parametrize("mode,backend", CASES)
def test_training_zoneout_holds_the_share_p_of_units_in_the_output(mode, backend):
    layer = make_layer(mode, backend, zoneout=zoneout_of(mode), recurrent_dropout=P_DROP)
    x, hx = inputs(mode)
    torch.manual_seed(3)
    with torch.no_grad():
        output, state, internals = layer(x, hx, return_internals=True)
    h0, c0 = (hx if mode == "LSTM" else (hx, None))
    previous = torch.cat([h0, output[:-1]])
    held = unmoved(output, previous, backend)
    count = held.numel()
    # from the outputs alone: the share of units that did not move is p_h (not 1 - p_h)
    assert_rate(held.double().mean().item(), P_H, count, "h_t == h_{t-1}")
    extras = internals[0][0].extras
    assert torch.equal(held, extras["zoneout_hidden"] == 1)
    if mode == "LSTM":
        cells = internals[0][0].cell
        assert torch.equal(cells[-1], state[1][0])
        held_cells = unmoved(cells, torch.cat([c0, cells[:-1]]), backend)
        assert_rate(held_cells.double().mean().item(), P_C, count, "c_t == c_{t-1}")
        assert torch.equal(held_cells, extras["zoneout_cell"] == 1)
    # and every other unit is the plain cell's new state (from the undropped c for the LSTM)
    cell = nn_cell(mode, layer)
    h, c = h0[0], None if c0 is None else c0[0]
    with torch.no_grad():
        for t in range(STEPS):
            h_new, c_new = step(mode, cell, x[t], h, c, extras["recurrent_mask"])
            h = torch.where(extras["zoneout_hidden"][t] == 1, h, h_new)
            if mode == "LSTM":
                c = torch.where(extras["zoneout_cell"][t] == 1, c, c_new)
            torch.testing.assert_close(output[t], h, rtol=1e-12, atol=1e-12)
    if mode == "LSTM":
        torch.testing.assert_close(state[1][0], c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode,backend", CASES)
def test_training_recurrent_dropout_cuts_the_share_p_and_scales_the_rest(mode, backend):
    """With h_0 = 0 the forward pass is the same with and without dropout, and dL/dh_0 (which
    only the first recurrent product carries, besides the GRU's z h_0) is the plain layer's
    times the mask: 0 for the share p of units, 1/(1-p) times for the others."""
    dropped = make_layer(mode, backend, recurrent_dropout=P_DROP)
    plain = make_layer(mode, backend)
    plain.load_state_dict(dropped.state_dict())
    x = inputs(mode)[0]
    weights = torch.randn(BATCH, HIDDEN, dtype=DTYPE, generator=torch.Generator().manual_seed(4))

    def first_step_gradient(layer):
        h0 = torch.zeros(1, BATCH, HIDDEN, dtype=DTYPE, requires_grad=True)
        hx = (h0, torch.zeros_like(h0)) if mode == "LSTM" else h0
        output, _, internals = layer(x, hx, return_internals=True)
        (output[0] * weights).sum().backward()
        direct = 0
        if mode == "GRU":  # h_1 = (1 - z) n + z h_0 reads h_0 undropped too
            direct = internals[0][0].gates["update"][0] * weights
        return h0.grad[0] - direct, output

    torch.manual_seed(5)
    through_dropout, output = first_step_gradient(dropped)
    through_plain, plain_output = first_step_gradient(plain)
    torch.testing.assert_close(output[0], plain_output[0], rtol=1e-12, atol=1e-12)
    cut = through_dropout == 0
    assert not (through_plain == 0).any()
    assert_rate(cut.double().mean().item(), P_DROP, cut.numel(), "units of h_0 cut off")
    ratio = through_dropout[~cut] / through_plain[~cut]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 1 / (1 - P_DROP)), rtol=1e-9,
                               atol=0)


@pytest.mark.parametrize("mode,backend", CASES)
def test_eval_zoneout_is_the_expectation_and_recurrent_dropout_the_identity(mode, backend):
    layer = make_layer(mode, backend, zoneout=zoneout_of(mode), recurrent_dropout=P_DROP).eval()
    x, hx = inputs(mode)
    torch.manual_seed(6)
    with torch.no_grad():
        output, state, internals = layer(x, hx, return_internals=True)
    extras = internals[0][0].extras
    assert "recurrent_mask" not in extras
    assert torch.equal(extras["zoneout_hidden"], torch.full_like(output, P_H))
    cell = nn_cell(mode, layer)
    h0, c0 = (hx if mode == "LSTM" else (hx, None))
    h, c = h0[0], None if c0 is None else c0[0]
    with torch.no_grad():
        for t in range(STEPS):
            h_new, c_new = step(mode, cell, x[t], h, c)
            h = P_H * h + (1 - P_H) * h_new
            if mode == "LSTM":
                c = P_C * c + (1 - P_C) * c_new
            torch.testing.assert_close(output[t], h, rtol=1e-12, atol=1e-12)
    finals = state if mode == "LSTM" else (state,)
    torch.testing.assert_close(finals[0][0], h, rtol=1e-12, atol=1e-12)
    if mode == "LSTM":
        torch.testing.assert_close(finals[1][0], c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode,backend", CASES)
def test_eval_recurrent_dropout_alone_is_torch_nn(mode, backend):
    layer = make_layer(mode, backend, recurrent_dropout=P_DROP).eval()
    reference = getattr(nn, mode)(FEATURES, HIDDEN).to(DTYPE)
    reference.load_state_dict(layer.state_dict())
    x, hx = inputs(mode)
    with torch.no_grad():
        output, state = layer(x, hx)
        expected, expected_state = reference(x, hx)
    torch.testing.assert_close(output, expected, rtol=1e-12, atol=1e-12)
    for actual, wanted in zip(state if mode == "LSTM" else (state,),
                              expected_state if mode == "LSTM" else (expected_state,)):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)
