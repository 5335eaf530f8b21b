"""The streaming fast path (rnnkit/streaming.py, csrc/stream.cpp): a call of one time step under
no_grad runs the family's step operator (``rnnkit::lstm_step``, ``gru_step``, ``rnn_step``) for
the whole stack, gives torch.nn's numbers (the variants': the reference backend's) and the
whole-sequence call's, and is not taken when a gradient may be asked for, internals are asked
for, or the step draws random masks (training mode); the layer's plan follows its weights,
dtype, mode and options.

Tolerances: float32 1e-5 and float64 1e-10, the suite's (tests/helpers.py): a step sums its
dot products in another order than torch.nn's GEMM, a few ulp.
"""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

import rnnkit
from tests.helpers import assert_close, fused_twins, states_of

FEATURES, HIDDEN = 7, 20
# case: (family, layer options, its step operator)
CASES = {
    "lstm": ("LSTM", {}, "lstm_step"),
    "lstm-proj": ("LSTM", {"proj_size": 6}, "lstm_step"),
    "gru": ("GRU", {}, "gru_step"),
    "rnn-tanh": ("RNN", {}, "rnn_step"),
    "rnn-relu": ("RNN", {"nonlinearity": "relu"}, "rnn_step"),
}
# (num_layers, bidirectional, batch or None for unbatched input, batch_first, bias): batch 1
# and 3 take dot products, 9 the GEMM path (csrc/stream.cpp, kDotMaxRows)
CONFIGS = {
    "one-layer": (1, False, 1, False, True),
    "stacked-bidirectional-batch_first": (2, True, 3, True, True),
    "stacked-gemm": (2, False, 9, False, True),
    "unbatched": (3, False, None, False, True),
    "no-bias-bidirectional": (1, True, 5, False, False),
}


def _twins(case, dtype=torch.float32, seed=0, hidden=HIDDEN, features=FEATURES, **options):
    """A torch.nn layer and an rnnkit layer (fused backend, eval) with the same weights."""
    family, extra, _ = CASES[case]
    torch.manual_seed(seed)
    reference = getattr(nn, family)(features, hidden, **extra, **options).to(dtype).eval()
    ours = getattr(rnnkit, family)(features, hidden, **extra, **options,
                                   backend="fused").to(dtype).eval()
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _step_input(steps, batch, batch_first, dtype=torch.float32, features=FEATURES):
    """``steps`` inputs of one step each, in the layout the layers take."""
    generator = torch.Generator().manual_seed(1)
    if batch is None:
        return [torch.randn(1, features, generator=generator, dtype=dtype) for _ in range(steps)]
    shape = (batch, 1, features) if batch_first else (1, batch, features)
    return [torch.randn(shape, generator=generator, dtype=dtype) for _ in range(steps)]


def _assert_same(actual, expected, dtype, what):
    output, state = actual
    assert output.shape == expected[0].shape, what
    assert_close(output, expected[0], dtype, f"{what}: output")
    for a, e in zip(states_of(state), states_of(expected[1]), strict=True):
        assert a.shape == e.shape, what
        assert_close(a, e, dtype, f"{what}: state")


def _stream(layer, inputs, state=None):
    results = []
    with torch.no_grad():
        for x_t in inputs:
            output, state = layer(x_t, state)
            results.append((output, state))
    return results


@pytest.mark.fused
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("case", list(CASES))
def test_streaming_calls_run_the_step_operator_with_torch_nns_numbers(case, config,
                                                                      _fused_kernels_ran):
    """Four calls, the first without a state, each carrying the state the last returned."""
    layers, bidirectional, batch, batch_first, bias = CONFIGS[config]
    reference, ours = _twins(case, num_layers=layers, bidirectional=bidirectional,
                             batch_first=batch_first, bias=bias)
    inputs = _step_input(4, batch, batch_first)
    for step, (actual, expected) in enumerate(zip(_stream(ours, inputs),
                                                  _stream(reference, inputs))):
        _assert_same(actual, expected, torch.float32, f"{case} {config} step {step}")
    assert dict(_fused_kernels_ran) == {CASES[case][2]: 4}


