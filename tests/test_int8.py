"""int8 weights for inference (``rnnkit.quantize``): the kernel against an exact integer
reference, the quantized layers against float32, the fallback, safetensors, the CLI flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.errors import UserError
from rnnkit.kernels import int8
from rnnkit.quantization import (
    _reference_forward,
    load,
    quantize,
    quantize_weight,
    reference_linear,
    row_sums,
    save,
)
from tests.helpers import run_cli
from tests.test_classify_cli import write_reviews
from tests.test_lm_helpers import VERSE, write_corpus

ROOT = Path(__file__).resolve().parents[1]
needs_kernels = pytest.mark.skipif(not int8.available(), reason="the fused kernels are not built")
FLOAT32_ULP = 2.0**-23


def quantized_operands(rows, columns, k, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=generator)
    x[0, 3 % k] = 40.0  # an outlier: the row's scale follows its largest value
    q, scale = quantize_weight(torch.randn(columns, k, generator=generator) * 0.2)
    return x, q, scale, row_sums(q)


def test_weight_quantization_is_symmetric_per_row():
    weight = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.0, -0.01]])
    q, scale = quantize_weight(weight)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    torch.testing.assert_close(scale, torch.tensor([1.0, 0.0, 3.0]) / 127)
    assert q[0].tolist() == [64, -127, 32] and q[1].tolist() == [0, 0, 0]
    assert q[2].tolist() == [127, 42, 0]  # 42.33 rounds to 42, -0.42 to 0


@needs_kernels
@pytest.mark.parametrize("rows, columns, k", [(1, 4, 64), (1, 2048, 512), (5, 37, 100),
                                              (9, 6, 1), (4, 130, 1031)])
def test_the_kernel_equals_the_integer_reference(rows, columns, k):
    # The integer dot products are exact on both sides (int32 in the kernel, float64 below 2**53
    # in the reference), and both then compute float32(dot) * (x_scale * w_scale) in the same
    # order, so they may differ by float32 rounding alone: one ulp.
    x, q, scale, rowsum = quantized_operands(rows, columns, k)
    got = int8.linear(x, q, scale, rowsum)
    expected = reference_linear(x, q, scale)
    torch.testing.assert_close(got, expected, rtol=FLOAT32_ULP, atol=1e-30)


@needs_kernels
def test_the_vnni_kernel_runs_and_the_environment_forces_the_plain_loop(monkeypatch):
    x, q, scale, rowsum = quantized_operands(3, 70, 300, seed=1)
    monkeypatch.delenv("RNNKIT_NO_VNNI", raising=False)
    before = int8.calls()
    fast = int8.linear(x, q, scale, rowsum)
    after = int8.calls()
    if int8.vnni_available():  # the proof: the VNNI kernel's counter moved, the plain one not
        assert (after[0] - before[0], after[1] - before[1]) == (1, 0)
    else:
        assert (after[0] - before[0], after[1] - before[1]) == (0, 1)
    monkeypatch.setenv("RNNKIT_NO_VNNI", "1")
    plain = int8.linear(x, q, scale, rowsum)
    forced = int8.calls()
    assert (forced[0] - after[0], forced[1] - after[1]) == (0, 1)
    assert torch.equal(plain, fast)  # the same integers, the same scaling: the same numbers
    assert int8.kernel_name().startswith("the plain int8 loop")


def float_layer(mode, seed=0, **kwargs):
    torch.manual_seed(seed)
    return getattr(rnnkit, mode)(**kwargs).eval()


LAYERS = [
    ("LSTM", {"input_size": 24, "hidden_size": 64}),
    ("GRU", {"input_size": 24, "hidden_size": 64, "num_layers": 2}),
    ("RNN", {"input_size": 24, "hidden_size": 64, "nonlinearity": "relu"}),
    ("RNN", {"input_size": 24, "hidden_size": 64, "bidirectional": True}),
    ("LSTM", {"input_size": 24, "hidden_size": 64, "proj_size": 16, "bidirectional": True,
              "num_layers": 2}),
    ("GRU", {"input_size": 24, "hidden_size": 40, "batch_first": True, "bias": False}),
]


@needs_kernels
@pytest.mark.parametrize("mode, kwargs", LAYERS)
def test_the_layer_equals_the_int8_recurrence_in_torch_ops(mode, kwargs):
    # Every step's products are the kernel's own (exact integers); the gate math is float32
    # (rnnkit's exp polynomial against torch's), about 1e-7 apart. Where such a difference moves
    # an activation across a rounding boundary of its quantization, one integer changes by 1:
    # a change of x_scale * w_scale * |w| <= (max|h| / 127) * (max|W| / 127) * 127, about 1e-3
    # here, rare and not compounding (the gates squash it). Hence 2e-3.
    layer = quantize(float_layer(mode, **kwargs))
    x = torch.randn(12, 3, 24) if not kwargs.get("batch_first") else torch.randn(3, 12, 24)
    with torch.no_grad():
        output, _ = layer(x)
        layer._run_direction = lambda functions, x, states, weights, mask, recorder, plan=None: (
            _as_reference(layer, x, states, weights, mask))  # the same layer, in torch ops
        expected, _ = layer(x)
    torch.testing.assert_close(output, expected, rtol=0, atol=2e-3)


def _as_reference(layer, x, states, weights, mask):
    h0 = states[0]
    c0 = states[1] if layer.family.has_cell else None
    hiddens, c_n = _reference_forward(x, h0, c0, weights, layer._cell(), mask)
    output = hiddens[1:] if mask is None else hiddens[1:] * mask
    final = (hiddens[-1], c_n) if layer.family.has_cell else (hiddens[-1],)
    return output, final, {}


@pytest.mark.parametrize("mode, kwargs", LAYERS)
def test_the_quantized_layer_stays_close_to_float32(mode, kwargs):
    # Error budget: the weights' rounding is at most max|W_row| / 254 per element and the
    # activations' max|x_row| / 254. Summed over K = 24..128 terms with independent signs, a
    # pre-activation moves by about sqrt(K / 12) * (step_w * rms|x| + step_x * rms|w|), at most
    # about 0.01 for these sizes (|W| <= 1/8 at H = 64, |x| ~ N(0, 1), max|x| about 3); the
    # gates' slopes are at most 1, and the recurrence contracts (|h| < 1). Measured: 0.003-0.012
    # on outputs of size 1 at worst. We allow 0.05, and require the mean error under 0.005.
    reference = float_layer(mode, **kwargs)
    layer = quantize(reference)
    x = torch.randn(12, 3, 24) if not kwargs.get("batch_first") else torch.randn(3, 12, 24)
    with torch.no_grad():
        expected, expected_state = reference(x)
        output, state = layer(x)
    difference = (output - expected).abs()
    assert difference.max() < 0.05 and difference.mean() < 0.005, difference.max()
    for got, want in zip(state if isinstance(state, tuple) else (state,),
                         expected_state if isinstance(expected_state, tuple)
                         else (expected_state,)):
        assert (got - want).abs().max() < 0.05


@needs_kernels
def test_bf16_autocast_leaves_a_quantized_layer_on_its_int8_kernel():
    layer = quantize(float_layer("LSTM", input_size=16, hidden_size=32))
    x = torch.randn(5, 2, 16)
    with torch.no_grad():
        plain, _ = layer(x)
        before = int8.calls()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast, _ = layer(x)
        after = int8.calls()
    assert sum(after) > sum(before)  # the int8 kernels ran, not the bf16 GEMMs
    assert torch.equal(autocast, plain)


def test_packed_sequences_hold_each_row_at_its_end():
    reference = float_layer("LSTM", input_size=8, hidden_size=32)
    layer = quantize(reference)
    lengths = torch.tensor([7, 4, 2])
    x = torch.randn(7, 3, 8)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
    with torch.no_grad():
        _, (h_n, c_n) = layer(packed)
        for row, length in enumerate(lengths.tolist()):  # each sequence alone, unpadded
            _, (h_alone, c_alone) = layer(x[:length, row:row + 1])
            torch.testing.assert_close(h_n[:, row:row + 1], h_alone, rtol=0, atol=1e-6)
            torch.testing.assert_close(c_n[:, row:row + 1], c_alone, rtol=0, atol=1e-6)


def test_a_quantized_layer_refuses_to_train():
    layer = quantize(float_layer("GRU", input_size=4, hidden_size=8))
    assert not layer.training
    assert {name for name, _ in layer.named_parameters()} == {"bias_ih_l0", "bias_hh_l0"}
    with pytest.raises(UserError, match="inference only; train the float32 model"):
        layer.train()
    with pytest.raises(UserError, match="no backward: run it under torch.no_grad"):
        layer(torch.randn(3, 2, 4, requires_grad=True))
    assert "int8" in repr(layer)


def test_layers_the_kernel_does_not_cover_are_refused():
    with pytest.raises(UserError, match="layer_norm"):
        quantize(rnnkit.LSTM(4, 8, layer_norm=True))
    with pytest.raises(UserError, match="not IndRNN"):
        quantize(rnnkit.IndRNN(4, 8))
    with pytest.raises(UserError, match="no rnnkit LSTM, GRU or RNN"):
        quantize(torch.nn.Linear(3, 3))


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = rnnkit.LSTM(6, 32, num_layers=2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(64, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = quantize(Tagger())
    path = save(model, tmp_path / "tagger.safetensors")
    stored = load_file(str(path))
    assert stored["rnn.weight_hh_l1_reverse"].dtype == torch.int8
    assert stored["rnn.weight_hh_l1_reverse_scale"].dtype == torch.float32
    assert not any(name.endswith("_rowsum") for name in stored)
    torch.manual_seed(1)
    fresh = load(Tagger(), path)  # other float weights; the file's int8 ones replace them
    assert rnnkit.quantization.is_quantized(fresh)
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    x = torch.randn(2, 9, 6)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    also = load(quantize(Tagger()), path)  # into a model already quantized: the same
    with torch.no_grad():
        assert torch.equal(also(x), model(x))
    with pytest.raises(UserError, match="cannot read"):
        load(Tagger(), tmp_path / "missing.safetensors")


def rnnkit_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)


def test_sample_with_int8(tmp_path, capsys):
    corpus = write_corpus(tmp_path, VERSE * 3)
    status, _, err = run_cli(["train", corpus, "--out", tmp_path / "run", "--cache-dir",
                              tmp_path / "cache", "--hidden", "24", "--embedding", "16",
                              "--batch-size", "4", "--seq-len", "16", "--max-steps", "5",
                              "--eval-every", "5", "--no-progress", "--no-layer-norm"], capsys)
    assert status == 0, err
    sampled = rnnkit_cli("sample", tmp_path / "run", "--prime", "ALL:\n", "--length", "30",
                         "--seed", "3", "--greedy", "--int8", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("ALL:\n") and len(sampled.stdout) == 5 + 30 + 1
    assert "rnnkit: model: int8 recurrent weights" in sampled.stderr
    status, _, err = run_cli(["sample", tmp_path / "run", "--int8", "--runtime", "onnxruntime"],
                             capsys)
    assert status == 2 and "--int8 quantizes the torch model" in err


def test_classify_predict_with_int8(tmp_path, capsys):
    train = write_reviews(tmp_path / "train.tsv", 200, seed=1)
    status, _, err = run_cli(["classify", "train", train, "--out", tmp_path / "run",
                              "--max-steps", "40", "--eval-every", "40", "--lr", "1e-2",
                              "--hidden", "12", "--embedding", "8", "--batch-size", "16",
                              "--threads", "1", "--no-progress"], capsys)
    assert status == 0, err
    (tmp_path / "t.txt").write_text("연기 정말 좋아\n별로 영화\n", encoding="utf-8")
    plain = run_cli(["classify", "predict", tmp_path / "run", tmp_path / "t.txt"], capsys)
    assert plain[0] == 0
    quantized = rnnkit_cli("classify", "predict", tmp_path / "run", tmp_path / "t.txt",
                           "--int8", cwd=tmp_path)
    assert quantized.returncode == 0, quantized.stderr
    assert "int8 recurrent weights" in quantized.stderr
    # the same labels, probabilities within int8's error
    for row, before in zip(quantized.stdout.splitlines(), plain[1].splitlines()):
        assert row.split("\t")[0] == before.split("\t")[0]
        assert [float(p.split(":")[1]) for p in row.split("\t")[1].split()] == pytest.approx(
            [float(p.split(":")[1]) for p in before.split("\t")[1].split()], abs=0.05)


def test_forecast_predict_with_int8(tmp_path, capsys):
    from tests.test_forecast_cli import write_monthly

    data = write_monthly(tmp_path)
    status, _, err = run_cli(["forecast", "train", data, "--target", "Passengers", "--horizon",
                              "6", "--lookback", "12", "--test-size", "12", "--val-size", "12",
                              "--hidden", "16", "--max-steps", "10", "--out", tmp_path / "run",
                              "--threads", "1"], capsys)
    assert status == 0, err
    predicted = rnnkit_cli("forecast", "predict", tmp_path / "run", "--int8", "--out",
                           tmp_path / "f.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert "rnnkit: model: int8 recurrent weights" in predicted.stderr
    assert predicted.stdout.splitlines()[0].startswith("step\ttime\tforecast")
    assert len(predicted.stdout.splitlines()) == 1 + 6 + 1


@needs_kernels
@pytest.mark.slow
def test_a_quantized_layer_compiles():
    layer = quantize(float_layer("LSTM", input_size=8, hidden_size=32))
    x = torch.randn(5, 2, 8)
    with torch.no_grad():
        expected, _ = layer(x)
        compiled, _ = torch.compile(layer, fullgraph=True)(x)
    torch.testing.assert_close(compiled, expected, rtol=0, atol=0)
