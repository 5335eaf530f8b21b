"""ONNX export: onnxruntime gives PyTorch's outputs, the graph holds the standard node (or a
Scan where none exists), and ``rnnkit export`` / ``--runtime onnxruntime`` on trained runs.

Skipped when the ``onnx`` extra (onnx, onnxruntime, onnxscript) is not installed; CI installs
it through the ``dev`` extra. The full layer matrix is ``-m slow``; the fast tier covers every
value of every axis (family, layers, direction, layout, initial state) in fewer exports.
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnx")

import rnnkit  # noqa: E402
from rnnkit import onnx as rnnkit_onnx  # noqa: E402
from rnnkit.cli import main  # noqa: E402
from rnnkit.errors import UserError  # noqa: E402
from tests.helpers import run_cli  # noqa: E402
from tests.test_classify_cli import write_reviews  # noqa: E402
from tests.test_forecast_cli import write_monthly  # noqa: E402
from tests.test_lm_helpers import VERSE, write_corpus  # noqa: E402

SIZES = tuple(itertools.product((5, 9), (1, 3)))  # two lengths x two batch sizes, not (7, 4)
TOLERANCE = 1e-4
RECURRENT_OPS = {"LSTM", "GRU", "RNN", "Scan", "Loop"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class WithState(torch.nn.Module):
    """A layer called with its initial state as graph inputs."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, h0, c0=None):
        output, state = self.layer(x, h0 if c0 is None else (h0, c0))
        return (output, *state) if isinstance(state, tuple) else (output, state)


