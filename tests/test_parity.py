"""rnnkit's layers give torch.nn's numbers: outputs, final states and every gradient.

A seeded matrix over family x layers x direction x layout x bias x projection x packing x
initial state x dtype, with weights copied from the torch.nn layer.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from tests.helpers import (
    assert_close,
    make_input,
    output_tensor,
    states_of,
    twin_layers,
    weighted_loss,
)

FAMILIES = [
    ("RNN", {"nonlinearity": "tanh"}),
    ("RNN", {"nonlinearity": "relu"}),
    ("GRU", {}),
    ("LSTM", {}),
    ("LSTM", {"proj_size": 3}),
]
MATRIX = list(
    itertools.product(
        range(len(FAMILIES)),
        [1, 2, 3],  # num_layers
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


def compare(
    mode,
    extra,
    steps,
    batch,
    input_size,
    hidden,
    layers,
    bidirectional,
    batch_first,
    bias,
    packing,
    initial,
    dtype,
    seed,
):
    generator = torch.Generator().manual_seed(seed)
    reference, ours = twin_layers(
        mode,
        dtype,
        seed,
        input_size=input_size,
        hidden_size=hidden,
        num_layers=layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        **extra,
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
    actual_output, actual_state = ours(packed_input, hx)
    assert_close(output_tensor(actual_output), output_tensor(expected_output), dtype, "output")
    for name, actual, expected in zip(
        ("h_n", "c_n"), states_of(actual_state), states_of(expected_state)
    ):
        assert_close(actual, expected, dtype, name)
    weights = [
        torch.randn(t.shape, dtype=dtype, generator=generator)
        for t in (output_tensor(expected_output),) + states_of(expected_state)
    ]
    leaves = [leaf] + ([] if hx is None else list(states_of(hx)))
    expected_grads = torch.autograd.grad(
        weighted_loss(expected_output, expected_state, weights),
        leaves + list(reference.parameters()),
        retain_graph=True,
    )
    actual_grads = torch.autograd.grad(
        weighted_loss(actual_output, actual_state, weights), leaves + list(ours.parameters())
    )
    names = ["input", "h_0", "c_0"][: len(leaves)] + [n for n, _ in reference.named_parameters()]
    for name, actual, expected in zip(names, actual_grads, expected_grads):
        assert_close(actual, expected, dtype, f"grad {name}")


@pytest.mark.parametrize("config", MATRIX, ids=[_id(c) for c in MATRIX])
def test_matches_torch_nn(config):
    family, layers, bidirectional, batch_first, bias, packing, initial, dtype = config
    mode, extra = FAMILIES[family]
    compare(
        mode,
        extra,
        steps=5,
        batch=3,
        input_size=4,
        hidden=5,
        layers=layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        packing=packing,
        initial=initial,
        dtype=dtype,
        seed=MATRIX.index(config),
    )


EDGES = [
    # (steps, batch, hidden): one step, a batch of one, a single unit, a long sequence
    (1, 3, 5),
    (6, 1, 5),
    (6, 3, 1),
    (1000, 2, 8),
]


# float32 over 1000 steps is test_long_sequence_float32_rounding's
EDGE_MATRIX = [
    (edge, family, dtype)
    for edge, family, dtype in itertools.product(
        EDGES, range(len(FAMILIES)), [torch.float32, torch.float64]
    )
    if not (edge[0] == 1000 and dtype == torch.float32)
]


@pytest.mark.parametrize(
    "edge,family,dtype",
    EDGE_MATRIX,
    ids=[
        f"T{e[0]}-N{e[1]}-H{e[2]}-{_id((f, 1, 1, 1, 1, 'p', 1, d)).split('-')[0]}{f}-{d}"
        for e, f, d in EDGE_MATRIX
    ],
)
def test_edge_sizes(edge, family, dtype):
    steps, batch, hidden = edge
    mode, extra = FAMILIES[family]
    if extra.get("proj_size", 0) >= hidden:
        extra = {"proj_size": hidden - 1} if hidden > 1 else {}
    compare(
        mode,
        extra,
        steps=steps,
        batch=batch,
        input_size=3,
        hidden=hidden,
        layers=2,
        bidirectional=True,
        batch_first=False,
        bias=True,
        packing="padded" if batch == 1 else "unsorted",
        initial=True,
        dtype=dtype,
        seed=steps,
    )


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_long_sequence_float32_rounding(mode):
    """T=1000 in float32: gradients sum 1000 steps of rounding, in torch.nn as in rnnkit.

    Against the float64 truth, rnnkit's float32 gradients must be no further off than torch.nn's
    own float32 gradients, overall within a factor 2 and each within 1e-4 of its size
    (absolute 1e-5 is below float32 rounding at this length: torch.nn's own error is ~1e-3 on
    gradients of magnitude ~50). Forward outputs stay within 1e-5 of torch.nn's.
    """
    reference, ours = twin_layers(
        mode, torch.float64, 7, input_size=3, hidden_size=8, num_layers=2, bidirectional=True
    )
    reference32 = copy.deepcopy(reference).float()
    ours = ours.float()
    x = torch.randn(1000, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))

    def run(module, inputs):
        inputs = inputs.clone().requires_grad_(True)
        output, _ = module(inputs)
        weights = torch.linspace(-1, 1, output.numel(), dtype=output.dtype).view_as(output)
        grads = torch.autograd.grad((output * weights).sum(), [inputs, *module.parameters()])
        return output.double(), [g.double() for g in grads]

    truth_output, truth = run(reference, x)
    torch_output, torch_grads = run(reference32, x.float())
    ours_output, ours_grads = run(ours, x.float())
    assert_close(ours_output, torch_output, torch.float32, "output")
    torch_errors, ours_errors = [], []
    for expected, from_torch, from_ours in zip(truth, torch_grads, ours_grads):
        torch_errors.append((from_torch - expected).abs().max())
        ours_errors.append((from_ours - expected).abs().max())
        assert ours_errors[-1] <= 1e-4 * expected.abs().max()  # relative to the gradient's size
    assert max(ours_errors) <= 2 * max(torch_errors)


@pytest.mark.parametrize(
    "mode,extra", FAMILIES, ids=[f[0] + str(i) for i, f in enumerate(FAMILIES)]
)
@pytest.mark.parametrize("initial", [False, True], ids=["zero", "h0"])
def test_unbatched_input(mode, extra, initial):
    reference, ours = twin_layers(
        mode,
        torch.float64,
        3,
        input_size=4,
        hidden_size=5,
        num_layers=2,
        bidirectional=True,
        **extra,
    )
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    hx = None
    if initial:
        out_size = extra.get("proj_size", 0) or 5
        hx = torch.randn(4, out_size, dtype=torch.float64)
        if mode == "LSTM":
            hx = (hx, torch.randn(4, 5, dtype=torch.float64))
    expected_output, expected_state = reference(x, hx)
    actual_output, actual_state = ours(x, hx)
    assert actual_output.shape == expected_output.shape == (6, 2 * (extra.get("proj_size") or 5))
    assert_close(actual_output, expected_output, torch.float64, "output")
    for actual, expected in zip(states_of(actual_state), states_of(expected_state)):
        assert actual.shape == expected.shape
        assert_close(actual, expected, torch.float64, "state")
    expected_grad = torch.autograd.grad(expected_output.sum(), x)[0]
    actual_grad = torch.autograd.grad(actual_output.sum(), x)[0]
    assert_close(actual_grad, expected_grad, torch.float64, "grad input")
