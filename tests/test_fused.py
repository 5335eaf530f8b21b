"""The fused C++ path gives the reference path's numbers, and falls back cleanly without it.

Fused against reference (rnnkit.bptt) over the core parity matrix — family x layers x
direction x layout x bias x projection x packing x initial state x dtype — comparing outputs,
final states, every gradient and the internals (gates, cells, dL/dh_t, dL/dc_t); gradcheck on
the fused Functions; the fallback when the extension cannot be built.
"""

from __future__ import annotations

import itertools
import logging
from contextlib import nullcontext

import pytest
import torch

import rnnkit
from rnnkit import backends
from rnnkit.bptt.common import GradientRecorder
from rnnkit.kernels import loader
from tests.helpers import (
    RNNKIT_CLASSES,
    assert_close,
    fused_functions,
    make_input,
    output_tensor,
    reference_forbidden,
    states_of,
)
from tests.test_parity import FAMILIES

FUSED = fused_functions()

FAMILY_IDS = [f"{mode}{index}" for index, (mode, _) in enumerate(FAMILIES)]
MATRIX = list(
    itertools.product(
        range(len(FAMILIES)),
        [1, 2],  # num_layers
        [False, True],  # bidirectional
        [False, True],  # batch_first
        [True, False],  # bias
        ["padded", "sorted", "unsorted"],
        [False, True],  # initial state given
        [torch.float32, torch.float64],
    )
)


def _id(config) -> str:
    family, layers, bidirectional, batch_first, bias, packing, initial, dtype = config
    mode, extra = FAMILIES[family]
    name = mode + "".join(f"-{k}{v}" for k, v in extra.items())
    return (
        f"{name}-L{layers}-{'bi' if bidirectional else 'uni'}-{'bf' if batch_first else 'tf'}"
        f"-{'bias' if bias else 'nobias'}-{packing}-{'h0' if initial else 'zero'}-"
        f"{str(dtype).removeprefix('torch.')}"
    )


def _twins(mode, dtype, seed, **kwargs):
    torch.manual_seed(seed)
    reference = RNNKIT_CLASSES[mode](**kwargs, backend="reference").to(dtype)
    fused = RNNKIT_CLASSES[mode](**kwargs, backend="fused").to(dtype)
    fused.load_state_dict(reference.state_dict())
    return reference, fused


def _run(module, packed_input, leaf, hx, weights):
    """Forward with internals and backward of a loss reaching every output: all the numbers."""
    output, state, internals = module(packed_input, hx, return_internals=True)
    tensors = (output_tensor(output),) + states_of(state)
    loss = sum((t * w).sum() for t, w in zip(tensors, weights))
    leaves = [leaf] + ([] if hx is None else list(states_of(hx))) + list(module.parameters())
    grads = torch.autograd.grad(loss, leaves, retain_graph=True)  # the packing is shared
    seen = {"output": tensors[0]}
    seen.update({f"state{i}": t for i, t in enumerate(tensors[1:])})
    seen.update({f"grad{i}": g for i, g in enumerate(grads)})
    for layer, directions in enumerate(internals):
        for direction, record in enumerate(directions):
            where = f"layer{layer}.dir{direction}"
            seen[f"{where}.hidden"] = record.hidden
            seen[f"{where}.hidden_grad"] = record.hidden_grad
            if record.cell is not None:
                seen[f"{where}.cell"] = record.cell
                seen[f"{where}.cell_grad"] = record.cell_grad
            for gate, value in record.gates.items():
                seen[f"{where}.{gate}"] = value
    return seen