@pytest.mark.fused
@pytest.mark.parametrize("case", ["lstm-proj", "gru", "rnn-relu"])
def test_streaming_in_float64_and_across_threads(case, _fused_kernels_ran):
    """float64 at 1e-10; then hidden 96 at batch 2, enough work a step (csrc/stream.cpp:
    kParallelMacs) that its units are split between two threads."""
    reference, ours = _twins(case, torch.float64, num_layers=2)
    inputs = _step_input(3, 2, False, torch.float64)
    for actual, expected in zip(_stream(ours, inputs), _stream(reference, inputs)):
        _assert_same(actual, expected, torch.float64, f"{case} float64")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        reference, ours = _twins(case, hidden=96, features=96)
        inputs = _step_input(3, 2, False, features=96)
        for actual, expected in zip(_stream(ours, inputs), _stream(reference, inputs)):
            _assert_same(actual, expected, torch.float32, f"{case} hidden 96")
    finally:
        torch.set_num_threads(threads)
    assert set(_fused_kernels_ran) == {CASES[case][2]}


@pytest.mark.fused
@pytest.mark.parametrize("case", ["lstm", "gru", "rnn-tanh"])
def test_step_by_step_equals_the_whole_sequence_from_a_given_state(case, _fused_kernels_ran):
    """A stack of two layers, batch 3, 20 steps from a given state: the steps (step operator)
    give the whole-sequence call's numbers (inference operator)."""
    _, ours = _twins(case, num_layers=2)
    x = torch.randn(20, 3, FEATURES)
    h0 = torch.randn(2, 3, HIDDEN)
    state0 = (h0, torch.randn(2, 3, HIDDEN)) if CASES[case][0] == "LSTM" else h0
    with torch.no_grad():
        whole, final = ours(x, state0)
    steps = _stream(ours, [x[t : t + 1] for t in range(20)], state0)
    assert_close(torch.cat([output for output, _ in steps]), whole, torch.float32, "outputs")
    for actual, expected in zip(states_of(steps[-1][1]), states_of(final)):
        assert_close(actual, expected, torch.float32, "final state")
    assert _fused_kernels_ran[CASES[case][2]] == 20


