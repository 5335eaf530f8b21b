"""Inference time: the exported ONNX file in onnxruntime beside rnnkit and torch.nn in PyTorch.

For a trained char-level language model and a trained classifier (run folders given with
``--lm-run`` / ``--classifier-run``, or tiny ones trained here for ``--train-steps`` steps: the
LM on this repository's README, the classifier on generated two-class texts), at batch 1 and
``--batch``: one forward over ``--length`` steps, timed in each runtime. The three runtimes
alternate within every repeat (so drift on the machine hits them alike) and each reports the
median over ``--repeats``; the ratios are to rnnkit's median. torch.nn is the same network
with its recurrent layer swapped for ``torch.nn.LSTM``/``GRU``/``RNN`` holding the same weights
(rnnkit's parameter names are torch.nn's). Results go to benchmarks/results/onnx_inference.json.
Run on a quiet machine:

    .venv/bin/python benchmarks/onnx_inference.py --threads 1 --repeats 50

Smoke test: ``--train-steps 2 --repeats 3 --results-name ''``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import write_results
from torch import nn

from rnnkit.cli import main as rnnkit_main
from rnnkit.commands.export import export_run
from rnnkit.onnx import session as onnx_session

ROOT = Path(__file__).resolve().parents[1]


class TorchNNLayer(nn.Module):
    """torch.nn's layer with rnnkit's call signature (the LM passes ``return_internals``)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        kind = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[layer.mode]
        options = {"nonlinearity": layer.nonlinearity} if layer.mode == "RNN" else {}
        self.rnn = kind(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                        bias=layer.bias, batch_first=layer.batch_first,
                        bidirectional=layer.bidirectional, **options)
        self.rnn.load_state_dict(layer.state_dict())
        self.rnn.eval()

    def forward(self, input, hx=None, return_internals=False):
        return self.rnn(input, hx)


def with_torch_nn(model: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(model)
    name = "rnn"
    setattr(twin, name, TorchNNLayer(getattr(model, name)))
    return twin.eval()


def train_lm(folder: Path, steps: int) -> Path:
    out = folder / "lm"
    assert rnnkit_main(["train", str(ROOT / "README.md"), "--out", str(out), "--cache-dir",
                        str(folder / "cache"), "--hidden", "256", "--embedding", "64",
                        "--max-steps", str(steps), "--eval-every", str(max(steps, 1)),
                        "--no-layer-norm",  # (its torch.nn twin holds the same weights)
                        "--no-progress"]) == 0
    return out


def train_classifier(folder: Path, steps: int) -> Path:
    rng = random.Random(0)
    filler = "film actor plot music scene really just story".split()
    lines = ["id\ttext\tlabel"]
    for i in range(2000):
        words = rng.choices(filler, k=rng.randint(3, 30))
        words.insert(rng.randint(0, len(words)), "good" if i % 2 else "bad")
        lines.append(f"{i}\t{' '.join(words)}\t{i % 2}")
    data = folder / "reviews.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = folder / "classifier"
    assert rnnkit_main(["classify", "train", str(data), "--out", str(out), "--max-steps",
                        str(steps), "--hidden", "128", "--embedding", "64",
                        "--no-progress"]) == 0
    return out


def lm_case(run: Path, batch: int, length: int):
    from rnnkit.train.runs import load_run

    model, _, config = load_run(run)
    session = onnx_session(run / "model.onnx")
    tokens = torch.randint(0, config.model.vocab_size, (length, batch))
    h0 = torch.zeros(config.model.layers, batch, config.model.hidden)
    lstm = config.model.cell == "lstm"
    state = (h0, torch.zeros_like(h0)) if lstm else h0
    feed = {"tokens": tokens.numpy(), "h0": h0.numpy()}
    if lstm:
        feed["c0"] = h0.numpy()
    twin = with_torch_nn(model)
    return {
        "onnxruntime": lambda: session.run(None, feed),
        "rnnkit": lambda: model(tokens, state),
        "torch.nn": lambda: twin(tokens, state),
    }


def classifier_case(run: Path, batch: int, length: int):
    from rnnkit.classify.run import load_classifier

    loaded = load_classifier(run)
    model = loaded.model
    session = onnx_session(run / "model.onnx")
    generator = torch.Generator().manual_seed(batch)
    lengths = torch.randint(max(1, length // 2), length + 1, (batch,), generator=generator)
    lengths[0] = length
    tokens = torch.randint(3, model.config.vocab_size, (batch, length), generator=generator)
    tokens = tokens.masked_fill(torch.arange(length) >= lengths[:, None], 0)
    feed = {"tokens": tokens.numpy(), "lengths": lengths.numpy().astype(np.int64)}
    twin = with_torch_nn(model)
    return {
        "onnxruntime": lambda: session.run(None, feed),
        "rnnkit": lambda: model(tokens, lengths),
        "torch.nn": lambda: twin(tokens, lengths),
    }


def measure(calls: dict, repeats: int) -> dict:
    times = {name: [] for name in calls}
    with torch.no_grad():
        for call in calls.values():  # warm up each once
            call()
        for _ in range(repeats):
            for name, call in calls.items():  # alternating, so drift hits all alike
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "median_ms": {name: 1000 * value for name, value in medians.items()},
        "ratio_to_rnnkit": {name: value / medians["rnnkit"] for name, value in medians.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm-run", type=Path, help="a char-LM run folder (else trained here)")
    parser.add_argument("--classifier-run", type=Path, help="a classifier run folder")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32, help="the larger batch (and 1)")
    parser.add_argument("--length", type=int, default=128, help="steps per forward")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    parser.add_argument("--results-name", default="onnx_inference", help="'' writes none")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        runs = {"char_lm": args.lm_run or train_lm(folder, args.train_steps),
                "classifier": args.classifier_run or train_classifier(folder, args.train_steps)}
        results = {}
        for name, run in runs.items():
            difference = export_run(run, run / "model.onnx")
            case = lm_case if name == "char_lm" else classifier_case
            results[name] = {"run": str(run), "export_max_difference": difference}
            for batch in (1, args.batch):
                measured = measure(case(run, batch, args.length), args.repeats)
                results[name][f"batch_{batch}"] = measured
                ratios = ", ".join(f"{k} {v:.2f}x" for k, v in
                                   measured["ratio_to_rnnkit"].items())
                print(f"{name} batch {batch}: " + ", ".join(
                    f"{k} {v:.2f} ms" for k, v in measured["median_ms"].items()) +
                    f" ({ratios} rnnkit's time)")
    settings = {"length": args.length, "repeats": args.repeats, "threads": args.threads,
                "train_steps": args.train_steps}
    if args.results_name:
        path = write_results(args.results_name, {"settings": settings, **results})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