@pytest.mark.fused
@pytest.mark.parametrize("config", MATRIX, ids=[_id(c) for c in MATRIX])
def test_fused_matches_reference(config):
    family, layers, bidirectional, batch_first, bias, packing, initial, dtype = config
    mode, extra = FAMILIES[family]
    seed = MATRIX.index(config)
    generator = torch.Generator().manual_seed(seed)
    steps, batch, input_size, hidden = 5, 3, 4, 5
    reference, fused = _twins(
        mode, dtype, seed, input_size=input_size, hidden_size=hidden, num_layers=layers,
        bias=bias, batch_first=batch_first, bidirectional=bidirectional, **extra,
    )
    packed_input, leaf = make_input(
        steps, batch, input_size, dtype, batch_first, packing, generator
    )
    hx = None
    if initial:
        directions = 2 if bidirectional else 1
        out_size = extra.get("proj_size", 0) or hidden
        h0 = torch.randn(directions * layers, batch, out_size, dtype=dtype, generator=generator)
        hx = h0.requires_grad_(True)
        if mode == "LSTM":
            c0 = torch.randn(directions * layers, batch, hidden, dtype=dtype, generator=generator)
            hx = (hx, c0.requires_grad_(True))
    expected_output, expected_state = reference(packed_input, hx)
    weights = [
        torch.randn(t.shape, dtype=dtype, generator=generator)
        for t in (output_tensor(expected_output),) + states_of(expected_state)
    ]
    expected = _run(reference, packed_input, leaf, hx, weights)
    with reference_forbidden():
        actual = _run(fused, packed_input, leaf, hx, weights)
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert_close(actual[name], value, dtype, name)


@pytest.mark.fused
@pytest.mark.parametrize("mode,extra", FAMILIES, ids=FAMILY_IDS)
def test_inference_matches_training_forward(mode, extra):
    """Under no_grad the fused path skips the autograd node; the numbers stay the same."""
    reference, fused = _twins(mode, torch.float32, 1, input_size=6, hidden_size=7, **extra)
    x = torch.randn(9, 4, 6)
    with torch.no_grad(), reference_forbidden():
        output, state = fused(x)
    expected_output, expected_state = reference(x)
    assert_close(output, expected_output, torch.float32, "output")
    for actual, wanted in zip(states_of(state), states_of(expected_state)):
        assert_close(actual, wanted, torch.float32, "state")




