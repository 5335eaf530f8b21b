"""Every layer, variant and input layout against its loop over ``rnnkit.cells``, in float64.

The matrix: every family x {plain, each variant it takes, a combination} x {one direction,
bidirectional} x {padded, packed unsorted with ragged lengths} x {1, 2 layers} x {reference,
fused}: outputs, final states, internals (every h_t, c_t, gate, normalised pre-activation,
recorded dL/dh_t and dL/dc_t) and every gradient (input, parameters) within 1e-10 of the
cell loop (tests/cell_loop.py). Then the layouts the matrix leaves out (batch_first,
unbatched, an initial state, sorted packing, a projection, the IndRNN's bound on u), the
harness itself against torch.nn and against a wrong mask, and the cell functions with
variants against the plain equations of tests/test_variants.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.cells import LAYER_NORM_EPS, gru_cell, layer_norm, lstm_cell, rnn_cell
from tests.cell_loop import cell_loop, compare_with_cell_loop
from tests.helpers import TORCH_CLASSES
from tests.test_variants import CASES as PLAIN_EQUATION_CASES
from tests.test_variants import PLAIN

pytestmark = pytest.mark.usefixtures("one_thread")

DTYPE = torch.float64
TOLERANCE = 1e-10
STEPS, BATCH, FEATURES, HIDDEN = 5, 3, 3, 4
LENGTHS = [2, 5, 3]  # unsorted, one full length: the packed batch is reordered and ragged

# (options, training): each variant alone, weight drop in eval (the identity), a combination
VARIANTS = {
    "LSTM": {
        "plain": ({}, True),
        "layer_norm": ({"layer_norm": True}, True),
        "peephole": ({"peephole": True}, True),
        "coupled_gates": ({"coupled_gates": True}, True),
        "zoneout_h": ({"zoneout": (0.3, 0.0)}, True),
        "zoneout_c": ({"zoneout": (0.0, 0.3)}, True),
        "recurrent_dropout": ({"recurrent_dropout": 0.25}, True),
        "weight_drop_eval": ({"weight_drop": 0.5}, False),
        "all": ({"layer_norm": True, "peephole": True, "coupled_gates": True,
                 "zoneout": (0.3, 0.2), "recurrent_dropout": 0.25}, True),
    },
    "GRU": {
        "plain": ({}, True),
        "layer_norm": ({"layer_norm": True}, True),
        "zoneout": ({"zoneout": 0.3}, True),
        "recurrent_dropout": ({"recurrent_dropout": 0.25}, True),
        "weight_drop_eval": ({"weight_drop": 0.5}, False),
        "all": ({"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.25}, True),
    },
    "RNN": {
        "plain": ({}, True),
        "zoneout": ({"zoneout": 0.3}, True),
        "recurrent_dropout": ({"recurrent_dropout": 0.25}, True),
        "weight_drop_eval": ({"weight_drop": 0.5}, False),
        "all": ({"zoneout": 0.3, "recurrent_dropout": 0.25}, True),
    },
    "IndRNN": {"plain": ({}, True)},  # no variants (the layer refuses them)
}


def make_layer(mode, options, training=True, backend="reference", seed=0, **shape):
    """A float64 layer with every parameter drawn N(0, 0.25): layer-norm gains away from 1,
    peepholes and layer-norm biases non-zero, so each term of the equations counts."""
    torch.manual_seed(seed)
    layer = getattr(rnnkit, mode)(FEATURES, HIDDEN, backend=backend, **options, **shape)
    layer = layer.to(DTYPE).train(training)
    generator = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn(parameter.shape, dtype=DTYPE, generator=generator) * 0.5)
    return layer


def make_input(packed: bool, seed=1, batch_first=False):
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=DTYPE,
                    generator=torch.Generator().manual_seed(seed))
    if packed:
        return pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False)
    return x.transpose(0, 1) if batch_first else x


def assert_agrees(layer, input, hx=None, tolerance=TOLERANCE):
    differences = compare_with_cell_loop(layer, input, hx)
    worst = max(differences, key=differences.get)
    assert differences[worst] <= tolerance, (
        f"the layer and its cell loop differ by {differences[worst]:.3e} in {worst}; all "
        f"above {tolerance}: {({k: v for k, v in differences.items() if v > tolerance})}"
    )


MATRIX = [
    pytest.param(
        mode, variant, bidirectional, packed, layers, backend,
        id=f"{mode}-{variant}-{'bi' if bidirectional else 'uni'}-"
           f"{'packed' if packed else 'padded'}-{layers}layer-{backend}",
        marks=[pytest.mark.fused] if backend == "fused" else [],
    )
    for backend in ("reference", "fused")
    for mode, variants in VARIANTS.items()
    for variant in variants
    for bidirectional in (False, True)
    for packed in (False, True)
    for layers in (1, 2)
]


@pytest.mark.parametrize("mode,variant,bidirectional,packed,layers,backend", MATRIX)
def test_layer_equals_its_cell_loop(mode, variant, bidirectional, packed, layers, backend):
    options, training = VARIANTS[mode][variant]
    layer = make_layer(mode, options, training, backend, num_layers=layers,
                       bidirectional=bidirectional)
    assert_agrees(layer, make_input(packed))


# -- the layouts the matrix leaves out --------------------------------------------------------

LAYOUT_OPTIONS = {
    "LSTM": {"layer_norm": True, "peephole": True, "zoneout": (0.3, 0.2),
             "recurrent_dropout": 0.25},
    "GRU": {"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.25},
    "RNN": {"zoneout": 0.3, "recurrent_dropout": 0.25},
    "IndRNN": {"nonlinearity": "tanh"},
}
BACKENDS = [pytest.param("reference"), pytest.param("fused", marks=pytest.mark.fused)]


def initial_state(mode, layers, directions, batch: int | None, seed=2):
    generator = torch.Generator().manual_seed(seed)
    shape = (layers * directions, *(() if batch is None else (batch,)), HIDDEN)
    states = [torch.randn(shape, dtype=DTYPE, generator=generator)
              for _ in range(2 if mode == "LSTM" else 1)]
    return tuple(states) if mode == "LSTM" else states[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("mode", list(VARIANTS))
def test_batch_first_with_an_initial_state(mode, training, backend):
    layer = make_layer(mode, LAYOUT_OPTIONS[mode], training, backend, num_layers=2,
                       bidirectional=True, batch_first=True)
    hx = initial_state(mode, 2, 2, BATCH)
    assert_agrees(layer, make_input(False, batch_first=True), hx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", list(VARIANTS))
def test_unbatched_with_an_initial_state(mode, backend):
    layer = make_layer(mode, LAYOUT_OPTIONS[mode], True, backend, num_layers=2,
                       bidirectional=True)
    hx = initial_state(mode, 2, 2, None)
    assert_agrees(layer, make_input(False)[:, 0], hx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", list(VARIANTS))
def test_packed_with_an_initial_state_sorted_and_unsorted(mode, backend):
    """The initial state is in the caller's batch order; sorted packing and full-length
    packing (no mask at all inside the layer) too; batch_first only changes internals."""
    layer = make_layer(mode, LAYOUT_OPTIONS[mode], True, backend, num_layers=2,
                       bidirectional=True, batch_first=True)
    hx = initial_state(mode, 2, 2, BATCH)
    x = make_input(False)
    for lengths, enforce_sorted in (([2, 5, 3], False), ([5, 3, 2], True), ([5, 5, 5], False)):
        packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=enforce_sorted)
        assert_agrees(layer, packed, hx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "mode,options",
    [("LSTM", {"proj_size": 2}), ("LSTM", {"bias": False}),
     ("LSTM", {"bias": False, "layer_norm": True, "peephole": True, "coupled_gates": True}),
     ("RNN", {"nonlinearity": "relu"}),
     ("RNN", {"nonlinearity": "relu", "zoneout": 0.3, "recurrent_dropout": 0.25}),
     ("GRU", {"bias": False, "layer_norm": True}), ("LSTM", {"dropout": 0.5}),
     ("IndRNN", {"recurrent_max_len": 3}), ("IndRNN", {"bias": False})],
    ids=["lstm-proj", "lstm-nobias", "lstm-nobias-ln-peephole-coupled", "rnn-relu",
         "rnn-relu-zoneout-dropout", "gru-nobias-ln", "lstm-dropout-eval", "indrnn-max-len",
         "indrnn-nobias"],
)
def test_other_options(mode, options, backend):
    training = "dropout" not in options  # dropout between layers is the identity in eval
    layer = make_layer(mode, options, training, backend, num_layers=2, bidirectional=True)
    if "recurrent_max_len" in options:  # some |u| past the bound 2 ** (1/3): the clip counts
        with torch.no_grad():
            for name, parameter in layer.named_parameters():
                if name.startswith("weight_hh"):
                    parameter.mul_(4)
    assert_agrees(layer, make_input(True))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_cell_grad_with_cell_zoneout_is_dl_dc_t(training, backend):
    """GradientRecorder and DirectionInternals promise dL/dc_t for every t, c_t being the cell
    internals show. Found by the cell loop: under zoneout on the cell both backends recorded
    dL/d(new cell before zoneout) instead (differences of order 1), now fixed in both."""
    layer = make_layer("LSTM", {"zoneout": (0.0, 0.3)}, training, backend)
    differences = compare_with_cell_loop(layer, make_input(False))
    assert differences["internals[0][0].cell_grad"] <= TOLERANCE
    assert max(differences.values()) <= TOLERANCE


# -- the harness itself ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(TORCH_CLASSES))
def test_the_cell_loop_equals_torch_nn(mode):
    """The plain loop against torch.nn's own layer (an oracle that shares nothing with
    rnnkit): packed unsorted, two layers, both directions, an initial state, a projection."""
    options = {"proj_size": 2} if mode == "LSTM" else {}
    torch.manual_seed(0)
    twin = TORCH_CLASSES[mode](FEATURES, HIDDEN, num_layers=2, bidirectional=True,
                               **options).to(DTYPE)
    layer = getattr(rnnkit, mode)(FEATURES, HIDDEN, num_layers=2, bidirectional=True,
                                  **options).to(DTYPE)
    layer.load_state_dict(twin.state_dict())
    packed = make_input(True)
    generator = torch.Generator().manual_seed(3)
    hx = tuple(torch.randn(4, BATCH, size, dtype=DTYPE, generator=generator)
               for size in ((2, HIDDEN) if mode == "LSTM" else (HIDDEN,)))
    hx = hx if mode == "LSTM" else hx[0]
    expected_output, expected_state = twin(packed, hx)
    output, state = cell_loop(layer, packed, hx)
    torch.testing.assert_close(output.data, expected_output.data, rtol=0, atol=TOLERANCE)
    assert torch.equal(output.batch_sizes, expected_output.batch_sizes)
    for got, wanted in zip(state if mode == "LSTM" else (state,),
                           expected_state if mode == "LSTM" else (expected_state,)):
        torch.testing.assert_close(got, wanted, rtol=0, atol=TOLERANCE)


def test_the_harness_sees_a_wrong_mask_and_a_wrong_weight():
    """Not vacuous: masks from another draw, or one weight nudged, are far outside 1e-10."""
    layer = make_layer("LSTM", LAYOUT_OPTIONS["LSTM"], True, num_layers=2, bidirectional=True)
    packed = make_input(True)
    torch.manual_seed(0)
    output, _, internals = layer(packed, return_internals=True)
    torch.manual_seed(1)  # a different draw of the same masks
    _, _, other = layer(packed, return_internals=True)
    wrong = cell_loop(layer, packed, masks=other)[0]
    assert (wrong.data - output.data).abs().max() > 1e-3
    right = cell_loop(layer, packed, masks=internals)[0]
    assert (right.data - output.data).abs().max() <= TOLERANCE
    parameters = {name: p.detach().clone() for name, p in layer.named_parameters()}
    parameters["peephole_weight_l1_reverse"][HIDDEN + 1] += 1e-6  # one forget peephole
    nudged = cell_loop(layer, packed, masks=internals, parameters=parameters)[0]
    assert (nudged.data - output.data).abs().max() > 1e-9


def test_the_harness_refuses_what_it_cannot_see():
    packed = make_input(True)
    with pytest.raises(ValueError, match="pass its internals"):
        cell_loop(make_layer("GRU", {"zoneout": 0.2}), packed)
    with pytest.raises(ValueError, match="weight_drop in training"):
        cell_loop(make_layer("GRU", {"weight_drop": 0.2}), packed)
    with pytest.raises(ValueError, match="dropout between layers"):
        cell_loop(make_layer("RNN", {"dropout": 0.2}, num_layers=2), packed)


# -- the cell functions with variants ------------------------------------------------------


def test_layer_norm_is_torchs_with_the_backends_epsilon():
    from rnnkit.bptt.layer_norm import EPS

    assert LAYER_NORM_EPS == EPS
    generator = torch.Generator().manual_seed(0)
    z, gain, bias = (torch.randn(shape, dtype=DTYPE, generator=generator)
                     for shape in ((5, 12), (12,), (12,)))
    z = z * 0.001 + 3.0  # a small variance, where epsilon counts
    result, normalized = layer_norm(z, gain, bias)
    expected = F.layer_norm(z, (12,), gain, bias, eps=LAYER_NORM_EPS)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(normalized, F.layer_norm(z, (12,), eps=LAYER_NORM_EPS),
                               rtol=0, atol=1e-12)


def _loop_over_cells(mode, x, params, options, masks):
    """tests/test_variants.py's plain equations' contract, run through rnnkit.cells."""
    p = {name[: -len("_l0")]: value for name, value in params.items()}
    h = x.new_zeros(x.shape[1], HIDDEN)
    c = torch.zeros_like(h)
    outputs = []
    for t, x_t in enumerate(x):
        step_masks = {"recurrent_mask": masks.get("recurrent_mask")}
        step_masks["zoneout_hidden"] = _step(masks.get("zoneout_hidden"), t)
        if mode == "LSTM":
            step_masks["zoneout_cell"] = _step(masks.get("zoneout_cell"), t)
            h, c, _ = lstm_cell(x_t, h, c, **p, coupled_gates=bool(options.get("coupled_gates")),
                                **step_masks)
        elif mode == "GRU":
            h, _ = gru_cell(x_t, h, **p, **step_masks)
        else:
            h = rnn_cell(x_t, h, **p, **step_masks)
        outputs.append(h)
    return (torch.stack(outputs), h, c) if mode == "LSTM" else (torch.stack(outputs), h)


def _step(zone, t):
    return None if zone is None else zone[t]


@pytest.mark.parametrize(
    "mode,options", PLAIN_EQUATION_CASES, ids=[f"{m}-{o}" for m, o in PLAIN_EQUATION_CASES]
)
def test_cells_with_variants_equal_the_plain_equations(mode, options):
    """tests/test_variants.py writes each variant from its paper; the cells give its numbers,
    with masks from a real draw (0/1 zoneout, scaled recurrent dropout) and every gradient."""
    layer = make_layer(mode, options)
    x = torch.randn(6, 2, FEATURES, dtype=DTYPE, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    _, _, internals = layer(x, return_internals=True)
    masks = internals[0][0].extras
    params = {name: p.detach().clone().requires_grad_(True)
              for name, p in layer.named_parameters()}
    expected = PLAIN[mode](x, params, options, masks)
    actual = _loop_over_cells(mode, x, params, options, masks)
    weights = [torch.randn(t.shape, dtype=DTYPE) for t in expected]
    leaves = list(params.values())
    for got, wanted in zip(actual, expected):
        torch.testing.assert_close(got, wanted, rtol=0, atol=1e-12)

    def grads(results):
        total = sum((r * w).sum() for r, w in zip(results, weights))
        return torch.autograd.grad(total, leaves, allow_unused=True)

    for name, got, wanted in zip(params, grads(actual), grads(expected)):
        if wanted is None:  # coupled gates: the input-gate block reaches nothing in both
            assert got is None or not got.any(), name
            continue
        torch.testing.assert_close(got, wanted, rtol=0, atol=1e-12, msg=lambda m, n=name: n + m)


def test_the_default_options_are_the_plain_cell():
    """Neutral variants (zoneout 0, a mask of ones, zero peepholes) change no number, and a
    partial layer norm or a projection with variants is refused."""
    generator = torch.Generator().manual_seed(0)

    def draw(*shape):
        return torch.randn(*shape, dtype=DTYPE, generator=generator)

    x, h, c = draw(2, FEATURES), draw(2, HIDDEN), draw(2, HIDDEN)
    weights = (draw(4 * HIDDEN, FEATURES), draw(4 * HIDDEN, HIDDEN), draw(4 * HIDDEN),
               draw(4 * HIDDEN))
    plain_h, plain_c, plain_gates = lstm_cell(x, h, c, *weights)
    neutral_h, neutral_c, neutral_gates = lstm_cell(
        x, h, c, *weights, peephole_weight=torch.zeros(3 * HIDDEN, dtype=DTYPE),
        recurrent_mask=torch.ones(2, HIDDEN, dtype=DTYPE), zoneout_hidden=0.0, zoneout_cell=0.0,
    )
    assert torch.equal(plain_h, neutral_h) and torch.equal(plain_c, neutral_c)
    assert set(plain_gates) == {"input", "forget", "cell", "output"}
    gru_weights = [w[: 3 * HIDDEN] for w in weights]
    assert torch.equal(gru_cell(x, h, *gru_weights)[0],
                       gru_cell(x, h, *gru_weights, zoneout_hidden=0.0)[0])
    rnn_weights = [w[:HIDDEN] for w in weights]
    assert torch.equal(rnn_cell(x, h, *rnn_weights),
                       rnn_cell(x, h, *rnn_weights, recurrent_mask=torch.ones_like(h)))
    with pytest.raises(ValueError, match="every one of its gains and biases"):
        lstm_cell(x, h, c, *weights, ln_ih_weight=weights[2], ln_ih_bias=weights[3])
    with pytest.raises(ValueError, match="projection"):
        lstm_cell(x, h[:, :2], c, weights[0], weights[1][:, :2], None, None,
                  draw(2, HIDDEN), coupled_gates=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", list(VARIANTS))
@pytest.mark.parametrize("hidden,batch", [(224, 2), (96, 40)], ids=["few-rows", "wide-batch"])
def test_larger_sizes_on_two_threads(mode, hidden, batch, backend):
    """Sizes where the kernels take their other GEMM engines (few rows against a weight of
    >= 128K elements; a wide batch) and split work over two threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        options, _ = VARIANTS[mode].get("all", VARIANTS[mode]["plain"])
        layer = getattr(rnnkit, mode)(8, hidden, num_layers=2, bidirectional=True,
                                      backend=backend, **options).to(DTYPE)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for parameter in layer.parameters():
                parameter.copy_(torch.randn(parameter.shape, dtype=DTYPE, generator=generator)
                                * 2 / hidden**0.5)
        x = torch.randn(6, batch, 8, dtype=DTYPE, generator=generator)
        lengths = torch.randint(1, 7, (batch,), generator=generator)
        lengths[0] = 6
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        assert_agrees(layer, packed)
    finally:
        torch.set_num_threads(threads)