@pytest.mark.fused
def test_the_step_operator_is_all_a_streaming_call_runs(_fused_kernels_ran):
    """What one call does, counted (deterministic, unlike its time): the operators torch's
    profiler sees are the step operator and the allocations of its results, and the Python
    functions of rnnkit's run are the forward, the plan and the step caller."""
    _, ours = _twins("gru")
    x = torch.randn(1, 1, FEATURES)
    with torch.no_grad():
        _, state = ours(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            ours(x, state)
    assert sorted(event.name for event in prof.events() if "::" in event.name) == [
        "aten::empty", "aten::empty", "rnnkit::gru_step"]
    frames = []

    def tracer(frame, event, _arg):
        if event == "call" and "/rnnkit/" in frame.f_code.co_filename:
            frames.append(frame.f_code.co_name)

    with torch.no_grad():
        sys.setprofile(tracer)
        try:
            ours(x, state)
        finally:
            sys.setprofile(None)
    assert frames == ["forward", "__call__", "step"]


# ---- not taken where a gradient may be asked for, or internals ---------------------------------
@pytest.mark.fused
@pytest.mark.parametrize("case", ["lstm", "gru", "rnn-tanh"])
def test_a_forward_that_needs_grad_runs_the_training_operator_and_backpropagates(
        case, _fused_kernels_ran):
    reference, ours = _twins(case, num_layers=2)
    ours.train()
    reference.train()
    x = torch.randn(1, 3, FEATURES)
    expected_output, _ = reference(x)
    expected_output.sum().backward()
    output, _ = ours(x)
    output.sum().backward()
    assert_close(output, expected_output, torch.float32, "output")
    for name, parameter in ours.named_parameters():
        assert_close(parameter.grad, getattr(reference, name).grad, torch.float32, name)
    assert not any(name.endswith("_step") for name in _fused_kernels_ran), dict(_fused_kernels_ran)
    assert any(name.endswith("_forward") for name in _fused_kernels_ran)


@pytest.mark.fused
def test_grad_mode_on_without_no_grad_is_not_streamed(_fused_kernels_ran):
    """Eval mode is no promise of no gradient: with grad on and weights requiring it, the call
    builds a graph."""
    _, ours = _twins("gru")
    output, _ = ours(torch.randn(1, 1, FEATURES))
    assert output.requires_grad
    assert "gru_step" not in _fused_kernels_ran


@pytest.mark.fused
def test_return_internals_at_one_step_is_not_streamed(_fused_kernels_ran):
    _, ours = _twins("lstm")
    with torch.no_grad():
        _, _, internals = ours(torch.randn(1, 2, FEATURES), return_internals=True)
    assert internals[0][0].gates["forget"].shape == (1, 2, HIDDEN)
    assert "lstm_step" not in _fused_kernels_ran


# ---- the plan follows the layer ---------------------------------------------------------------
@pytest.mark.fused
def test_replaced_and_updated_weights_are_seen(_fused_kernels_ran):
    reference, ours = _twins("lstm", num_layers=2)
    inputs = _step_input(2, 1, False)
    _stream(ours, inputs)
    with torch.no_grad():
        for layer in (reference, ours):  # an optimizer's step, in place
            layer.bias_ih_l1.add_(0.5)
    _assert_same(_stream(ours, inputs)[-1], _stream(reference, inputs)[-1], torch.float32,
                 "updated in place")
    new = torch.randn(4 * HIDDEN, HIDDEN)
    for layer in (reference, ours):  # a new Parameter object
        layer.weight_hh_l0 = nn.Parameter(new.clone())
    _assert_same(_stream(ours, inputs)[-1], _stream(reference, inputs)[-1], torch.float32,
                 "replaced")
    other = nn.LSTM(FEATURES, HIDDEN, num_layers=2).eval()  # load_state_dict copies in place
    ours.load_state_dict(other.state_dict())
    _assert_same(_stream(ours, inputs)[-1], _stream(other, inputs)[-1], torch.float32, "loaded")
    assert dict(_fused_kernels_ran) == {"lstm_step": 8}


@pytest.mark.fused
def test_a_changed_dtype_or_device_is_followed_and_a_mismatch_raises_as_before(_fused_kernels_ran):
    reference, ours = _twins("gru")
    _stream(ours, _step_input(1, 1, False))
    reference.double()
    ours.double()
    inputs = _step_input(2, 1, False, torch.float64)
    _assert_same(_stream(ours, inputs)[-1], _stream(reference, inputs)[-1], torch.float64,
                 "float64")
    assert _fused_kernels_ran["gru_step"] == 3
    with pytest.raises(ValueError, match="has dtype torch.float32 but the parameters are "
                                         "torch.float64"):
        _stream(ours, _step_input(1, 1, False))
    ours.to("meta")  # another device: the weights' device is read on every call too
    with pytest.raises(ValueError, match="is on device cpu but the parameters are on meta"):
        _stream(ours, inputs)
    assert _fused_kernels_ran["gru_step"] == 3


@pytest.mark.fused
def test_training_mode_with_dropout_between_layers_is_not_streamed(_fused_kernels_ran):
    """In training, dropout between layers (and recurrent dropout) draws masks even under
    no_grad: the general path; eval() takes the plan again."""
    _, ours = _twins("gru", num_layers=2, dropout=0.5)
    inputs = _step_input(2, 1, False)
    _stream(ours, inputs)
    assert _fused_kernels_ran["gru_step"] == 2
    ours.train()
    _stream(ours, inputs)
    assert _fused_kernels_ran["gru_step"] == 2 and _fused_kernels_ran["gru_infer"] == 4
    ours.eval()
    _stream(ours, inputs)
    assert _fused_kernels_ran["gru_step"] == 4


@pytest.mark.fused
def test_recurrent_dropout_and_weight_drop_stream_in_eval_only(_fused_kernels_ran):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(FEATURES, HIDDEN, recurrent_dropout=0.3, weight_drop=0.2,
                        backend="fused").eval()
    plain = rnnkit.LSTM(FEATURES, HIDDEN, backend="reference").eval()
    plain.load_state_dict(layer.state_dict())
    inputs = _step_input(2, 1, False)
    _assert_same(_stream(layer, inputs)[-1], _stream(plain, inputs)[-1], torch.float32, "eval")
    assert _fused_kernels_ran["lstm_step"] == 2
    layer.train()
    _stream(layer, inputs)
    assert _fused_kernels_ran["lstm_step"] == 2 and _fused_kernels_ran["lstm_variant_infer"] == 2


@pytest.mark.fused
def test_a_changed_option_is_followed(_fused_kernels_ran):
    """batch_first set after the layer has streamed: the next call reads (N, 1, H_in)."""
    reference, ours = _twins("rnn-tanh")
    _stream(ours, _step_input(1, 3, False))
    reference.batch_first = ours.batch_first = True
    inputs = _step_input(2, 3, True)
    _assert_same(_stream(ours, inputs)[-1], _stream(reference, inputs)[-1], torch.float32,
                 "batch_first")
    assert _stream(ours, inputs)[-1][0].shape == (3, 1, HIDDEN)
    assert _fused_kernels_ran["rnn_step"] == 5


# variant case: (family, options); every parameter drawn at scale 0.4 (tests/helpers.py)
VARIANTS = {
    "gru-layer_norm": ("GRU", {"layer_norm": True}),
    "gru-layer_norm+zoneout": ("GRU", {"layer_norm": True, "zoneout": 0.3,
                                       "recurrent_dropout": 0.2}),
    "lstm-layer_norm": ("LSTM", {"layer_norm": True}),
    "lstm-peephole": ("LSTM", {"peephole": True}),
    "lstm-coupled+zoneout": ("LSTM", {"coupled_gates": True, "zoneout": (0.2, 0.4)}),
    "lstm-all": ("LSTM", {"layer_norm": True, "peephole": True, "coupled_gates": True,
                          "zoneout": 0.1, "recurrent_dropout": 0.2, "weight_drop": 0.3}),
    "rnn-zoneout": ("RNN", {"zoneout": 0.25, "nonlinearity": "relu"}),
}


@pytest.mark.fused
@pytest.mark.parametrize("config", ["stacked-batch-1", "bidirectional-gemm"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_stream_their_eval_step(variant, config, _fused_kernels_ran):
    """In eval every variant's step is the step operator's (zoneout its expectation, recurrent
    dropout and weight drop nothing): the reference backend's numbers, call by call, and a
    unidirectional stack's whole-sequence numbers (the variant inference operator)."""
    family, options = VARIANTS[variant]
    layers, bidirectional, batch = (2, False, 1) if config == "stacked-batch-1" else (1, True, 9)
    reference, fused = fused_twins(family, torch.float32, input_size=FEATURES,
                                   hidden_size=HIDDEN, num_layers=layers,
                                   bidirectional=bidirectional, **options)
    reference.eval()
    fused.eval()
    inputs = _step_input(4, batch, False)
    streamed = _stream(fused, inputs)
    for step, (actual, expected) in enumerate(zip(streamed, _stream(reference, inputs))):
        _assert_same(actual, expected, torch.float32, f"{variant} step {step}")
    operator = f"{family.lower()}_step"
    assert _fused_kernels_ran[operator] == 4
    if not bidirectional:
        with torch.no_grad():
            whole, final = fused(torch.cat(inputs))
        _assert_same((torch.cat([output for output, _ in streamed]), streamed[-1][1]),
                     (whole, final), torch.float32, f"{variant} whole sequence")
        assert _fused_kernels_ran[f"{family.lower()}_variant_infer"] == layers


@pytest.mark.fused
@pytest.mark.parametrize("variant", ["gru-layer_norm+zoneout", "lstm-all", "rnn-zoneout"])
def test_variants_that_draw_masks_are_not_streamed_in_training(variant, _fused_kernels_ran):
    """Zoneout and recurrent dropout draw a mask a call in training, even under no_grad: the
    general path draws them (its variant operator), and eval() streams again."""
    family, options = VARIANTS[variant]
    _, fused = fused_twins(family, torch.float32, input_size=FEATURES, hidden_size=HIDDEN,
                           **options)
    inputs = _step_input(2, 1, False)
    fused.train()
    _stream(fused, inputs)
    assert f"{family.lower()}_step" not in _fused_kernels_ran
    assert _fused_kernels_ran[f"{family.lower()}_variant_infer"] == 2
    fused.eval()
    _stream(fused, inputs)
    assert _fused_kernels_ran[f"{family.lower()}_step"] == 2


@pytest.mark.fused
def test_layer_norm_without_masks_streams_in_training_mode_too(_fused_kernels_ran):
    reference, fused = fused_twins("LSTM", torch.float32, input_size=FEATURES,
                                   hidden_size=HIDDEN, layer_norm=True, peephole=True)
    inputs = _step_input(2, 3, False)
    _assert_same(_stream(fused, inputs)[-1], _stream(reference, inputs)[-1], torch.float32,
                 "training mode")
    assert _fused_kernels_ran["lstm_step"] == 2


@pytest.mark.fused
def test_an_indrnn_is_not_streamed(_fused_kernels_ran):
    """Its own step (a vector recurrent weight): the general path, one operator a layer."""
    torch.manual_seed(0)
    layer = rnnkit.IndRNN(FEATURES, HIDDEN, backend="fused").eval()
    x = torch.randn(3, 2, FEATURES)
    with torch.no_grad():
        whole, _ = layer(x)
    steps = _stream(layer, [x[t : t + 1] for t in range(3)])
    assert_close(torch.cat([output for output, _ in steps]), whole, torch.float32, "steps")
    assert not any(name.endswith("_step") for name in _fused_kernels_ran), dict(_fused_kernels_ran)


@pytest.mark.fused(calls=False)  # the int8 operators are called through their own seam
def test_an_int8_layer_is_not_streamed(_fused_kernels_ran):
    torch.manual_seed(0)
    layer = rnnkit.quantize(rnnkit.GRU(FEATURES, HIDDEN, backend="fused"))
    x = torch.randn(3, 2, FEATURES)
    with torch.no_grad():
        whole, _ = layer(x)
    steps = _stream(layer, [x[t : t + 1] for t in range(3)])
    assert_close(torch.cat([output for output, _ in steps]), whole, torch.float32, "steps")
    assert "gru_step" not in _fused_kernels_ran


@pytest.mark.fused(calls=False)
def test_the_reference_backend_is_not_streamed(_fused_kernels_ran):
    reference, ours = _twins("gru")
    ours = rnnkit.GRU(FEATURES, HIDDEN, backend="reference").eval()
    ours.load_state_dict(reference.state_dict())
    inputs = _step_input(2, 1, False)
    _assert_same(_stream(ours, inputs)[-1], _stream(reference, inputs)[-1], torch.float32,
                 "reference")
    assert not _fused_kernels_ran


@pytest.mark.fused
def test_a_copy_of_a_streamed_layer_streams_its_own_weights(_fused_kernels_ran):
    reference, ours = _twins("lstm")
    inputs = _step_input(2, 1, False)
    _stream(ours, inputs)
    copied = copy.deepcopy(ours)
    with torch.no_grad():
        copied.weight_ih_l0.mul_(2)
        reference.weight_ih_l0.mul_(2)
    _assert_same(_stream(copied, inputs)[-1], _stream(reference, inputs)[-1], torch.float32,
                 "copy")
    assert _fused_kernels_ran["lstm_step"] == 4


@pytest.mark.fused
def test_invalid_calls_raise_the_general_paths_errors(_fused_kernels_ran):
    _, ours = _twins("lstm", num_layers=2)
    with torch.no_grad():
        _, state = ours(torch.randn(1, 1, FEATURES))
        with pytest.raises(ValueError, match=r"has 5 features in its last dimension"):
            ours(torch.randn(1, 1, 5), state)
        with pytest.raises(ValueError,
                           match=r"`h_0` has shape \(2, 3, 20\), expected \(2, 1, 20\)"):
            ours(torch.randn(1, 1, FEATURES), (torch.zeros(2, 3, HIDDEN), state[1]))
        with pytest.raises(ValueError, match=r"`hx` must be a tuple \(h_0, c_0\)"):
            ours(torch.randn(1, 1, FEATURES), state[0])
    assert _fused_kernels_ran["lstm_step"] == 1


# ---- the operators themselves -----------------------------------------------------------------
def _weights(layer):
    return [weight for weights in layer.all_weights for weight in weights]


@pytest.mark.fused(calls=False)  # opcheck calls torch.ops.rnnkit itself
@pytest.mark.parametrize("case", list(CASES))
def test_step_operators_pass_opcheck(case):
    """Schema, fake (shapes and dtypes), no aliasing: what torch.compile and torch.export rely
    on to trace a call."""
    family, extra, name = CASES[case]
    torch.manual_seed(0)
    operator = getattr(torch.ops.rnnkit, name).default
    for layers, bidirectional, batch, bias in ((1, False, 1, True), (2, True, 3, False)):
        layer = getattr(rnnkit, family)(FEATURES, HIDDEN, num_layers=layers,
                                        bidirectional=bidirectional, bias=bias, **extra)
        weights = [w.detach() for w in _weights(layer)]
        slots, out = layers * (2 if bidirectional else 1), extra.get("proj_size", HIDDEN)
        x = torch.randn(1, batch, FEATURES) if batch > 1 else torch.randn(1, FEATURES)
        state = (slots, batch, out) if batch > 1 else (slots, out)
        h0 = torch.randn(state)
        if family == "LSTM":
            arguments = [(x, h0, torch.randn(*state[:-1], HIDDEN)), (x, None, None)]
        else:
            arguments = [(x, h0), (x, None)]
        tail = (weights, layers, bidirectional, bias) + ((extra.get("nonlinearity") == "relu",)
                                                         if family == "RNN" else ())
        for head in arguments:
            torch.library.opcheck(operator, head + tail)


@pytest.mark.fused
def test_a_layer_compiled_after_streaming_equals_eager(_fused_kernels_ran):
    """Under torch.compile the plan is not taken (the general path's inference operator is
    traced), and a layer that has streamed compiles with fullgraph."""
    _, ours = _twins("gru", num_layers=2)
    x = torch.randn(1, 2, FEATURES)
    with torch.no_grad():
        expected = ours(x)
        compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
        actual = compiled(x)
    for a, e in zip(actual, expected):
        assert_close(a, e, torch.float32, "compiled")
    assert _fused_kernels_ran["gru_step"] == 1

