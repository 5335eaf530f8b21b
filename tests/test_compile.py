"""rnnkit layers on the fused operators go wherever torch.nn's do: torch.compile (fullgraph,
forward and backward), torch.export with a dynamic batch and sequence length, torch.jit.trace;
each gives eager's numbers (float32, 1e-5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

pytestmark = pytest.mark.fused(calls=False)  # traced runs call the operators inside graphs

TOLERANCE = dict(rtol=1e-5, atol=1e-5)
FEATURES, HIDDEN = 4, 5
KINDS = {
    "LSTM": {},
    "GRU": {},
    "RNN": {},
    "LSTM-layer_norm+peephole": {"layer_norm": True, "peephole": True},
    "GRU-layer_norm": {"layer_norm": True},
    "RNN-zoneout": {"zoneout": 0.2},
}


class Model(nn.Module):
    """Two rnnkit layers (the second stacked, bidirectional or not), initial states given."""

    def __init__(self, kind: str, bidirectional: bool, batch_first: bool = True):
        super().__init__()
        mode = kind.split("-")[0]
        options = KINDS[kind]
        layer = getattr(rnnkit, mode)
        self.mode = mode
        self.directions = 2 if bidirectional else 1
        self.first = layer(FEATURES, HIDDEN, num_layers=2, bidirectional=bidirectional,
                           batch_first=batch_first, backend="fused", **options)
        self.second = layer(HIDDEN * self.directions, HIDDEN, batch_first=batch_first,
                            backend="fused", **options)

    def forward(self, x, h0):
        state = (h0, torch.tanh(h0)) if self.mode == "LSTM" else h0
        output, state = self.first(x, state)
        output, last = self.second(output)
        finals = last if isinstance(last, tuple) else (last,)
        return output, *finals


def _model(kind, bidirectional) -> Model:
    torch.manual_seed(0)
    model = Model(kind, bidirectional)
    return model.eval() if "-" in kind else model  # the variants in eval mode


def _inputs(model: Model, batch: int, steps: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, FEATURES, generator=generator)
    h0 = torch.randn(2 * model.directions, batch, HIDDEN, generator=generator)
    return x, h0


def _loss(outputs) -> torch.Tensor:
    return sum((t * (i + 1)).sum() for i, t in enumerate(outputs))


def _grads(model, x, h0, run):
    x = x.clone().requires_grad_(True)
    h0 = h0.clone().requires_grad_(True)
    model.zero_grad()
    outputs = run(x, h0)
    _loss(outputs).backward()
    return outputs, [x.grad, h0.grad] + [p.grad for p in model.parameters()]


def _assert_all_close(actual, expected, what):
    assert len(actual) == len(expected), what
    for index, (a, e) in enumerate(zip(actual, expected)):
        torch.testing.assert_close(a, e, **TOLERANCE, msg=lambda m, i=index: f"{what} [{i}]: {m}")


def _graph_calls_rnnkit(graph_module) -> bool:
    return any("rnnkit" in str(node.target) for node in graph_module.graph.nodes)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_compile_fullgraph_forward_and_backward_equal_eager(kind, bidirectional):
    torch._dynamo.reset()
    model = _model(kind, bidirectional)
    x, h0 = _inputs(model, 3, 6)
    expected, expected_grads = _grads(model, x, h0, model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    actual, actual_grads = _grads(model, x, h0, compiled)
    _assert_all_close(actual, expected, "outputs")
    _assert_all_close(actual_grads, expected_grads, "gradients")


def test_compile_with_inductor_equals_eager():
    torch._dynamo.reset()
    model = _model("LSTM", True)
    x, h0 = _inputs(model, 2, 5)
    expected, expected_grads = _grads(model, x, h0, model)
    compiled = torch.compile(model, fullgraph=True)
    actual, actual_grads = _grads(model, x, h0, compiled)
    _assert_all_close(actual, expected, "outputs")
    _assert_all_close(actual_grads, expected_grads, "gradients")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_export_with_dynamic_batch_and_steps_equals_eager(kind, bidirectional):
    model = _model(kind, bidirectional)
    batch, steps = torch.export.Dim("batch", min=2), torch.export.Dim("steps", min=2)
    exported = torch.export.export(
        model, _inputs(model, 3, 6), dynamic_shapes={"x": {0: batch, 1: steps}, "h0": {1: batch}}
    )
    assert _graph_calls_rnnkit(exported.graph_module)
    for size in ((2, 4), (5, 9)):
        inputs = _inputs(model, *size, seed=size[0])
        with torch.no_grad():
            _assert_all_close(exported.module()(*inputs), model(*inputs), f"export at {size}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_jit_trace_passes_its_check_and_equals_eager(kind):
    model = _model(kind, True)
    inputs = _inputs(model, 3, 6)
    check = [_inputs(model, 2, 4, seed=5)]
    traced = torch.jit.trace(model, inputs, check_inputs=check)
    with torch.no_grad():
        for sample in [inputs, *check]:
            _assert_all_close(traced(*sample), model(*sample), "jit.trace")


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_return_internals_under_compile_and_export(mode):
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = getattr(rnnkit, mode)(FEATURES, HIDDEN, backend="fused")
    x = torch.randn(6, 3, FEATURES)

    def run(x):
        output, _, internals = layer(x, return_internals=True)
        direction = internals[0][0]
        gates = [direction.gates[name] for name in sorted(direction.gates)]
        cell = [] if direction.cell is None else [direction.cell]
        return output, direction.hidden, *cell, *gates

    expected = run(x)
    _assert_all_close(torch.compile(run, fullgraph=True, backend="aot_eager")(x), expected,
                      "compile")

    class Wrapper(nn.Module):
        def forward(self, x):
            return run(x)

    exported = torch.export.export(Wrapper(), (x,))
    _assert_all_close(exported.module()(x), expected, "export")


def test_language_model_trains_the_same_under_compile():
    from rnnkit.models.language_model import LanguageModel, ModelConfig

    def losses(compiled: bool) -> list[float]:
        torch.manual_seed(0)
        config = ModelConfig(vocab_size=17, hidden=8, embedding=8, layers=2, backend="fused")
        model = LanguageModel(config)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        generator = torch.Generator().manual_seed(3)
        tokens = torch.randint(0, 17, (11, 4), generator=generator)  # (L, N)

        def step(inputs, targets):
            logits, _ = model(inputs)
            return nn.functional.cross_entropy(logits.reshape(-1, 17), targets.reshape(-1))

        run = torch.compile(step, fullgraph=True, backend="aot_eager") if compiled else step
        result = []
        for _ in range(3):
            optimizer.zero_grad()
            loss = run(tokens[:-1], tokens[1:])
            loss.backward()
            optimizer.step()
            result.append(loss.item())
        return result

    torch._dynamo.reset()
    eager, compiled = losses(False), losses(True)
    assert compiled == pytest.approx(eager, rel=1e-5, abs=1e-5)
