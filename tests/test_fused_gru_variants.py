"""The GRU and RNN variants on the fused C++ path give the reference path's numbers.

For every variant and their combinations: the fused Functions against the reference ones
(rnnkit.bptt.gru_variants) with the same masks, comparing outputs, final states, extras, every
gradient and the recorder's dL/dh_t, with and without a ragged mask; gradcheck on the fused
Functions; and the layers with backend="fused" against backend="reference", internals included.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.gru_variants import GRUVariantFunction
from rnnkit.bptt.rnn_variants import RNNVariantFunction
from tests.helpers import (
    assert_close,
    assert_same_numbers,
    fused_functions,
    fused_twins,
    layer_numbers,
    reference_forbidden,
    runs_operator_backward,
)

FUSED = fused_functions()
# fused: skipped without kernels, must call them; one_thread: test_parallel_* set two
pytestmark = [pytest.mark.fused, pytest.mark.usefixtures("one_thread")]




STEPS, BATCH, FEATURES, HIDDEN = 5, 3, 4, 6
FLAGS = ("layer_norm", "zoneout", "recurrent_dropout")
# every combination of the three GRU options (the plain GRU too: the variant kernel with no flag)
GRU_CASES = {
    "+".join(name for name, on in zip(FLAGS, values) if on) or "none": dict(zip(FLAGS, values))
    for values in itertools.product([False, True], repeat=3)
}
RNN_CASES = {
    f"{nonlinearity}-{name}": {"nonlinearity": nonlinearity, **options}
    for nonlinearity in ("tanh", "relu")
    for name, options in GRU_CASES.items()
    if not options["layer_norm"]
}


def _draw_common(dtype, gates, options, ragged, seed, bias, eval_zoneout, sizes, scale=0.5):
    """x, h0, weights, biases, masks of one call, drawn in float64 and cast to dtype."""
    steps, batch, features, hidden = sizes
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape, scale=1.0, shift=0.0):
        values = torch.randn(*shape, generator=generator, dtype=torch.float64) * scale + shift
        return values.to(dtype).requires_grad_(True)

    def share(shape, p):
        return (torch.rand(shape, generator=generator, dtype=torch.float64) < p).to(dtype)

    x, h0 = draw(steps, batch, features), draw(batch, hidden)
    weight_ih = draw(gates * hidden, features, scale=scale)
    weight_hh = draw(gates * hidden, hidden, scale=scale)
    bias_ih, bias_hh = (draw(gates * hidden), draw(gates * hidden)) if bias else (None, None)
    norms = [None] * 4
    if options.get("layer_norm"):
        norms = [draw(gates * hidden, scale=0.2, shift=1.0), draw(gates * hidden, scale=0.2),
                 draw(gates * hidden, scale=0.2, shift=1.0), draw(gates * hidden, scale=0.2)]
    recurrent_mask = None
    if options.get("recurrent_dropout"):
        recurrent_mask = share((batch, hidden), 0.7) / 0.7
    zone_h = None
    if options.get("zoneout"):
        if eval_zoneout:  # the expectation, expanded from one element as the layer passes it
            zone_h = torch.full((1, 1, 1), 0.3, dtype=dtype).expand(steps, batch, hidden)
        else:
            zone_h = share((steps, batch, hidden), 0.3)
    mask = None
    if ragged:
        lengths = torch.arange(batch) % steps + 1
        lengths[0] = steps
        mask = (torch.arange(steps)[:, None] < lengths).to(dtype).unsqueeze(-1)  # (T, N, 1)
    return x, h0, weight_ih, weight_hh, bias_ih, bias_hh, norms, recurrent_mask, zone_h, mask


def _gru_arguments(dtype, options, ragged, seed=0, bias=True, eval_zoneout=False,
                   sizes=(STEPS, BATCH, FEATURES, HIDDEN)):
    """The 13 arguments of GRUVariantFunction.apply before the recorder."""
    x, h0, w_ih, w_hh, b_ih, b_hh, norms, recurrent, zone_h, mask = _draw_common(
        dtype, 3, options, ragged, seed, bias, eval_zoneout, sizes
    )
    return [x, h0, w_ih, w_hh, b_ih, b_hh, *norms, recurrent, zone_h, mask]


def _rnn_arguments(dtype, options, ragged, seed=0, bias=True, eval_zoneout=False,
                   sizes=(STEPS, BATCH, FEATURES, HIDDEN), scale=0.5):
    """The 10 arguments of RNNVariantFunction.apply before the recorder."""
    x, h0, w_ih, w_hh, b_ih, b_hh, _, recurrent, zone_h, mask = _draw_common(
        dtype, 1, options, ragged, seed, bias, eval_zoneout, sizes, scale
    )
    return [x, h0, w_ih, w_hh, b_ih, b_hh, options["nonlinearity"], recurrent, zone_h, mask]


DIFFERENTIABLE = {"gru": 10, "rnn": 6}  # leading arguments that can carry a gradient


def _run(family, function, arguments, seed=1):
    """Outputs, the gradients of a loss over output and h_n, and the recorder."""
    recorder = GradientRecorder()
    outputs = function(*arguments, recorder)
    generator = torch.Generator().manual_seed(seed)
    loss = sum(
        (t * torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.dtype)).sum()
        for t in outputs[:2]
    )
    leaves = [a for a in arguments[: DIFFERENTIABLE[family]]
              if isinstance(a, torch.Tensor) and a.requires_grad]
    grads = torch.autograd.grad(loss, leaves)
    return outputs, grads, recorder


def _compare(expected, actual, dtype):
    (outputs_e, grads_e, recorder_e), (outputs_a, grads_a, recorder_a) = expected, actual
    names = ["output", "h_n", "gates", "normalized_ih", "normalized_hh"][: len(outputs_e)]
    assert len(outputs_e) == len(outputs_a)
    for name, e, a in zip(names, outputs_e, outputs_a):
        if e is None:
            assert a is None, name
        else:
            assert_close(a, e, dtype, name)
    assert len(grads_e) == len(grads_a)
    for index, (e, a) in enumerate(zip(grads_e, grads_a)):
        assert_close(a, e, dtype, f"gradient {index}")
    assert_close(recorder_a.hidden_grad, recorder_e.hidden_grad, dtype, "hidden_grad")
    assert recorder_a.cell_grad is None


DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
RAGGED = pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])


@DTYPES
@RAGGED
@pytest.mark.parametrize("case", list(GRU_CASES))
def test_fused_gru_variant_equals_reference(case, ragged, dtype):
    arguments = _gru_arguments(dtype, GRU_CASES[case], ragged)
    expected = _run("gru", GRUVariantFunction.apply, arguments)
    actual = _run("gru", FUSED.gru_variant, arguments)
    # no silent fallback: the graph runs the operator's backward
    assert runs_operator_backward(actual[0][0], "gru_variant_forward")
    _compare(expected, actual, dtype)


@DTYPES
@RAGGED
@pytest.mark.parametrize("case", list(RNN_CASES))
def test_fused_rnn_variant_equals_reference(case, ragged, dtype):
    arguments = _rnn_arguments(dtype, RNN_CASES[case], ragged)
    expected = _run("rnn", RNNVariantFunction.apply, arguments)
    actual = _run("rnn", FUSED.rnn_variant, arguments)
    # no silent fallback: the graph runs the operator's backward
    assert runs_operator_backward(actual[0][0], "rnn_variant_forward")
    _compare(expected, actual, dtype)


@pytest.mark.parametrize("family", ["gru", "rnn"])
def test_fused_eval_zoneout_expectation(family):
    if family == "gru":
        options = GRU_CASES["layer_norm+zoneout+recurrent_dropout"]
        arguments = _gru_arguments(torch.float64, options, True, eval_zoneout=True)
        functions = (GRUVariantFunction.apply, FUSED.gru_variant)
    else:
        options = RNN_CASES["tanh-zoneout"]
        arguments = _rnn_arguments(torch.float64, options, True, eval_zoneout=True)
        functions = (RNNVariantFunction.apply, FUSED.rnn_variant)
    _compare(*[_run(family, function, arguments) for function in functions], torch.float64)


@pytest.mark.parametrize("family", ["gru", "rnn"])
def test_fused_variant_without_bias_and_without_graph(family):
    if family == "gru":
        options = GRU_CASES["layer_norm+zoneout+recurrent_dropout"]
        arguments = _gru_arguments(torch.float64, options, True, bias=False)
        reference, fused = GRUVariantFunction.apply, FUSED.gru_variant
    else:
        arguments = _rnn_arguments(torch.float64, RNN_CASES["relu-zoneout+recurrent_dropout"],
                                   True, bias=False)
        reference, fused = RNNVariantFunction.apply, FUSED.rnn_variant
    _compare(_run(family, reference, arguments), _run(family, fused, arguments), torch.float64)
    with torch.no_grad():  # the inference path builds no graph and gives the same numbers
        expected = reference(*arguments, None)
        actual = fused(*arguments, None)
    assert len(expected) == len(actual)
    for e, a in zip(expected[:2], actual[:2]):  # output, h_n
        assert_close(a, e, torch.float64, "no-grad output")
        assert not a.requires_grad
    assert all(a is None for a in actual[2:])  # the inference operator keeps no internals


def test_only_some_inputs_need_a_gradient():
    """Frozen weights, an input that needs no gradient: the same gradients for what is left."""
    arguments = _gru_arguments(torch.float64, GRU_CASES["layer_norm+recurrent_dropout"], True)
    for index in (0, 2, 4, 6, 9):  # x, W_ih, b_ih, LN_ih gain, LN_hh bias
        arguments[index] = arguments[index].detach()
    _compare(_run("gru", GRUVariantFunction.apply, arguments),
             _run("gru", FUSED.gru_variant, arguments), torch.float64)


@pytest.mark.fused(calls=False)  # bfloat16: the reference Function, by design no kernel
def test_uncovered_dtype_runs_the_reference_function():
    arguments = _gru_arguments(torch.bfloat16, GRU_CASES["layer_norm+zoneout"], False)
    expected = GRUVariantFunction.apply(*arguments, None)
    actual = FUSED.gru_variant(*arguments, None)
    assert actual[0].grad_fn.name() == expected[0].grad_fn.name()
    torch.testing.assert_close(actual[0], expected[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "family,case",
    [("gru", "layer_norm+zoneout+recurrent_dropout"), ("gru", "layer_norm"),
     ("gru", "zoneout+recurrent_dropout"), ("rnn", "tanh-zoneout+recurrent_dropout"),
     ("rnn", "relu-zoneout+recurrent_dropout")],
)
def test_fused_variant_gradcheck(family, case):
    sizes = (3, 3, 2, 3)
    if family == "gru":
        arguments = _gru_arguments(torch.float64, GRU_CASES[case], True, sizes=sizes)
        function = FUSED.gru_variant
    else:  # relu: inputs away from the kink, so finite differences see one side
        arguments = _rnn_arguments(torch.float64, RNN_CASES[case], True, sizes=sizes, seed=2)
        function = FUSED.rnn_variant
    count = DIFFERENTIABLE[family]

    def run(*differentiable):
        return function(*differentiable, *arguments[count:], None)[:2]

    assert torch.autograd.gradcheck(run, tuple(arguments[:count]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ["layer_norm+zoneout+recurrent_dropout", "layer_norm",
                                  "zoneout+recurrent_dropout", "none"])
@pytest.mark.parametrize("batch", [64, 8])
def test_parallel_gru_matches_the_reference(case, dtype, batch):
    """A team of two threads gives the same numbers: at batch 64 each thread runs its own
    sequences; at batch 8 each owns hidden units (whole rows for layer norm). float32 runs the
    packed brgemm columns, float64 the BLAS ones."""
    torch.set_num_threads(2)
    arguments = _gru_arguments(dtype, GRU_CASES[case], True, sizes=(3, batch, 8, 64))
    _compare(_run("gru", GRUVariantFunction.apply, arguments),
             _run("gru", FUSED.gru_variant, arguments), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("batch", [64, 8])
def test_parallel_rnn_matches_the_reference(dtype, batch):
    """Both team splits (batch 64: own sequences; batch 8: own units). Weights of scale 0.15
    at width 64: a saturated tanh's 1 - h^2 would lose float32's digits on both paths alike
    (each ~1e-4 from the float64 numbers at scale 0.5)."""
    torch.set_num_threads(2)
    arguments = _rnn_arguments(dtype, RNN_CASES["tanh-zoneout+recurrent_dropout"], True,
                               sizes=(3, batch, 8, 64), scale=0.15)
    _compare(_run("rnn", RNNVariantFunction.apply, arguments),
             _run("rnn", FUSED.rnn_variant, arguments), dtype)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("family", ["gru", "rnn"])
def test_fused_variant_at_batch_one_and_two(family, batch):
    """float32 at batch 1 reads W_hh where it lies (dot products), at 2 packs it: both agree."""
    sizes = (4, batch, 8, 32)
    if family == "gru":
        options = GRU_CASES["layer_norm+zoneout+recurrent_dropout"]
        arguments = _gru_arguments(torch.float32, options, False, sizes=sizes)
        functions = (GRUVariantFunction.apply, FUSED.gru_variant)
    else:
        options = RNN_CASES["tanh-zoneout+recurrent_dropout"]
        arguments = _rnn_arguments(torch.float32, options, False, sizes=sizes, scale=0.15)
        functions = (RNNVariantFunction.apply, FUSED.rnn_variant)
    _compare(*[_run(family, function, arguments) for function in functions], torch.float32)


LAYER_CASES = {
    ("GRU", "layer_norm"): {"layer_norm": True},
    ("GRU", "zoneout+recurrent_dropout"): {"zoneout": 0.3, "recurrent_dropout": 0.25},
    ("GRU", "all+weight_drop"): {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.3,
                                 "weight_drop": 0.3},
    ("RNN", "tanh-zoneout+recurrent_dropout"): {"zoneout": 0.3, "recurrent_dropout": 0.25},
    ("RNN", "relu-zoneout"): {"zoneout": 0.2, "nonlinearity": "relu"},
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@DTYPES
@pytest.mark.parametrize("mode,case", list(LAYER_CASES), ids=[f"{m}-{c}" for m, c in LAYER_CASES])
def test_fused_layer_equals_reference_layer(mode, case, dtype, training):
    kwargs = dict(input_size=FEATURES, hidden_size=HIDDEN, num_layers=2, bidirectional=True,
                  **LAYER_CASES[mode, case])
    reference, fused = fused_twins(mode, dtype, **kwargs)
    reference.train(training)
    fused.train(training)
    leaf = torch.randn(STEPS, BATCH, FEATURES, dtype=dtype, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(leaf, torch.tensor([5, 2, 4]),
                                                     enforce_sorted=False)
    expected = layer_numbers(reference, packed, leaf, seed=3)
    actual = layer_numbers(fused, packed, leaf, seed=3)
    if LAYER_CASES[mode, case].get("layer_norm"):
        assert "layer1.dir1.extras.normalized_hh" in actual
    assert_same_numbers(actual, expected, dtype)


@pytest.mark.parametrize("mode,options", [("GRU", {"layer_norm": True, "zoneout": 0.2}),
                                          ("RNN", {"recurrent_dropout": 0.2})])
def test_fused_layer_actually_runs_the_kernel(mode, options):
    """The layer reaches the fused Function: breaking the reference one changes nothing."""
    reference, fused = fused_twins(mode, torch.float64, input_size=FEATURES, hidden_size=HIDDEN,
                              **options)
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64)
    torch.manual_seed(5)
    expected = reference(x)[0]

    torch.manual_seed(5)
    with reference_forbidden():  # every reference Function raises in here
        torch.testing.assert_close(fused(x)[0], expected, rtol=1e-10, atol=1e-10)
