"""The variants on the fused C++ path give the reference path's numbers.

For every variant and a few combinations: the fused Functions against the reference ones
(rnnkit.bptt.lstm_variants / gru_variants) with the same masks, comparing outputs, final
states, extras, every gradient and the recorder's dL/dh_t and dL/dc_t, with and without a
ragged mask; gradcheck on the fused Functions; and the layers with backend="fused" against
backend="reference", internals included.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.bptt.common import GradientRecorder
from rnnkit.bptt.lstm_variants import LSTMVariantFunction
from tests.helpers import (
    assert_close,
    assert_same_numbers,
    fused_functions,
    fused_twins,
    layer_numbers,
    reference_forbidden,
)

FUSED = fused_functions()
# fused: skipped without kernels, must call them; one_thread: test_parallel_* set two
pytestmark = [pytest.mark.fused, pytest.mark.usefixtures("one_thread")]




STEPS, BATCH, FEATURES, HIDDEN = 5, 3, 4, 6
LSTM_CASES = {
    "layer_norm": {"layer_norm": True},
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "zoneout": {"zoneout": True},
    "zoneout_h_only": {"zoneout_h": True},
    "recurrent_dropout": {"recurrent_dropout": True},
    "layer_norm+peephole": {"layer_norm": True, "peephole": True},
    "zoneout+recurrent_dropout": {"zoneout": True, "recurrent_dropout": True},
    "coupled+layer_norm": {"coupled": True, "layer_norm": True},
    "all": {"layer_norm": True, "peephole": True, "coupled": True, "zoneout": True,
            "recurrent_dropout": True},
}


def _lstm_arguments(dtype, options, ragged, seed=0, bias=True, eval_zoneout=False,
                    sizes=(STEPS, BATCH, FEATURES, HIDDEN)):
    """The 20 arguments of LSTMVariantFunction.apply, drawn in float64 and cast to dtype."""
    STEPS, BATCH, FEATURES, HIDDEN = sizes  # noqa: N806 (the module's sizes, or others)
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape, scale=1.0, shift=0.0):
        values = torch.randn(*shape, generator=generator, dtype=torch.float64) * scale + shift
        return values.to(dtype).requires_grad_(True)

    def share(shape, p):
        return (torch.rand(shape, generator=generator, dtype=torch.float64) < p).to(dtype)

    x, h0, c0 = draw(STEPS, BATCH, FEATURES), draw(BATCH, HIDDEN), draw(BATCH, HIDDEN)
    weight_ih = draw(4 * HIDDEN, FEATURES, scale=0.5)
    weight_hh = draw(4 * HIDDEN, HIDDEN, scale=0.5)
    bias_ih, bias_hh = (draw(4 * HIDDEN), draw(4 * HIDDEN)) if bias else (None, None)
    norms = [None] * 6
    if options.get("layer_norm"):
        norms = [draw(4 * HIDDEN, scale=0.2, shift=1.0), draw(4 * HIDDEN, scale=0.2),
                 draw(4 * HIDDEN, scale=0.2, shift=1.0), draw(4 * HIDDEN, scale=0.2),
                 draw(HIDDEN, scale=0.2, shift=1.0), draw(HIDDEN, scale=0.2)]
    peephole = draw(3 * HIDDEN, scale=0.5) if options.get("peephole") else None
    recurrent_mask = None
    if options.get("recurrent_dropout"):
        recurrent_mask = share((BATCH, HIDDEN), 0.7) / 0.7
    zone_h = zone_c = None
    if options.get("zoneout") or options.get("zoneout_h"):
        if eval_zoneout:  # the expectation, expanded from one element as the layer passes it
            zone_h = torch.full((1, 1, 1), 0.3, dtype=dtype).expand(STEPS, BATCH, HIDDEN)
        else:
            zone_h = share((STEPS, BATCH, HIDDEN), 0.3)
        if options.get("zoneout"):
            zone_c = share((STEPS, BATCH, HIDDEN), 0.2)
    mask = None
    if ragged:
        lengths = torch.arange(BATCH) % STEPS + 1
        lengths[0] = STEPS
        mask = (torch.arange(STEPS)[:, None] < lengths).to(dtype).unsqueeze(-1)  # (T, N, 1)
    return [x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, *norms, peephole,
            recurrent_mask, zone_h, zone_c, bool(options.get("coupled")), mask]


def _differentiable(arguments):
    return [a for a in arguments[:14] if isinstance(a, torch.Tensor)]


def _run(function, arguments, seed=1):
    """Outputs, the gradients of a loss over output, h_n and c_n, and the recorder."""
    recorder = GradientRecorder()
    outputs = function(*arguments, recorder)
    generator = torch.Generator().manual_seed(seed)
    loss = sum(
        (t * torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.dtype)).sum()
        for t in outputs[:3]
    )
    grads = torch.autograd.grad(loss, _differentiable(arguments))
    return outputs, grads, recorder


def _compare(expected, actual, dtype):
    (outputs_e, grads_e, recorder_e), (outputs_a, grads_a, recorder_a) = expected, actual
    names = ["output", "h_n", "c_n", "cells", "gates", "normalized_ih", "normalized_hh",
             "normalized_cell"]
    assert len(outputs_e) == len(outputs_a) == len(names)
    for name, e, a in zip(names, outputs_e, outputs_a):
        if e is None:
            assert a is None, name
        else:
            assert_close(a, e, dtype, name)
    assert len(grads_e) == len(grads_a)
    for index, (e, a) in enumerate(zip(grads_e, grads_a)):
        assert_close(a, e, dtype, f"gradient {index}")
    assert_close(recorder_a.hidden_grad, recorder_e.hidden_grad, dtype, "hidden_grad")
    assert_close(recorder_a.cell_grad, recorder_e.cell_grad, dtype, "cell_grad")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_fused_lstm_variant_equals_reference(case, ragged, dtype):
    arguments = _lstm_arguments(dtype, LSTM_CASES[case], ragged)
    expected = _run(LSTMVariantFunction.apply, arguments)
    actual = _run(FUSED.lstm_variant, arguments)
    _compare(expected, actual, dtype)


@pytest.mark.parametrize("case", ["zoneout", "zoneout_h_only", "all"])
def test_fused_lstm_eval_zoneout_expectation(case):
    arguments = _lstm_arguments(torch.float64, LSTM_CASES[case], True, eval_zoneout=True)
    _compare(_run(LSTMVariantFunction.apply, arguments), _run(FUSED.lstm_variant, arguments),
             torch.float64)


def test_fused_lstm_variant_without_bias_and_without_graph():
    arguments = _lstm_arguments(torch.float64, LSTM_CASES["all"], True, bias=False)
    _compare(_run(LSTMVariantFunction.apply, arguments), _run(FUSED.lstm_variant, arguments),
             torch.float64)
    with torch.no_grad():  # the inference path builds no graph and gives the same numbers
        expected = LSTMVariantFunction.apply(*arguments, None)
        actual = FUSED.lstm_variant(*arguments, None)
    for e, a in zip(expected[:3], actual[:3]):  # output, h_n, c_n
        assert_close(a, e, torch.float64, "no-grad output")
        assert not a.requires_grad
    assert all(a is None for a in actual[3:])  # the inference operator keeps no internals


@pytest.mark.fused(calls=False)  # bfloat16: the reference Function, by design no kernel
def test_uncovered_dtype_runs_the_reference_function():
    arguments = _lstm_arguments(torch.bfloat16, LSTM_CASES["layer_norm+peephole"], False)
    expected = LSTMVariantFunction.apply(*arguments, None)
    actual = FUSED.lstm_variant(*arguments, None)
    assert actual[0].grad_fn.name() == expected[0].grad_fn.name()
    torch.testing.assert_close(actual[0], expected[0], rtol=0, atol=0)


@pytest.mark.parametrize("case", ["all", "layer_norm+peephole", "zoneout+recurrent_dropout"])
def test_fused_lstm_variant_gradcheck(case):
    arguments = _lstm_arguments(torch.float64, LSTM_CASES[case], True, sizes=(3, 3, 2, 3))
    inputs = tuple(arguments[:14])

    def run(*differentiable):
        return FUSED.lstm_variant(*differentiable, *arguments[14:], None)[:3]

    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "case", ["all", "layer_norm", "zoneout+recurrent_dropout", "peephole", "coupled"]
)
@pytest.mark.parametrize("batch", [64, 8])
def test_parallel_rows_match_the_reference(case, dtype, batch):
    """A team of two threads gives the same numbers: at batch 64 each thread runs its own
    sequences; at batch 8 each owns hidden units (whole rows for layer norm). float32 runs the
    packed brgemm columns, float64 the BLAS ones."""
    torch.set_num_threads(2)
    arguments = _lstm_arguments(dtype, LSTM_CASES[case], True, sizes=(3, batch, 8, 64))
    _compare(_run(LSTMVariantFunction.apply, arguments), _run(FUSED.lstm_variant, arguments),
             dtype)


LAYER_CASES = {
    "layer_norm": {"layer_norm": True},
    "zoneout+recurrent_dropout": {"zoneout": (0.3, 0.2), "recurrent_dropout": 0.25},
    "peephole+coupled": {"peephole": True, "coupled_gates": True},
    "weight_drop": {"weight_drop": 0.4},
    "layer_norm+weight_drop+zoneout": {"layer_norm": True, "weight_drop": 0.3, "zoneout": 0.1},
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_fused_layer_equals_reference_layer(case, dtype, training):
    kwargs = dict(input_size=FEATURES, hidden_size=HIDDEN, num_layers=2, bidirectional=True,
                  **LAYER_CASES[case])
    reference, fused = fused_twins("LSTM", dtype, **kwargs)
    reference.train(training)
    fused.train(training)
    leaf = torch.randn(STEPS, BATCH, FEATURES, dtype=dtype, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(leaf, torch.tensor([5, 2, 4]),
                                                     enforce_sorted=False)
    expected = layer_numbers(reference, packed, leaf, seed=3)
    actual = layer_numbers(fused, packed, leaf, seed=3)
    if LAYER_CASES[case].get("layer_norm"):
        assert "layer0.dir1.extras.normalized_hh" in actual
    assert_same_numbers(actual, expected, dtype)


def test_fused_layer_actually_runs_the_kernel():
    """The layer reaches the fused Function: breaking the reference one changes nothing."""
    reference, fused = fused_twins("LSTM", torch.float64, input_size=FEATURES, hidden_size=HIDDEN,
                              layer_norm=True, peephole=True)
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64)
    expected = reference(x)[0]

    with reference_forbidden():  # every reference Function raises in here
        torch.testing.assert_close(fused(x)[0], expected, rtol=1e-10, atol=1e-10)


def test_bench_variants_cli_prints_every_row(capsys):
    from rnnkit.bench_variants import VARIANTS
    from rnnkit.cli import main

    assert main(["bench", "--variants", "--sizes", "2x4", "3x5", "--T", "3", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("LSTM variants, forward+backward, T=3")
    for batch, hidden in ((2, 4), (3, 5)):
        size = [str(batch), str(hidden), "3"]
        rows = [line.split() for line in lines if line.split()[:3] == size]
        names = [row[3] for row in rows]
        assert names == ["plain", *VARIANTS, "step-loop"]
        assert rows[0][-3:] == ["x1.00", "(the", "base)"]
        assert all(float(row[-3].removeprefix("x")) > 0 for row in rows[1:-1])  # cost ratios
        assert rows[-1][-4] == "layer_norm" and rows[-1][-1] == "faster"  # the speed-up
        assert float(rows[-1][-2].removeprefix("x")) > 0


@pytest.mark.fused(calls=False)  # rejected before any layer runs
def test_bench_variants_cli_rejects_a_bad_size(capsys):
    from rnnkit.cli import main

    assert main(["bench", "--variants", "--sizes", "32by256"]) == 2
    assert "--sizes" in capsys.readouterr().err