class NoState(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        output, state = self.layer(x)
        return (output, *state) if isinstance(state, tuple) else (output, state)


def build(family, layers, bidirectional, batch_first, **options):
    torch.manual_seed(layers * 7 + bidirectional * 3 + batch_first)
    cls = {"RNN-relu": rnnkit.RNN, "RNN-tanh": rnnkit.RNN}.get(family) or getattr(rnnkit, family)
    if family == "RNN-relu":
        options["nonlinearity"] = "relu"
    return cls(4, 6, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
               **options).eval()


def inputs_for(layer, steps, batch, with_state):
    x = torch.randn((batch, steps, 4) if layer.batch_first else (steps, batch, 4))
    if not with_state:
        return (x,)
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    h0 = torch.randn(rows, batch, layer.proj_size or layer.hidden_size)
    if layer.mode == "LSTM":
        return x, h0, torch.randn(rows, batch, layer.hidden_size)
    return x, h0


def dynamic(layer, with_state):
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
    x = {0: batch, 1: time} if layer.batch_first else {0: time, 1: batch}
    if not with_state:
        return (x,)
    return (x, {1: batch}, {1: batch}) if layer.mode == "LSTM" else (x, {1: batch})


def export_and_compare(layer, with_state, path):
    """Export once at (7, 4), run onnxruntime at every SIZES pair; the file's op types."""
    module = WithState(layer) if with_state else NoState(layer)
    example = inputs_for(layer, 7, 4, with_state)
    rnnkit_onnx.export(module, example, path, dynamic_shapes=dynamic(layer, with_state))
    session = rnnkit_onnx.session(path)
    names = [item.name for item in session.get_inputs()]
    for steps, batch in SIZES:
        inputs = inputs_for(layer, steps, batch, with_state)
        with torch.no_grad():
            expected = module(*inputs)
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
        assert len(got) == len(expected)
        for value, reference in zip(got, expected):
            torch.testing.assert_close(torch.from_numpy(value), reference, rtol=0,
                                       atol=TOLERANCE)
    return [op for op in rnnkit_onnx.node_types(path) if op in RECURRENT_OPS]


STANDARD = {"LSTM": "LSTM", "GRU": "GRU", "RNN-tanh": "RNN", "RNN-relu": "RNN"}
AXES = list(itertools.product((1, 2), (False, True), (False, True), (False, True)))
# every value of every axis, each pair of axes' values at least once over the families
FAST = [(1, False, False, False), (2, True, True, True), (2, False, True, False),
        (1, True, False, True)]


def _matrix_case(family, layers, bidirectional, batch_first, with_state, tmp_path):
    layer = build(family, layers, bidirectional, batch_first)
    ops = export_and_compare(layer, with_state, tmp_path / "m.onnx")
    assert ops == [STANDARD[family]] * layers  # one node per stacked layer, both directions


@pytest.mark.parametrize("family", list(STANDARD))
@pytest.mark.parametrize("layers, bidirectional, batch_first, with_state", FAST)
def test_standard_layers_match_onnxruntime(family, layers, bidirectional, batch_first,
                                           with_state, tmp_path):
    _matrix_case(family, layers, bidirectional, batch_first, with_state, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(STANDARD))
@pytest.mark.parametrize("layers, bidirectional, batch_first, with_state",
                         [axes for axes in AXES if axes not in FAST])
def test_standard_layers_full_matrix(family, layers, bidirectional, batch_first, with_state,
                                     tmp_path):
    _matrix_case(family, layers, bidirectional, batch_first, with_state, tmp_path)


VARIANTS = [
    # (family, options, the recurrent op types expected for 2 stacked bidirectional layers)
    ("LSTM", {"peephole": True}, ["LSTM"] * 2),
    ("LSTM", {"recurrent_dropout": 0.3, "weight_drop": 0.2, "dropout": 0.2}, ["LSTM"] * 2),
    ("LSTM", {"layer_norm": True}, ["Scan"] * 4),
    ("LSTM", {"coupled_gates": True}, ["Scan"] * 4),
]
SLOW_VARIANTS = [
    ("GRU", {"layer_norm": True, "zoneout": 0.2}, ["Scan"] * 4),
    ("RNN-tanh", {"zoneout": 0.3}, ["Scan"] * 4),
    ("LSTM", {"zoneout": (0.1, 0.2), "peephole": True}, ["Scan"] * 4),
    ("LSTM", {"layer_norm": True, "peephole": True}, ["Scan"] * 4),
    ("LSTM", {"proj_size": 3}, ["Scan"] * 4),
    ("GRU", {"recurrent_dropout": 0.3}, ["GRU"] * 2),
]


def _variant_case(family, options, expected, tmp_path):
    layer = build(family, 2, True, True, **options)
    if options.get("layer_norm"):  # gains and biases away from 1 and 0, so they are read
        with torch.no_grad():
            for name, parameter in layer.named_parameters():
                if name.startswith("ln_"):
                    parameter.add_(torch.randn_like(parameter) * 0.3)
    assert export_and_compare(layer, True, tmp_path / "v.onnx") == expected


@pytest.mark.parametrize("family, options, expected", VARIANTS)
def test_variants_export_as_standard_node_or_scan(family, options, expected, tmp_path):
    _variant_case(family, options, expected, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family, options, expected", SLOW_VARIANTS)
def test_more_variants(family, options, expected, tmp_path):
    _variant_case(family, options, expected, tmp_path)


class Embedded(torch.nn.Module):
    """A layer behind a linear input map, its parameters requiring grad: a user's model."""

    def __init__(self, layer):
        super().__init__()
        self.input_map = torch.nn.Linear(3, 4)
        self.layer = layer

    def forward(self, x):
        return self.layer(self.input_map(x))[0]


@pytest.mark.parametrize("family, options, op, count", [
    ("GRU", {}, "GRU", 2), ("LSTM", {"layer_norm": True}, "Scan", 4)])
def test_plain_torch_onnx_export_needs_no_table(family, options, op, count, tmp_path):
    model = Embedded(build(family, 2, True, False, **options)).eval()
    time, batch = torch.export.Dim("time", min=2), torch.export.Dim("batch", min=1)
    program = torch.onnx.export(model, (torch.randn(6, 2, 3),), dynamo=True, verbose=False,
                                dynamic_shapes=({0: time, 1: batch},))
    program.save(str(tmp_path / "g.onnx"))
    assert rnnkit_onnx.node_types(tmp_path / "g.onnx").count(op) == count
    session = rnnkit_onnx.session(tmp_path / "g.onnx")
    x = torch.randn(9, 3, 3)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got[0]), model(x), rtol=0, atol=TOLERANCE)


