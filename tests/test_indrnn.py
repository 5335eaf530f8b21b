"""IndRNN, the family added through the seam: its layer against its cell loop in float64, its
hand-written backward against gradcheck, its fused kernel against the reference, its operators
against opcheck, its constraint, and its ``--cell indrnn`` in the apps."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit import families
from rnnkit.bptt.indrnn import indrnn_sequence
from rnnkit.cells.indrnn import indrnn_cell
from tests.helpers import fused_functions, reference_forbidden, run_cli

FEATURES, HIDDEN, STEPS, BATCH = 3, 5, 7, 4


def _cell_loop(layer, x, h0, lengths):
    """The layer recomputed from :func:`indrnn_cell`, step by step: x (T, N, I) time-major,
    h0 (D * L, N, H), lengths per sequence. Returns (output (T, N, D * H), h_n)."""
    directions = 2 if layer.bidirectional else 1
    steps = x.shape[0]
    layer_input, finals = x, []
    for index in range(layer.num_layers):
        outputs = []
        for direction, suffix in enumerate(("", "_reverse")[:directions]):
            def weight(kind, index=index, suffix=suffix):
                return getattr(layer, f"{kind}_l{index}{suffix}")

            u = weight("weight_hh")
            if layer.recurrent_max is not None:
                u = u.clamp(-layer.recurrent_max, layer.recurrent_max)
            output = torch.zeros(steps, x.shape[1], HIDDEN, dtype=x.dtype)
            h_n = []
            for row in range(x.shape[1]):
                h = h0[index * directions + direction, row : row + 1]
                order = range(lengths[row])
                for t in (reversed(order) if direction else order):
                    h = indrnn_cell(layer_input[t, row : row + 1], h, weight("weight_ih"), u,
                                    weight("bias_ih"), weight("bias_hh"), layer.nonlinearity)
                    output[t, row] = h[0]
                h_n.append(h[0])
            outputs.append(output)
            finals.append(torch.stack(h_n))
        layer_input = torch.cat(outputs, dim=2)
    return layer_input, torch.stack(finals)


@pytest.mark.parametrize("backend", ["reference", pytest.param("fused", marks=pytest.mark.fused)])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_layer_equals_its_cell_loop_in_float64(backend, nonlinearity, bidirectional, packed):
    torch.manual_seed(0)
    layer = rnnkit.IndRNN(FEATURES, HIDDEN, num_layers=2, nonlinearity=nonlinearity,
                          bidirectional=bidirectional, backend=backend,
                          recurrent_max_len=20).double()
    with torch.no_grad():  # some |u| above the bound, so the clip is exercised
        layer.weight_hh_l0.mul_(1.2)
    directions = 2 if bidirectional else 1
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64)
    h0 = torch.randn(2 * directions, BATCH, HIDDEN, dtype=torch.float64).abs()
    lengths = [STEPS, 3, 5, 1] if packed else [STEPS] * BATCH
    expected_output, expected_h = _cell_loop(layer, x, h0, lengths)
    if packed:
        sequence = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
        output, h_n = layer(sequence, h0)
        output = pad_packed_sequence(output, total_length=STEPS)[0]
    else:
        output, h_n = layer(x, h0)
    torch.testing.assert_close(output, expected_output, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_n, expected_h, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_hand_written_backward_passes_gradcheck(nonlinearity, masked):
    torch.manual_seed(1)
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(BATCH, HIDDEN, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(HIDDEN, FEATURES, dtype=torch.float64) * 0.5,
               torch.rand(HIDDEN, dtype=torch.float64),
               torch.randn(HIDDEN, dtype=torch.float64) * 0.1,
               torch.randn(HIDDEN, dtype=torch.float64) * 0.1]
    weights = [w.requires_grad_() for w in weights]
    mask = None
    if masked:
        lengths = torch.tensor([STEPS, 3, 5, 1])
        mask = (torch.arange(STEPS)[:, None] < lengths[None]).to(torch.float64)[..., None]
    functions = [indrnn_sequence]
    fused = fused_functions()
    if fused is not None:
        functions.append(fused.indrnn)
    for function in functions:
        def run(x, h0, w_ih, u, b_ih, b_hh, function=function):
            return function(x, h0, w_ih, u, b_ih, b_hh, nonlinearity, mask)

        assert torch.autograd.gradcheck(run, (x, h0, *weights))


@pytest.mark.fused
def test_fused_equals_reference_and_the_kernel_ran():
    torch.manual_seed(2)
    reference = rnnkit.IndRNN(FEATURES, HIDDEN, num_layers=2, bidirectional=True,
                              backend="reference")
    fused = rnnkit.IndRNN(FEATURES, HIDDEN, num_layers=2, bidirectional=True, backend="fused")
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(STEPS, BATCH, FEATURES, requires_grad=True)
    expected_output, expected_h = reference(x)
    (expected_output.sum() + expected_h.square().sum()).backward()
    expected_grads = [x.grad.clone()] + [p.grad for p in reference.parameters()]
    x.grad = None
    with reference_forbidden():
        output, h_n = fused(x, return_internals=False)
        (output.sum() + h_n.square().sum()).backward()
    torch.testing.assert_close(output, expected_output, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_n, expected_h, rtol=1e-5, atol=1e-6)
    for actual, expected in zip([x.grad] + [p.grad for p in fused.parameters()], expected_grads):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.fused
def test_fused_flushes_subnormal_gradients_and_leaves_the_caller_as_it_was():
    """Over 600 steps with u < 1 the gradient of the first steps sinks below float's smallest
    normal number (1.2e-38): the kernel flushes those values to zero (x86's slow path) and
    still equals the float64 reference; the caller's thread keeps its subnormals after."""
    torch.manual_seed(3)
    steps = 600
    fused = rnnkit.IndRNN(FEATURES, HIDDEN, backend="fused")
    with torch.no_grad():  # every unit stays on (relu' = 1): the gradient is u ** k exactly
        fused.weight_hh_l0.copy_(torch.linspace(0.5, 0.7, HIDDEN))
        fused.weight_ih_l0.abs_()
        fused.bias_ih_l0.fill_(0.1)
    reference = rnnkit.IndRNN(FEATURES, HIDDEN, backend="reference").double()
    reference.load_state_dict(fused.state_dict())
    x = torch.rand(steps, BATCH, FEATURES)
    x64 = x.double().requires_grad_()
    x.requires_grad_()
    output, _ = reference(x64)
    output[-1].sum().backward()
    early = x64.grad.abs()[: steps // 2]  # subnormal or below in float32, not zero in float64
    assert (early < 1.2e-38).all() and (early > 0).all()
    assert (x64.grad[-1] != 0).all()
    torch.set_flush_denormal(False)
    with reference_forbidden():
        output, _ = fused(x)
        output[-1].sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-12)
    subnormal = torch.tensor([1e-38]) * 0.5  # computed on this thread after the kernel ran
    assert 0 < float(subnormal) < 1.2e-38


@pytest.mark.fused
@pytest.mark.parametrize("masked", [False, True], ids=["full", "ragged"])
def test_operators_pass_opcheck(masked):
    from rnnkit.kernels import ops

    fused_functions()  # loads the operators and the family's binding module (its fakes)
    torch.manual_seed(3)
    x = torch.randn(STEPS, BATCH, FEATURES, dtype=torch.float64)
    h0 = torch.randn(BATCH, HIDDEN, dtype=torch.float64)
    w_ih = torch.randn(HIDDEN, FEATURES, dtype=torch.float64, requires_grad=True)
    u = torch.rand(HIDDEN, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(HIDDEN, dtype=torch.float64, requires_grad=True)
    mask = None
    if masked:
        lengths = torch.tensor([STEPS, 3, 5, 1])
        mask = (torch.arange(STEPS)[:, None] < lengths[None]).to(torch.float64)[..., None]
    torch.library.opcheck(torch.ops.rnnkit.indrnn_forward.default,
                          (x, h0, w_ih, u, bias, True, mask))
    ops.kernels.indrnn_forward(x, h0, w_ih, u, bias, True, mask)  # through the counted seam


def test_internals_and_recorded_gradients():
    torch.manual_seed(4)
    layer = rnnkit.IndRNN(FEATURES, HIDDEN, batch_first=True)
    x = torch.randn(BATCH, STEPS, FEATURES)
    output, _, internals = layer(x, return_internals=True)
    torch.testing.assert_close(internals[0][0].hidden, output.detach())
    assert internals[0][0].cell is None and internals[0][0].gates == {}
    output.sum().backward()
    assert internals[0][0].hidden_grad.shape == (BATCH, STEPS, HIDDEN)


def test_constraint_bounds_the_recurrent_weights():
    layer = rnnkit.IndRNN(FEATURES, HIDDEN, recurrent_max_len=100)
    bound = 2 ** (1 / 100)
    assert layer.recurrent_max == pytest.approx(bound)
    assert 0 <= layer.weight_hh_l0.min() and layer.weight_hh_l0.max() <= bound
    # the paper's initialisation: the top layer starts near u = 1, the biases at zero
    deep = rnnkit.IndRNN(FEATURES, 64, num_layers=2, bidirectional=True, recurrent_max_len=100)
    for suffix in ("", "_reverse"):
        lower, top = getattr(deep, "weight_hh_l0" + suffix), getattr(deep, "weight_hh_l1" + suffix)
        assert 0 <= lower.min() and lower.max() <= bound and lower.min() < 0.5
        assert 1 / bound <= top.min() and top.max() <= bound
    assert all(float(bias.abs().max()) == 0 for name, bias in deep.named_parameters()
               if name.startswith("bias"))
    plain = rnnkit.IndRNN(FEATURES, 64, num_layers=2)  # without it: U(0, 1), torch's biases
    assert plain.weight_hh_l1.min() < 0.5 and plain.bias_ih_l0.abs().max() > 0
    with torch.no_grad():
        layer.weight_hh_l0.fill_(5.0)
    clipped = layer._weights(0, "")["weight_hh"].detach()
    assert math.isclose(float(clipped.max()), bound, rel_tol=1e-6)
    with pytest.raises(ValueError, match="recurrent_max_len"):
        rnnkit.IndRNN(FEATURES, HIDDEN, recurrent_max_len=0)


def test_declared_once_and_refuses_what_it_lacks():
    family = families.get("IndRNN")
    assert rnnkit.IndRNN(2, 3).family is family and family.torch_twin is None
    names = dict(rnnkit.IndRNN(2, 3, bias=True).named_parameters())
    assert names["weight_hh_l0"].shape == (3,) and names["weight_ih_l0"].shape == (3, 2)
    with pytest.raises(ValueError, match="not the IndRNN"):
        rnnkit.IndRNN(2, 3, zoneout=0.1)
    with pytest.raises(ValueError, match="IndRNN has no forget gate"):
        rnnkit.IndRNN(2, 3, forget_bias=1.0)


def test_an_unknown_family_raises():
    with pytest.raises(ValueError, match="unknown recurrent family 'Mystery'"):
        families.get("Mystery")
    with pytest.raises(ValueError, match="unknown recurrent family"):
        rnnkit.layers._RecurrentLayer("Mystery", 2, 3)


def test_cell_indrnn_in_the_apps(tmp_path, capsys):
    from rnnkit.classify.model import CELLS as CLASSIFY_CELLS
    from rnnkit.forecast.model import CELLS as FORECAST_CELLS
    from rnnkit.models.language_model import CELLS as LM_CELLS
    from rnnkit.tasks.models import CELLS as TASK_CELLS

    for cells in (CLASSIFY_CELLS, FORECAST_CELLS, LM_CELLS):
        assert cells["indrnn"] is rnnkit.IndRNN
    assert TASK_CELLS["indrnn"] == (rnnkit.IndRNN, None)
    status, out, err = run_cli(["longdep", "--task", "adding", "--T", "12", "--cells",
                                "rnn,indrnn", "--seeds", "1", "--steps", "3", "--workers", "1",
                                "--hidden", "8", "--out", tmp_path / "longdep"], capsys)
    assert status == 0, err
    assert "indrnn" in out
