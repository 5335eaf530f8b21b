"""Tiny Shakespeare, character level: rnnkit's language model beside a plain torch.nn.LSTM one.

Each run gets the same wall-clock budget (evaluations included), one after the other so they
do not share the cores, and the same data: the first 90% of the text for training, the last
10% for validation. Runs (``--runs``), in pairs that differ only in the recurrent layer:

- ``torch`` and ``rnnkit-same`` (the default pair): embedding -> torch.nn.LSTM or rnnkit.LSTM
  -> decoder, AdamW 2e-3, no dropout, constant rate — the same settings and starting weights;
- ``torch-tuned`` and ``rnnkit``: the settings below (dropout, cosine decay, weight decay),
  given to both layers alike.

A comparison of ``torch`` against ``rnnkit`` would pit untuned against tuned settings: the
script refuses to make it without ``--allow-unpaired``. Prints validation loss (nats/char)
over time for each run, a side-by-side table and a sample; ``--results-name NAME`` writes
``benchmarks/results/NAME.json``.

    python benchmarks/lm_quality.py --time-budget 600            # the 10-minute comparison
    python benchmarks/lm_quality.py --time-budget 600 --runs torch-tuned,rnnkit
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import torch
from results import write_results
from torch import nn

from rnnkit.data.language_data import prepare_language_data
from rnnkit.models.language_model import LanguageModel, generate
from rnnkit.train.config import RunConfig
from rnnkit.train.runs import load_run
from rnnkit.train.trainer import Trainer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared beside the repo
DEFAULT_DATA = SHARED_DATA / "tinyshakespeare.txt"
RUNS = ("torch", "rnnkit-same", "torch-tuned", "rnnkit")
PAIRS = {"torch": "rnnkit-same", "rnnkit-same": "torch", "torch-tuned": "rnnkit",
         "rnnkit": "torch-tuned"}


class TorchLanguageModel(LanguageModel):
    """The same model with torch.nn.LSTM as the recurrent layer (oneDNN on CPU)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        rnnkit_layer = self.rnn
        self.rnn = nn.LSTM(config.embedding, config.hidden, config.layers,
                           dropout=config.dropout if config.layers > 1 else 0.0)
        self.rnn.load_state_dict(rnnkit_layer.state_dict())  # the same initial weights

    def forward(self, tokens, state=None, return_internals: bool = False):
        output, state = self.rnn(self.input_dropout(self.embedding(tokens)), state)
        return self.decoder(self.output_dropout(output)), state


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", default="torch,rnnkit-same", help=f"comma list of {RUNS}")
    parser.add_argument("--allow-unpaired", action="store_true",
                        help="run a set whose torch and rnnkit runs have different settings")
    parser.add_argument("--time-budget", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between evaluations")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    # the rnnkit run's own settings
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--min-lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out-dir", type=Path, default=None, help="run folders (default: tmp)")
    parser.add_argument("--results-name", default="",
                        help="write the curves to benchmarks/results/NAME.json")
    return parser.parse_args(argv)


def run_config(args, name: str, out: Path) -> RunConfig:
    tuned = name in ("rnnkit", "torch-tuned")
    overrides = {
        "data.path": str(args.data), "data.level": "char", "data.val_fraction": 0.1,
        "data.cache_dir": str(out / "cache"), "out": str(out / name),
        "model.cell": "lstm", "model.layers": args.layers, "model.hidden": args.hidden,
        "model.embedding": args.embedding, "model.dropout": args.dropout if tuned else 0.0,
        "model.layer_norm": False,  # (torch.nn.LSTM has none: the pairs compare plain layers)
        "train.batch_size": args.batch_size, "train.seq_len": args.seq_len,
        "train.optimizer": "adamw", "train.lr": args.lr if tuned else 2e-3,
        "train.weight_decay": args.weight_decay if tuned else 0.0,
        "train.schedule": args.schedule if tuned else "constant",
        "train.min_lr": args.min_lr, "train.warmup": args.warmup if tuned else 0,
        "train.clip": 5.0, "train.time_budget": args.time_budget,
        "train.eval_every": args.eval_every, "train.log_every": 50, "train.seed": args.seed,
    }
    return RunConfig.from_sources(None, overrides)


def train_one(args, name: str, out: Path) -> dict:
    config = run_config(args, name, out)
    data = prepare_language_data(config.data)
    config.model.vocab_size = data.tokenizer.vocab_size
    torch.manual_seed(config.train.seed)
    torch_layer = name.startswith("torch")
    model = TorchLanguageModel(config.model) if torch_layer else LanguageModel(config.model)
    trainer = Trainer(model, config, data, out / name, tensorboard=False)
    curve = []

    def report(trainer, record):
        curve.append((record["elapsed"], record["step"], record["val_loss"]))
        print(f"  [{name:>11}] {record['elapsed']:7.1f} s  step {record['step']:6d}  "
              f"validation loss {record['val_loss']:.4f}", flush=True)

    trainer.on_eval.append(report)
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{json.dumps({k: v for k, v in config.train.__dict__.items() if v})}", flush=True)
    result = trainer.fit()
    tokens_per_second = trainer.progress.tokens / max(trainer.progress.elapsed, 1e-9)
    sample = ""
    if name.startswith("rnnkit"):
        best_model, tokenizer, _ = load_run(out / name)
        ids = tokenizer.encode("ROMEO:\n")
        generator = torch.Generator().manual_seed(0)
        sample = "ROMEO:\n" + tokenizer.decode(
            list(generate(best_model, ids, 400, temperature=0.8, generator=generator))
        )
    return {"name": name, "curve": curve, "best": result.best_val_loss, "steps": result.steps,
            "tokens_per_second": tokens_per_second, "sample": sample}


def side_by_side(results: list[dict], budget: float) -> None:
    grid = [budget * fraction / 10 for fraction in range(1, 11)]
    print("\nvalidation loss (nats/char), the latest evaluation at or before each time")
    print("  time s " + "".join(f"{r['name']:>14}" for r in results))
    for moment in grid:
        row = []
        for result in results:
            seen = [loss for elapsed, _, loss in result["curve"] if elapsed <= moment + 1e-6]
            row.append(f"{seen[-1]:14.4f}" if seen else f"{'-':>14}")
        print(f"{moment:8.0f} " + "".join(row))
    print()
    for result in results:
        best_at = min(result["curve"], key=lambda point: point[2]) if result["curve"] else None
        where = f"at {best_at[0]:.0f} s, step {best_at[1]}" if best_at else ""
        print(f"{result['name']:>11}: best {result['best']:.4f} {where}; {result['steps']} "
              f"steps, {result['tokens_per_second']:.0f} tokens/s")


def main(argv=None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not args.data.is_file():
        print(f"lm_quality: {args.data} not found (expected ../shared/data beside the checkout)",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [name.strip() for name in args.runs.split(",") if name.strip()]
    unknown = set(names) - set(RUNS)
    if unknown:
        print(f"lm_quality: unknown run(s) {sorted(unknown)}; choose from {RUNS}", file=sys.stderr)
        return 2
    unpaired = [name for name in names if PAIRS[name] not in names]
    if unpaired and not args.allow_unpaired:
        print(f"lm_quality: {', '.join(unpaired)} without its like-for-like twin "
              f"({', '.join(PAIRS[name] for name in unpaired)}); add it, or pass "
              f"--allow-unpaired", file=sys.stderr)
        return 2
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="rnnkit-lm-quality-"))
    print(f"Tiny Shakespeare, {args.time_budget:.0f} s per run, {torch.get_num_threads()} "
          f"threads; run folders in {out}")
    results = [train_one(args, name, out) for name in names]
    side_by_side(results, args.time_budget)
    for result in results:
        if result["sample"]:
            print(f"\nsample from {result['name']} (temperature 0.8):\n{result['sample']}")
    if args.results_name:
        settings = {key: value for key, value in vars(args).items() if key != "data"}
        settings = {key: str(value) if isinstance(value, Path) else value
                    for key, value in settings.items()}
        path = write_results(args.results_name, {"settings": settings, "runs": results})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
