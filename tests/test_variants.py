"""Each variant equals a plain step-by-step implementation of its paper's equations.

The plain versions below are written from the papers with torch ops and autograd does their
backward; rnnkit's run through the hand-written backward. Masks are taken from the layer's
internals, so both see the same random draws.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import rnnkit

DTYPE = torch.float64


def layer_norm(z, gain, bias):
    return F.layer_norm(z, z.shape[-1:], gain, bias, eps=1e-5)


def plain_lstm(x, params, options, masks):
    """Ba et al. 2016 / Gers & Schmidhuber 2000 / CIFG / Gal 2016 / Krueger et al. 2016."""
    p = params
    hidden = p["weight_hh_l0"].shape[1]
    h = x.new_zeros(x.shape[1], hidden)
    c = x.new_zeros(x.shape[1], hidden)
    outputs = []
    for t, x_t in enumerate(x):
        h_in = h * masks["recurrent_mask"] if masks.get("recurrent_mask") is not None else h
        from_input, from_hidden = x_t @ p["weight_ih_l0"].T, h_in @ p["weight_hh_l0"].T
        if options.get("layer_norm"):
            from_input = layer_norm(from_input, p["ln_ih_weight_l0"], p["ln_ih_bias_l0"])
            from_hidden = layer_norm(from_hidden, p["ln_hh_weight_l0"], p["ln_hh_bias_l0"])
        pre = from_input + from_hidden + p["bias_ih_l0"] + p["bias_hh_l0"]
        pre_i, pre_f, pre_g, pre_o = pre.chunk(4, 1)
        if options.get("peephole"):
            peep_i, peep_f, peep_o = p["peephole_weight_l0"].chunk(3)
            pre_i, pre_f = pre_i + peep_i * c, pre_f + peep_f * c
        forget = torch.sigmoid(pre_f)
        input = 1 - forget if options.get("coupled_gates") else torch.sigmoid(pre_i)
        c_new = forget * c + input * torch.tanh(pre_g)
        if options.get("peephole"):
            pre_o = pre_o + peep_o * c_new
        shown = c_new
        if options.get("layer_norm"):
            shown = layer_norm(c_new, p["ln_cell_weight_l0"], p["ln_cell_bias_l0"])
        h_new = torch.sigmoid(pre_o) * torch.tanh(shown)
        if masks.get("zoneout_cell") is not None:
            c_new = masks["zoneout_cell"][t] * c + (1 - masks["zoneout_cell"][t]) * c_new
        if masks.get("zoneout_hidden") is not None:
            h_new = masks["zoneout_hidden"][t] * h + (1 - masks["zoneout_hidden"][t]) * h_new
        h, c = h_new, c_new
        outputs.append(h)
    return torch.stack(outputs), h, c


def plain_gru(x, params, options, masks):
    p = params
    hidden = p["weight_hh_l0"].shape[1]
    h = x.new_zeros(x.shape[1], hidden)
    outputs = []
    for t, x_t in enumerate(x):
        h_in = h * masks["recurrent_mask"] if masks.get("recurrent_mask") is not None else h
        from_input, from_hidden = x_t @ p["weight_ih_l0"].T, h_in @ p["weight_hh_l0"].T
        if options.get("layer_norm"):
            from_input = layer_norm(from_input, p["ln_ih_weight_l0"], p["ln_ih_bias_l0"])
            from_hidden = layer_norm(from_hidden, p["ln_hh_weight_l0"], p["ln_hh_bias_l0"])
        i_r, i_z, i_n = (from_input + p["bias_ih_l0"]).chunk(3, 1)
        h_r, h_z, h_n = (from_hidden + p["bias_hh_l0"]).chunk(3, 1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        h_new = (1 - update) * new + update * h
        if masks.get("zoneout_hidden") is not None:
            h_new = masks["zoneout_hidden"][t] * h + (1 - masks["zoneout_hidden"][t]) * h_new
        h = h_new
        outputs.append(h)
    return torch.stack(outputs), h


def plain_rnn(x, params, options, masks):
    p = params
    h = x.new_zeros(x.shape[1], p["weight_hh_l0"].shape[1])
    outputs = []
    for t, x_t in enumerate(x):
        h_in = h * masks["recurrent_mask"] if masks.get("recurrent_mask") is not None else h
        pre = x_t @ p["weight_ih_l0"].T + h_in @ p["weight_hh_l0"].T
        h_new = torch.tanh(pre + p["bias_ih_l0"] + p["bias_hh_l0"])
        if masks.get("zoneout_hidden") is not None:
            h_new = masks["zoneout_hidden"][t] * h + (1 - masks["zoneout_hidden"][t]) * h_new
        h = h_new
        outputs.append(h)
    return torch.stack(outputs), h


LSTM_OPTIONS = [
    dict(zip(("layer_norm", "peephole", "coupled_gates", "zoneout", "recurrent_dropout"), values))
    for values in itertools.product(
        [False, True], [False, True], [False, True], [0.0, (0.3, 0.2)], [0.0, 0.25]
    )
]
GRU_OPTIONS = [
    dict(zip(("layer_norm", "zoneout", "recurrent_dropout"), values))
    for values in itertools.product([False, True], [0.0, 0.3], [0.0, 0.25])
]
RNN_OPTIONS = [
    {"zoneout": 0.3},
    {"recurrent_dropout": 0.25},
    {"zoneout": 0.2, "recurrent_dropout": 0.4},
]
PLAIN = {"LSTM": plain_lstm, "GRU": plain_gru, "RNN": plain_rnn}
CASES = (
    [("LSTM", o) for o in LSTM_OPTIONS]
    + [("GRU", o) for o in GRU_OPTIONS]
    + [("RNN", o) for o in RNN_OPTIONS]
)


def _randomise(layer):
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for parameter in layer.parameters():  # layer-norm gains away from 1, peepholes non-zero
            parameter.copy_(torch.randn(parameter.shape, dtype=DTYPE, generator=generator) * 0.5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("mode,options", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_variant_equals_plain_equations(mode, options, training):
    torch.manual_seed(0)
    layer = getattr(rnnkit, mode)(3, 4, **options).to(DTYPE)
    _randomise(layer)
    layer.train(training)
    x = torch.randn(6, 2, 3, dtype=DTYPE, requires_grad=True)
    output, state, internals = layer(x, return_internals=True)
    masks = internals[0][0].extras
    if not training:
        assert "recurrent_mask" not in masks  # no dropout in eval: deterministic
    params = dict(layer.named_parameters())
    expected = PLAIN[mode](x, params, options, masks)
    actual = (output, *(state if isinstance(state, tuple) else (state,)))
    for e, a in zip(expected, actual):
        torch.testing.assert_close(
            a, e[None] if a.dim() == 3 and e.dim() == 2 else e, rtol=1e-10, atol=1e-10
        )
    weights = [torch.randn(t.shape, dtype=DTYPE) for t in expected]
    leaves = [x, *params.values()]
    grads_expected = torch.autograd.grad(
        sum((e * w).sum() for e, w in zip(expected, weights)), leaves, allow_unused=True
    )
    actual = [output] + [s[0] for s in (state if isinstance(state, tuple) else (state,))]
    grads_actual = torch.autograd.grad(
        sum((a * w).sum() for a, w in zip(actual, weights)), leaves, allow_unused=True
    )
    for name, e, a in zip(["input", *params], grads_expected, grads_actual):
        e = torch.zeros_like(a) if e is None else e  # CIFG: the input-gate block is unused
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize(
    "mode,options",
    [
        (
            "LSTM",
            {"layer_norm": True, "zoneout": (0.2, 0.1), "recurrent_dropout": 0.3, "peephole": True},
        ),
        ("GRU", {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.1}),
        ("RNN", {"zoneout": 0.2, "recurrent_dropout": 0.1}),
    ],
)
def test_variant_gradcheck_through_the_layer(mode, options):
    torch.manual_seed(3)
    layer = getattr(rnnkit, mode)(2, 3, bidirectional=True, **options).to(DTYPE)
    _randomise(layer)
    x = torch.randn(4, 2, 2, dtype=DTYPE, requires_grad=True)

    def run(inputs):
        torch.manual_seed(5)  # the same masks at every evaluation
        return layer(inputs)[0]

    assert torch.autograd.gradcheck(run, (x,))


def test_weight_drop_is_dropconnect_on_w_hh_once_per_forward():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, weight_drop=0.5).double()
    x = torch.randn(5, 2, 3, dtype=DTYPE)
    torch.manual_seed(1)
    first = layer(x)[0]
    torch.manual_seed(1)
    dropped = F.dropout(layer.weight_hh_l0, 0.5)
    plain = rnnkit.LSTM(3, 4).double()
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():
        plain.weight_hh_l0.copy_(dropped)
    torch.testing.assert_close(first, plain(x)[0], rtol=1e-12, atol=1e-12)
    # in eval, weight drop is the identity: the same numbers as the layer without it, and as
    # torch.nn.LSTM, from the same state_dict (weight drop keeps W_hh as weight_hh_l0 itself)
    layer.eval()
    plain.load_state_dict(layer.state_dict())
    torch_lstm = torch.nn.LSTM(3, 4).double()
    torch_lstm.load_state_dict(layer.state_dict())
    hx = (torch.randn(1, 2, 4, dtype=DTYPE), torch.randn(1, 2, 4, dtype=DTYPE))
    output, (h_n, c_n) = layer(x, hx)
    for twin in (plain, torch_lstm):
        expected, (h_expected, c_expected) = twin(x, hx)
        for actual, wanted in ((output, expected), (h_n, h_expected), (c_n, c_expected)):
            torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)
    torch.manual_seed(1)  # the seed that dropped weights in training drops none in eval
    assert torch.equal(layer(x, hx)[0], output)
    (layer.train()(x)[0].sum()).backward()
    assert layer.weight_hh_l0.grad is not None and layer.weight_hh_l0.grad.abs().sum() > 0


def test_seeded_runs_repeat_and_eval_is_deterministic():
    layer = rnnkit.GRU(3, 5, zoneout=0.3, recurrent_dropout=0.3, weight_drop=0.2)
    x = torch.randn(7, 2, 3)
    torch.manual_seed(4)
    first = layer(x)[0]
    torch.manual_seed(4)
    assert torch.equal(first, layer(x)[0])
    assert not torch.equal(first, layer(x)[0])  # fresh masks without reseeding
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])



@pytest.mark.parametrize("p", [0.0, 0.05, 0.5, 0.9])
def test_masks_are_bernoulli_with_the_asked_probability(p):
    """500k draws: the share of ones is p within 5 standard errors; odd counts fill exactly;
    the low and high halves of each random word (two draws) agree in rate."""
    from rnnkit.variants import bernoulli

    torch.manual_seed(0)
    draws = bernoulli((499, 1001), p, torch.empty(0, dtype=torch.float64))
    assert draws.shape == (499, 1001) and draws.dtype == torch.float64
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    tolerance = 5 * (p * (1 - p) / draws.numel()) ** 0.5 + 1e-12
    flat = draws.flatten()
    for sample in (flat, flat[0::2], flat[1::2]):
        assert abs(sample.mean().item() - p) <= 2 * tolerance
    torch.manual_seed(0)
    assert torch.equal(draws, bernoulli((499, 1001), p, torch.empty(0, dtype=torch.float64)))

def test_layer_norm_state_dict_names():
    names = set(rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, layer_norm=True).state_dict())
    for kind in ("ih_weight", "ih_bias", "hh_weight", "hh_bias", "cell_weight", "cell_bias"):
        for tag in ("l0", "l1", "l0_reverse", "l1_reverse"):
            assert f"ln_{kind}_{tag}" in names
    gru = rnnkit.GRU(3, 4, layer_norm=True).state_dict()
    assert gru["ln_ih_weight_l0"].shape == (12,) and "ln_cell_weight_l0" not in gru
    assert torch.equal(gru["ln_hh_weight_l0"], torch.ones(12))


def test_constructor_gate_init_options():
    layer = rnnkit.LSTM(3, 4, forget_bias=1.5)
    torch.testing.assert_close((layer.bias_ih_l0 + layer.bias_hh_l0)[4:8], torch.full((4,), 1.5))
    chrono = rnnkit.GRU(3, 4, init="chrono", chrono_max_len=50)
    assert (chrono.bias_ih_l0[4:8] >= 0).all()


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: rnnkit.GRU(3, 4, peephole=True), "GRU: `peephole` is an LSTM option"),
        (
            lambda: rnnkit.RNN(3, 4, layer_norm=True),
            "RNN: `layer_norm` is offered for LSTM and GRU",
        ),
        (
            lambda: rnnkit.LSTM(3, 4, coupled_gates=True, proj_size=2),
            "`proj_size` cannot be combined",
        ),
        (
            lambda: rnnkit.LSTM(3, 4, zoneout=(0.1, 1.0)),
            "`zoneout (p_c)` must be a probability in [0, 1)",
        ),
        (lambda: rnnkit.LSTM(3, 4, zoneout=(0.1, 0.2, 0.3)), "`zoneout` must be p or (p_h, p_c)"),
        (lambda: rnnkit.GRU(3, 4, zoneout=(0.1, 0.2)), "GRU: `zoneout` takes p_h alone"),
        (
            lambda: rnnkit.LSTM(3, 4, recurrent_dropout=-0.5),
            "`recurrent_dropout` must be a probability",
        ),
        (
            lambda: rnnkit.LSTM(3, 4, weight_drop=1),
            "`weight_drop` must be a probability",
        ),
        (lambda: rnnkit.LSTM(3, 4, init="chrono"), "init='chrono' needs `chrono_max_len`"),
        (lambda: rnnkit.LSTM(3, 4, init="xavier"), "`init` must be None or 'chrono', got 'xavier'"),
        (lambda: rnnkit.LSTM(3, 4, forget_bias=1.0, init="chrono", chrono_max_len=9), "not both"),
        (lambda: rnnkit.LSTM(3, 4, bias=False, forget_bias=1.0), "need bias=True"),
        (lambda: rnnkit.RNN(3, 4, forget_bias=1.0), "RNN: the vanilla RNN has no forget gate"),
        (lambda: rnnkit.GRU(3, 4, coupled_gates=True), "GRU: `coupled_gates` is an LSTM option"),
    ],
)
def test_invalid_combinations(make, message):
    with pytest.raises((ValueError, TypeError), match=__import__("re").escape(message)):
        make()


def test_variant_internals_follow_the_callers_batch_order():
    """Packed, unsorted input: masks and normalised pre-activations come in the caller's order."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, layer_norm=True, recurrent_dropout=0.5, zoneout=(0.3, 0.3))
    x = torch.randn(5, 3, 3)
    lengths = torch.tensor([2, 5, 3])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    torch.manual_seed(1)
    _, _, internals = layer(packed, return_internals=True)
    extras = internals[0][0].extras
    assert extras["recurrent_mask"].shape == (3, 4)
    assert extras["normalized_ih"].shape == (5, 3, 16)
    assert not extras["normalized_ih"][2:, 0].any()  # sequence 0 ends after 2 steps
    for b, length in enumerate(lengths.tolist()):
        alone = pack_padded_sequence(x[:length, b : b + 1], torch.tensor([length]))
        layer.eval()  # deterministic: compare the normalised pre-activation of the input
        _, _, single = layer(alone, return_internals=True)
        layer.train()
        torch.testing.assert_close(
            extras["normalized_ih"][:length, b], single[0][0].extras["normalized_ih"][:, 0]
        )