@pytest.mark.fused
@pytest.mark.parametrize("mode,extra", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize(
    "batch,threads,hidden", [(1, 1, 370), (1, 2, 370), (2, 2, 130), (3, 2, 300), (33, 2, 40)]
)
def test_few_rows_and_long_sequences_match_reference(mode, extra, batch, threads, hidden):
    """A batch of one with weights of 512 KiB and more takes the dot-product GEMM (W_hh read where
    it lies), split over the cores with two threads; 370 hidden units leave columns past the
    last group of four. Two rows pack W_hh for brgemm, and 130 units split unevenly in a team.
    T*N >= 800 rows send the input projection through the packed-transpose GEMM. 300 units: the
    LSTM's and GRU's backward GEMMs (K = 1200, 900) take K in chunks of 1024, on a team of two.
    33 sequences: the team splits the batch (16 and 17 rows), no barriers."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for steps in (3, 800 // batch):
            reference, fused = _twins(mode, torch.float32, 2, input_size=hidden,
                                      hidden_size=hidden, **extra)
            x = torch.randn(steps, batch, hidden, generator=torch.Generator().manual_seed(steps))
            weights = torch.randn(steps, batch, reference.proj_size or hidden)
            results = []
            for layer in (reference, fused):
                leaf = x.clone().requires_grad_(True)
                with reference_forbidden() if layer is fused else nullcontext():
                    output, _ = layer(leaf)
                    (output * weights).sum().backward()
                grads = (leaf.grad, layer.weight_hh_l0.grad, layer.weight_ih_l0.grad)
                results.append((output, *grads))
            for name, actual, expected in zip(("output", "x", "W_hh", "W_ih"), *results[::-1]):
                # 800 steps of float32 sums in another order: 1e-4, not the matrix's 1e-5
                torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4,
                                           msg=f"{name} at T={steps} differs")
    finally:
        torch.set_num_threads(previous)
def _sequence_arguments(mode, masked, projected, generator):
    """float64 arguments of one fused sequence function, the differentiable ones as leaves."""
    steps, batch, features, hidden = 4, 3, 2, 3
    out_size = 2 if projected else hidden
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[mode] * hidden

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=generator).requires_grad_(True)

    mask = None
    if masked:
        lengths = torch.tensor([4, 2, 3])
        mask = (torch.arange(steps)[:, None] < lengths).to(torch.float64).unsqueeze(-1)
    x, h0 = leaf(steps, batch, features), leaf(batch, out_size)
    weights = [leaf(gates, features), leaf(gates, out_size), leaf(gates), leaf(gates)]
    if mode == "LSTM":
        weight_hr = leaf(out_size, hidden) if projected else None
        return (x, h0, leaf(batch, hidden), *weights, weight_hr, mask, None)
    if mode == "GRU":
        return (x, h0, *weights, mask, None)
    return (x, h0, *weights, "tanh", mask, None)


@pytest.mark.fused
@pytest.mark.parametrize(
    "mode,masked,projected",
    [("LSTM", False, False), ("LSTM", True, False), ("LSTM", True, True),
     ("GRU", False, False), ("GRU", True, False), ("RNN", False, False), ("RNN", True, False)],
)
def test_gradcheck_fused_functions(mode, masked, projected):
    arguments = _sequence_arguments(mode, masked, projected, torch.Generator().manual_seed(5))
    function = getattr(FUSED, mode.lower())
    differentiable = [i for i, a in enumerate(arguments) if torch.is_tensor(a) and a.requires_grad]
    outputs = 3 if mode == "LSTM" else 2  # output, h_n (, c_n); gates and cells are not

    def run(*leaves):
        full = list(arguments)
        for index, value in zip(differentiable, leaves):
            full[index] = value
        return function(*full)[:outputs]

    assert torch.autograd.gradcheck(run, [arguments[i] for i in differentiable])


@pytest.mark.fused
def test_recorder_records_zero_past_the_end():
    generator = torch.Generator().manual_seed(2)
    arguments = list(_sequence_arguments("LSTM", True, False, generator))
    recorder = GradientRecorder()
    arguments[-1] = recorder
    output, h_n, c_n, _, _ = FUSED.lstm(*arguments)
    (output.sum() + h_n.sum() + c_n.sum()).backward()
    mask = arguments[-2]
    assert recorder.hidden_grad.shape == output.shape
    assert torch.all(recorder.hidden_grad[mask.squeeze(-1) == 0] == 0)
    assert torch.all(recorder.cell_grad[mask.squeeze(-1) == 0] == 0)
    assert recorder.hidden_grad[0].abs().sum() > 0


@pytest.mark.fused(calls=False)
def test_load_functions_is_cached():
    assert loader.load_functions() is loader.load_functions()
    assert backends.select("fused").name == "fused"
    assert backends.select("reference").name == "reference"


@pytest.fixture
def unbuildable(monkeypatch):
    """The extension cannot be built: the loader's build step fails like a broken compiler."""

    def fail(allow_build: bool = True):
        raise loader.KernelBuildError("building the fused kernels failed: simulated")

    monkeypatch.setattr(loader, "_load_extension", fail)
    loader.reset()
    yield
    monkeypatch.undo()
    loader.reset()


def test_fallback_warns_once_and_gives_reference_numbers(unbuildable, caplog):
    torch.manual_seed(0)
    reference = rnnkit.LSTM(3, 4, backend="reference")
    fused = rnnkit.LSTM(3, 4, backend="fused")
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(5, 2, 3)
    with caplog.at_level(logging.WARNING, logger="rnnkit"):
        output, _ = fused(x)
        fused(x)
    warnings = [r for r in caplog.records if r.name == "rnnkit.kernels.loader"]
    assert len(warnings) == 1
    assert "simulated" in warnings[0].getMessage()
    torch.testing.assert_close(output, reference(x)[0], rtol=0, atol=0)
    assert loader.load_functions() is None


def test_no_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(loader.shutil, "which", lambda name: None)
    monkeypatch.setattr(loader, "_key", lambda cflags: "never-built")  # not the loaded one
    with pytest.raises(loader.KernelBuildError, match="no C\\+\\+ compiler"):
        loader.build()
    assert not any(tmp_path.glob("kernels-*/*.so"))


def test_cache_key_follows_the_sources(monkeypatch, tmp_path):
    """A changed kernel source must never load an old binary: it changes the cache folder."""
    source = tmp_path / "csrc"
    source.mkdir()
    (source / "a.cpp").write_text("int a;")
    monkeypatch.setattr(loader, "SOURCE_DIRECTORY", source)
    first = loader._key(["-O3"])
    (source / "a.cpp").write_text("int b;")
    assert loader._key(["-O3"]) != first
    assert loader._key(["-O2"]) != loader._key(["-O3"])


@pytest.mark.fused(calls=False)
def test_cli_build_kernels_reports_the_folder(capsys):
    from rnnkit.cli import main

    assert main(["build-kernels"]) == 0
    out = capsys.readouterr().out
    assert str(loader.cache_directory()) in out and "built here" in out  # not a wheel
