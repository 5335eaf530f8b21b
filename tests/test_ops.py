"""The torch.ops.rnnkit operators pass torch.library.opcheck: schema (no aliasing, no mutation
of inputs), fake implementation (shapes, dtypes, which returns are None), autograd registration
and AOT dispatch with dynamic shapes, forward and backward operators, float32 and float64."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.fused

STEPS, BATCH, FEATURES, HIDDEN = 4, 3, 5, 6
DTYPES = (torch.float32, torch.float64)


def _operators():
    from rnnkit.kernels import loader

    if loader.load_functions() is None:  # the fixture in conftest skips or fails the test first
        pytest.skip(loader.failure())
    from rnnkit.kernels import ops

    return ops


def _ragged_mask(dtype) -> torch.Tensor:
    lengths = torch.tensor([STEPS, STEPS - 1, 2])
    return (torch.arange(STEPS)[:, None] < lengths[None, :]).to(dtype).unsqueeze(-1)


def _tensor(*shape, dtype, grad=True):
    return torch.randn(*shape, dtype=dtype).requires_grad_(grad)


def _lstm_inputs(dtype, masked, projected=False):
    out = 4 if projected else HIDDEN
    return (
        _tensor(STEPS, BATCH, FEATURES, dtype=dtype),
        _tensor(BATCH, out, dtype=dtype),
        _tensor(BATCH, HIDDEN, dtype=dtype),
        _tensor(4 * HIDDEN, FEATURES, dtype=dtype),
        _tensor(4 * HIDDEN, out, dtype=dtype),
        _tensor(4 * HIDDEN, dtype=dtype),
        _tensor(out, HIDDEN, dtype=dtype) if projected else None,
        _ragged_mask(dtype) if masked else None,
    )


def _gru_inputs(dtype, masked):
    return (
        _tensor(STEPS, BATCH, FEATURES, dtype=dtype),
        _tensor(BATCH, HIDDEN, dtype=dtype),
        _tensor(3 * HIDDEN, FEATURES, dtype=dtype),
        _tensor(3 * HIDDEN, HIDDEN, dtype=dtype),
        _tensor(3 * HIDDEN, dtype=dtype),
        _tensor(3 * HIDDEN, dtype=dtype),
        _ragged_mask(dtype) if masked else None,
    )


def _rnn_inputs(dtype, masked):
    return (
        _tensor(STEPS, BATCH, FEATURES, dtype=dtype),
        _tensor(BATCH, HIDDEN, dtype=dtype),
        _tensor(HIDDEN, FEATURES, dtype=dtype),
        _tensor(HIDDEN, HIDDEN, dtype=dtype),
        _tensor(HIDDEN, dtype=dtype),
        True,
        _ragged_mask(dtype) if masked else None,
    )


def _masks(dtype):
    """A recurrent-dropout mask (N, H) and training zoneout masks (T, N, H)."""
    recurrent = (torch.rand(BATCH, HIDDEN) < 0.8).to(dtype) / 0.8
    zone = (torch.rand(STEPS, BATCH, HIDDEN) < 0.3).to(dtype)
    return recurrent, zone, (torch.rand(STEPS, BATCH, HIDDEN) < 0.3).to(dtype)


def _lstm_variant_inputs(dtype, masked, everything=True):
    recurrent, zone_h, zone_c = _masks(dtype)
    width = 4 * HIDDEN
    return (
        _tensor(STEPS, BATCH, FEATURES, dtype=dtype),
        _tensor(BATCH, HIDDEN, dtype=dtype),
        _tensor(BATCH, HIDDEN, dtype=dtype),
        _tensor(width, FEATURES, dtype=dtype),
        _tensor(width, HIDDEN, dtype=dtype),
        _tensor(width, dtype=dtype),
        *((_tensor(width, dtype=dtype), _tensor(width, dtype=dtype), _tensor(width, dtype=dtype),
           _tensor(width, dtype=dtype), _tensor(HIDDEN, dtype=dtype),
           _tensor(HIDDEN, dtype=dtype)) if everything else (None,) * 6),
        _tensor(3 * HIDDEN, dtype=dtype) if everything else None,
        recurrent if everything else None,
        zone_h if everything else None,
        zone_c if everything else None,
        everything,  # coupled
        _ragged_mask(dtype) if masked else None,
    )


def _gru_variant_inputs(dtype, masked, everything=True):
    recurrent, zone_h, _ = _masks(dtype)
    width = 3 * HIDDEN
    return (
        _tensor(STEPS, BATCH, FEATURES, dtype=dtype),
        _tensor(BATCH, HIDDEN, dtype=dtype),
        _tensor(width, FEATURES, dtype=dtype),
        _tensor(width, HIDDEN, dtype=dtype),
        _tensor(width, dtype=dtype),
        _tensor(width, dtype=dtype),
        *((_tensor(width, dtype=dtype), _tensor(width, dtype=dtype), _tensor(width, dtype=dtype),
           _tensor(width, dtype=dtype)) if everything else (None,) * 4),
        recurrent if everything else None,
        zone_h if everything else None,
        _ragged_mask(dtype) if masked else None,
    )


def _rnn_variant_inputs(dtype, masked, everything=True):
    recurrent, zone_h, _ = _masks(dtype)
    return (
        *_rnn_inputs(dtype, False)[:6],
        recurrent if everything else None,
        zone_h if everything else None,
        _ragged_mask(dtype) if masked else None,
    )


CASES = {
    "lstm": lambda dtype, masked: _lstm_inputs(dtype, masked),
    "lstm_projected": lambda dtype, masked: _lstm_inputs(dtype, masked, projected=True),
    "gru": _gru_inputs,
    "rnn": _rnn_inputs,
    "lstm_variant": _lstm_variant_inputs,
    "lstm_variant_plain": lambda dtype, masked: _lstm_variant_inputs(dtype, masked, False),
    "gru_variant": _gru_variant_inputs,
    "gru_variant_plain": lambda dtype, masked: _gru_variant_inputs(dtype, masked, False),
    "rnn_variant": _rnn_variant_inputs,
    "rnn_variant_plain": lambda dtype, masked: _rnn_variant_inputs(dtype, masked, False),
}


def _operator(case: str) -> str:
    return case.removesuffix("_projected").removesuffix("_plain") + "_forward"


@pytest.mark.parametrize("masked", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_operator_passes_opcheck(case, dtype, masked):
    ops = _operators()
    torch.manual_seed(0)
    inputs = CASES[case](dtype, masked)
    torch.library.opcheck(getattr(torch.ops.rnnkit, _operator(case)).default, inputs)
    getattr(ops.kernels, _operator(case))(*inputs)  # through the seam conftest counts


def _backward_arguments(case, dtype, masked, record):
    """The backward operator's arguments as the autograd formula builds them."""
    from rnnkit.kernels import ops

    inputs = CASES[case](dtype, masked)
    name = _operator(case)
    formula = ops.FORMULAS[name]
    with torch.no_grad():
        outputs = getattr(torch.ops.rnnkit, name)(*inputs)
    captured = {}

    class Context:
        saved_tensors = ()

        def save_for_backward(self, *tensors):
            self.saved_tensors = tensors

    class Recorder:
        def __getattr__(self, backward_name):
            def call(*arguments):
                captured["name"], captured["arguments"] = backward_name, arguments
                return getattr(torch.ops.rnnkit, backward_name)(*arguments)

            return call

    context = Context()
    formula.setup(context, inputs, outputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    grads = [None if t is None else torch.randn_like(t) for t in outputs]
    needs = [isinstance(t, torch.Tensor) and t.requires_grad for t in inputs]
    original, ops.kernels = ops.kernels, Recorder()
    try:
        with torch.no_grad():  # as in the autograd engine's backward
            formula.call(context, needs, record, *grads)
    finally:
        ops.kernels = original
    # as the autograd engine calls it (no create_graph): no argument of a backward operator
    # takes part in a graph (double backward is not offered)
    arguments = [a.detach() if isinstance(a, torch.Tensor) else a for a in captured["arguments"]]
    return captured["name"], arguments


@pytest.mark.parametrize("record", [False, True], ids=["plain", "record"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_backward_operator_passes_opcheck(case, dtype, masked, record):
    ops = _operators()
    torch.manual_seed(1)
    name, arguments = _backward_arguments(case, dtype, masked, record)
    torch.library.opcheck(getattr(torch.ops.rnnkit, name).default, arguments)
    getattr(ops.kernels, name)(*arguments)


def test_backward_operator_returns_none_where_not_needed():
    ops = _operators()
    inputs = _lstm_inputs(torch.float32, False)
    hiddens, cells, gates = ops.kernels.lstm_forward(*inputs)
    grads = ops.LSTMGrads(*ops.kernels.lstm_backward(
        torch.ones_like(hiddens[1:]), None, None, inputs[0], inputs[3], inputs[4], None,
        hiddens, cells, gates, None, False, False, [False, True, False, False, False],
    ))
    assert grads.grad_x is None and grads.grad_weight_hh is None and grads.grad_bias is None
    assert grads.hidden_grads is None and grads.cell_grads is None
    assert grads.grad_weight_ih.shape == inputs[3].shape
    assert grads.grad_h0.shape == inputs[1].shape


@pytest.mark.fused(calls=False)
def test_with_mkl_is_an_operator():
    _operators()
    assert isinstance(torch.ops.rnnkit.with_mkl(), bool)