class Ragged(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        output, (h_n, c_n) = rnnkit_onnx.run_padded(self.layer, x, lengths)
        return output, h_n, c_n


def test_ragged_batch_maps_to_sequence_lens(tmp_path):
    layer = build("LSTM", 2, True, True)
    model = Ragged(layer)
    x, lengths = torch.randn(3, 6, 4), torch.tensor([6, 2, 4])
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
    rnnkit_onnx.export(model, (x, lengths), tmp_path / "r.onnx",
                       dynamic_shapes=({0: batch, 1: time}, {0: batch}))
    session = rnnkit_onnx.session(tmp_path / "r.onnx")
    names = [item.name for item in session.get_inputs()]
    x, lengths = torch.randn(4, 8, 4), torch.tensor([3, 8, 1, 5])
    got = session.run(None, {names[0]: x.numpy(), names[1]: lengths.numpy()})
    with torch.no_grad():
        expected = model(x, lengths)  # eager: the PackedSequence path
    for value, reference in zip(got, expected):
        torch.testing.assert_close(torch.from_numpy(value), reference, rtol=0, atol=TOLERANCE)


def test_packed_input_is_refused_with_the_way_out(tmp_path):
    class Packs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = build("GRU", 1, False, True)

        def forward(self, x):
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, [3, 2], batch_first=True)
            return self.layer(packed)[1]

    with pytest.raises(UserError, match="PackedSequence cannot be exported.*run_padded"):
        rnnkit_onnx.export(Packs(), (torch.randn(2, 3, 4),), tmp_path / "p.onnx")


# ---- the apps: rnnkit export, sample / classify predict --runtime onnxruntime ---------------




@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    corpus = write_corpus(folder, VERSE * 3)
    assert main(["train", str(corpus), "--out", str(folder / "run"), "--cache-dir",
                 str(folder / "cache"), "--hidden", "24", "--embedding", "16", "--batch-size",
                 "4", "--seq-len", "16", "--eval-every", "10", "--max-steps", "20",
                 "--no-progress", "--no-layer-norm"]) == 0  # (plain: ONNX's own LSTM op)
    return folder / "run"


