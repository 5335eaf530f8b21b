"""The inference operators (csrc/infer.cpp, rnnkit/kernels/infer.py): a forward that needs no
gradient runs them, gives the training forward's numbers and the float64 reference's, and a
forward that needs one still runs the training operators.

Tolerances: float32 against float32 training and against the float64 reference, 1e-5 (the
suite's float32 tolerance, tests/helpers.py: the inference kernels sum the input projection in
another order, a few ulp over T <= 7 steps); float64 against float64 training, 1e-10.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from tests.helpers import TOLERANCE, assert_close, make_input, output_tensor, states_of

LAYERS = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "RNN": rnnkit.RNN, "IndRNN": rnnkit.IndRNN}
# (family, layer options, the inference operator it must run)
CASES = {
    "lstm": ("LSTM", {}, "lstm_infer"),
    "lstm-proj": ("LSTM", {"proj_size": 3}, "lstm_infer"),
    "gru": ("GRU", {}, "gru_infer"),
    "rnn-tanh": ("RNN", {}, "rnn_infer"),
    "rnn-relu": ("RNN", {"nonlinearity": "relu"}, "rnn_infer"),
    "indrnn": ("IndRNN", {}, "indrnn_infer"),
    "lstm-layer_norm": ("LSTM", {"layer_norm": True}, "lstm_variant_infer"),
    "lstm-zoneout": ("LSTM", {"zoneout": (0.2, 0.3)}, "lstm_variant_infer"),
    "lstm-recurrent_dropout": ("LSTM", {"recurrent_dropout": 0.3}, "lstm_variant_infer"),
    "lstm-peephole": ("LSTM", {"peephole": True}, "lstm_variant_infer"),
    "lstm-coupled": ("LSTM", {"coupled_gates": True}, "lstm_variant_infer"),
    "lstm-all": ("LSTM", {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.2,
                          "peephole": True, "coupled_gates": True}, "lstm_variant_infer"),
    "gru-layer_norm+zoneout": ("GRU", {"layer_norm": True, "zoneout": 0.2,
                                       "recurrent_dropout": 0.1}, "gru_variant_infer"),
    "rnn-zoneout": ("RNN", {"zoneout": 0.25, "recurrent_dropout": 0.1}, "rnn_variant_infer"),
}
STEPS, BATCH, FEATURES, HIDDEN = 7, 4, 5, 6


def _layer(case, dtype, backend="fused", seed=0, **extra):
    family, options, _ = CASES[case]
    torch.manual_seed(seed)
    layer = LAYERS[family](FEATURES, HIDDEN, backend=backend, **options, **extra)
    return layer.to(dtype).eval()  # eval: zoneout its expectation, no recurrent dropout


def _numbers(result):
    output, state = result
    return (output_tensor(output),) + states_of(state)


def _training_ops(calls) -> set[str]:
    return {name for name in calls if name.endswith("_forward")}


def _infer_ops(calls) -> set[str]:
    return {name for name in calls if name.endswith("_infer")}


@pytest.mark.fused
@pytest.mark.parametrize("packing", ["padded", "unsorted"])
@pytest.mark.parametrize("case", list(CASES))
def test_no_grad_forward_runs_the_inference_operator_with_the_training_numbers(
        case, packing, _fused_kernels_ran):
    calls = _fused_kernels_ran
    kwargs = {"num_layers": 2, "bidirectional": True}
    layer = _layer(case, torch.float32, **kwargs)
    generator = torch.Generator().manual_seed(1)
    packed, leaf = make_input(STEPS, BATCH, FEATURES, torch.float32, False, packing, generator)
    # training path: a graph is wanted (the input and weights require grad)
    trained = _numbers(layer(packed))
    assert trained[0].requires_grad
    assert _training_ops(calls) and not _infer_ops(calls), dict(calls)
    calls.clear()
    with torch.no_grad():
        inferred = _numbers(layer(packed))
    operator = CASES[case][2]
    assert _infer_ops(calls) == {operator}, dict(calls)
    assert not _training_ops(calls), dict(calls)
    assert calls[operator] == 4  # 2 layers x 2 directions
    for name, actual, expected in zip(("output", "h_n", "c_n"), inferred, trained):
        assert not actual.requires_grad
        assert_close(actual, expected.detach(), torch.float32, f"{name} vs training")
    # the float64 reference (rnnkit.bptt) on the same weights
    reference = _layer(case, torch.float64, backend="reference", **kwargs)
    reference.load_state_dict(layer.state_dict())
    packed64 = packed.detach().double() if packing == "padded" else packed.double()
    with torch.no_grad():
        expected64 = _numbers(reference(packed64))
    for name, actual, expected in zip(("output", "h_n", "c_n"), inferred, expected64):
        assert_close(actual.double(), expected, torch.float32, f"{name} vs float64 reference")


@pytest.mark.fused
@pytest.mark.parametrize("case", list(CASES))
def test_inputs_without_grad_take_the_inference_path_in_float64(case, _fused_kernels_ran):
    """Grad mode on, but nothing requires grad (frozen weights): still the inference path."""
    calls = _fused_kernels_ran
    layer = _layer(case, torch.float64, num_layers=2)
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    trained = _numbers(layer(packed))
    calls.clear()
    layer.requires_grad_(False)
    inferred = _numbers(layer(packed))
    assert _infer_ops(calls) == {CASES[case][2]} and not _training_ops(calls), dict(calls)
    for name, actual, expected in zip(("output", "h_n", "c_n"), inferred, trained):
        assert_close(actual, expected.detach(), torch.float64, name)


@pytest.mark.fused
@pytest.mark.parametrize("batch", [1, 3, 40])
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
@pytest.mark.parametrize("whole", [False, True])
def test_time_blocks_and_threads_match_the_training_kernel(family, batch, whole,
                                                          _fused_kernels_ran, monkeypatch):
    """Long enough for several input-projection blocks (and a short last one), wide enough for a
    team of threads; batch 40 splits the batch between threads, 3 splits the units. Sequences
    this short are projected whole unless RNNKIT_INFER_WHOLE_FLOATS forces the blocks."""
    if not whole:
        monkeypatch.setenv("RNNKIT_INFER_WHOLE_FLOATS", "0")
    torch.manual_seed(0)
    layer = LAYERS[family](24, 64, backend="fused").eval()
    x = torch.randn(75, batch, 24)
    trained = _numbers(layer(x))
    with torch.no_grad():
        inferred = _numbers(layer(x))
    assert _infer_ops(_fused_kernels_ran)
    for actual, expected in zip(inferred, trained):
        assert_close(actual, expected.detach(), torch.float32, family)


@pytest.mark.fused
def test_return_internals_still_runs_the_training_operator(_fused_kernels_ran):
    layer = _layer("lstm", torch.float32)
    with torch.no_grad():
        _, _, internals = layer(torch.randn(STEPS, BATCH, FEATURES), return_internals=True)
    assert internals[0][0].gates["input"].shape == (STEPS, BATCH, HIDDEN)
    assert "lstm_forward" in _fused_kernels_ran and not _infer_ops(_fused_kernels_ran)


@pytest.mark.fused
def test_no_gate_buffer_is_allocated_under_no_grad(monkeypatch):
    """The training forward allocates (T+1, N, H) cells and (T, N, 4H) gates; the inference
    path allocates only the output and the states (its projection block is per-thread scratch;
    a short sequence, projected whole, allocates its input projection and no cells).
    Counted by torch's profiler on CPU memory: every allocation's size."""
    monkeypatch.setenv("RNNKIT_INFER_WHOLE_FLOATS", "0")
    torch.manual_seed(0)
    layer = rnnkit.LSTM(16, 32, backend="fused").eval()
    x = torch.randn(200, 2, 16)

    def allocated(grad: bool) -> int:
        context = torch.enable_grad() if grad else torch.no_grad()
        with context, torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                             profile_memory=True) as profile:
            layer(x)
        return max(event.cpu_memory_usage for event in profile.events())

    gates_bytes = 200 * 2 * 4 * 32 * 4
    assert allocated(True) >= gates_bytes
    assert allocated(False) < gates_bytes
    monkeypatch.delenv("RNNKIT_INFER_WHOLE_FLOATS")
    assert allocated(False) < allocated(True)  # the projection only: no cells, no hiddens


@pytest.mark.fused
def test_inference_path_under_torch_compile(_fused_kernels_ran):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(5, 8, num_layers=2, backend="fused").eval()
    x = torch.randn(6, 3, 5)
    with torch.no_grad():
        expected = _numbers(layer(x))
        compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
        actual = _numbers(compiled(x))
        graph = torch.export.export(layer, (x,)).graph_module.code
    assert "rnnkit.lstm_infer" in graph and "lstm_forward" not in graph
    for a, e in zip(actual, expected):
        assert_close(a, e, torch.float32, "compiled")
    assert TOLERANCE[torch.float32] == 1e-5


def test_combined_bias_is_cached_per_version():
    from rnnkit.kernels.infer import combined_bias

    bias_ih, bias_hh = torch.randn(8), torch.randn(8)
    first = combined_bias(bias_ih, bias_hh)
    assert combined_bias(bias_ih, bias_hh) is first
    bias_hh.add_(1.0)  # an optimizer step: a new version
    second = combined_bias(bias_ih, bias_hh)
    assert second is not first
    torch.testing.assert_close(second, bias_ih + bias_hh, rtol=0, atol=0)
    assert combined_bias(bias_ih, torch.randn(8)) is not second  # another partner


# case: the streaming step operator its steps run (rnnkit.streaming), or None where the
# layer has no step operator and each step runs the inference operator of every layer
STREAM_CASES = {"lstm": "lstm_step", "lstm-proj": "lstm_step", "gru": "gru_step",
                "rnn-tanh": "rnn_step", "indrnn": None, "lstm-all": "lstm_step",
                "gru-layer_norm+zoneout": "gru_step", "rnn-zoneout": "rnn_step"}


@pytest.mark.fused
@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_step_by_step_equals_the_whole_sequence(case, _fused_kernels_ran):
    """50 calls of layer.step at T=1, batch 1, carrying the state, give one call's numbers."""
    layer = _layer(case, torch.float32, num_layers=2)
    x = torch.randn(50, 1, FEATURES)
    with torch.no_grad():
        whole, final = layer(x)
        state, outputs = None, []
        for x_t in x:  # (1, H_in): one step of a batch of one
            y_t, state = layer.step(x_t, state)
            outputs.append(y_t)
    step_operator = STREAM_CASES[case]
    if step_operator is None:
        assert _fused_kernels_ran[CASES[case][2]] == 2 * 51
    else:  # the whole sequence: one inference operator a layer; a step: one for the stack
        assert _fused_kernels_ran[CASES[case][2]] == 2
        assert _fused_kernels_ran[step_operator] == 50
    assert_close(torch.stack(outputs), whole, torch.float32, "outputs")
    for actual, expected in zip(states_of(state), states_of(final)):
        assert_close(actual, expected, torch.float32, "final state")


@pytest.mark.parametrize("batch_first", [False, True])
def test_step_takes_a_one_step_sequence_in_the_layers_layout(batch_first):
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 4, batch_first=batch_first).eval()
    x = torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)
    whole, _ = layer(x)
    state = None
    for t in range(5):
        x_t = x[:, t : t + 1] if batch_first else x[t : t + 1]
        y_t, state = layer.step(x_t, state)
        expected = whole[:, t : t + 1] if batch_first else whole[t : t + 1]
        assert_close(y_t, expected, torch.float32, f"step {t}")


def test_step_refuses_a_longer_sequence_and_a_bidirectional_layer():
    layer = rnnkit.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"must be one step, \(N, H_in\) or \(1, N, H_in\)"):
        layer.step(torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match="bidirectional layer cannot stream"):
        rnnkit.LSTM(3, 4, bidirectional=True).step(torch.randn(1, 3))