def test_char_lm_samples_the_same_greedy_text_in_onnxruntime(lm_run, capsys):
    capsys.readouterr()
    status, out, _ = run_cli(["export", lm_run], capsys)
    assert status == 0
    assert "onnxruntime matches PyTorch" in out
    assert (lm_run / "model.onnx").is_file() and (lm_run / "model.json").is_file()
    meta = json.loads((lm_run / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "language_model" and meta["tokenizer"]["level"] == "char"
    ops = [op for op in rnnkit_onnx.node_types(lm_run / "model.onnx") if op in RECURRENT_OPS]
    assert ops == ["LSTM"] * meta["model"]["layers"]
    sample = ["sample", lm_run, "--greedy", "--length", "80", "--prime", "ALL:"]
    status, torch_text, _ = run_cli(sample, capsys)
    assert status == 0
    status, onnx_text, _ = run_cli([*sample, "--runtime", "onnxruntime"], capsys)
    assert status == 0
    assert onnx_text == torch_text and len(onnx_text) == 4 + 80 + 1


@pytest.mark.parametrize("ngrams", [["--ngrams", "0"], ["--ngrams", "3", "--ngram-buckets", "512"],
                                    ["--members", "2", "--ngram-buckets", "512"]],
                         ids=["plain", "ngram-bag", "ensemble"])
def test_classifier_predicts_the_same_in_onnxruntime(tmp_path, capsys, ngrams):
    train = write_reviews(tmp_path / "train.tsv", 60, seed=1)
    assert main(["classify", "train", str(train), "--out", str(tmp_path / "run"), "--max-steps",
                 "4", "--hidden", "8", "--embedding", "6", "--batch-size", "16", "--threads",
                 "1", "--no-progress", *ngrams]) == 0
    capsys.readouterr()
    out_file = tmp_path / "exported" / "classifier.onnx"
    out_file.parent.mkdir()
    status, out, _ = run_cli(["export", tmp_path / "run", "--onnx", out_file], capsys)
    assert status == 0 and "onnxruntime matches PyTorch" in out
    assert "GRU" in rnnkit_onnx.node_types(out_file) or "LSTM" in rnnkit_onnx.node_types(out_file)
    texts = tmp_path / "texts.txt"
    texts.write_text("연기 정말 좋아\n별로 영화\n좋아\n", encoding="utf-8")
    predict = ["classify", "predict", tmp_path / "run", texts, "--json"]
    status, torch_out, _ = run_cli(predict, capsys)
    assert status == 0
    status, onnx_out, _ = run_cli([*predict, "--runtime", "onnxruntime", "--onnx", out_file],
                                  capsys)
    assert status == 0
    for a, b in zip(torch_out.splitlines(), onnx_out.splitlines(), strict=True):
        first, second = json.loads(a), json.loads(b)
        assert first["label"] == second["label"]
        for key, value in first["probabilities"].items():
            assert second["probabilities"][key] == pytest.approx(value, abs=1e-5)


def test_forecaster_exports_with_its_scaler(tmp_path, capsys):
    data = write_monthly(tmp_path)
    assert main(["forecast", "train", str(data), "--target", "Passengers", "--horizon", "6",
                 "--lookback", "12", "--test-size", "12", "--val-size", "12", "--hidden", "8",
                 "--max-steps", "3", "--head", "seq2seq", "--out", str(tmp_path / "run"),
                 "--threads", "1"]) == 0
    capsys.readouterr()
    status, out, _ = run_cli(["export", tmp_path / "run"], capsys)
    assert status == 0 and "onnxruntime matches PyTorch" in out
    meta = json.loads((tmp_path / "run" / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "forecaster" and "scaler" in meta and meta["inputs"] == ["x"]


# ---- bad input: one line, exit 2 ---------------------------------------------------------------


def test_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, out, err = run_cli(["export", tmp_path / "empty"], capsys)
    assert status == 2 and out == ""
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1


def test_unwritable_output(lm_run, tmp_path, capsys):
    status, out, err = run_cli(["export", lm_run, "--onnx", tmp_path / "no" / "such" / "m.onnx"],
                               capsys)
    assert status == 2 and out == ""
    assert "cannot write there" in err and err.count("\n") == 1
    status, _, err = run_cli(["export", lm_run, "--onnx", tmp_path], capsys)
    assert status == 2 and "is a folder" in err and err.count("\n") == 1


def test_missing_extra(lm_run, monkeypatch, capsys):
    monkeypatch.setattr(rnnkit_onnx, "EXTRA", ("onnx", "onnxruntime_not_installed"))
    for args in (["export", lm_run], ["sample", lm_run, "--runtime", "onnxruntime"]):
        status, out, err = run_cli(args, capsys)
        assert status == 2 and out == ""
        assert err == ("rnnkit: error: ONNX export needs onnxruntime_not_installed: pip install "
                       "'rnnkit[onnx]' (onnx, onnxruntime, onnxscript)\n")


def test_runtime_without_an_exported_file(tmp_path, lm_run, capsys):
    status, _, err = run_cli(["sample", lm_run, "--runtime", "onnxruntime", "--onnx",
                              tmp_path / "none.onnx"], capsys)
    assert status == 2 and "no exported model; run `rnnkit export" in err
    assert err.count("\n") == 1
