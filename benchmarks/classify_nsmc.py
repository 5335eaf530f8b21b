"""NSMC sentiment in a fixed time budget: rnnkit's classifier beside a plain torch.nn baseline.

Both models use the same data pipeline (tokens, length buckets, validation split), the same
training loop and the same settings, and differ only in the recurrent layer: the baseline swaps
rnnkit's bidirectional LSTM for ``torch.nn.LSTM`` (which works because rnnkit's layers take
torch.nn's arguments and parameter names) and starts from the same weights.

Settings are chosen on the validation split only: each model trains every candidate of
``--grid`` for ``--select-budget`` seconds and keeps the one with the best validation accuracy
(the last 5% of the training file); then that setting trains for ``--budget`` seconds and its
best checkpoint (validation accuracy) is scored on the test file — the only time the test file
is read. Results go to ``benchmarks/results/classify_nsmc.json``. Run on a quiet machine:

    .venv/bin/python benchmarks/classify_nsmc.py --budget 600 --select-budget 120 --threads 2

Smoke test: ``--budget 20 --select-budget 10 --limit 2000 --results-name ''``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

import torch
from results import write_results

from rnnkit.classify.data import read_labelled
from rnnkit.classify.metrics import scores
from rnnkit.classify.model import Classifier
from rnnkit.classify.run import ClassifyConfig, ClassifyData, ClassifyTask, predict_probabilities
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.supervised import SupervisedTrainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


GRID_KEYS = {"dropout": ("model", "dropout", float),
             "embedding_dropout": ("model", "embedding_dropout", float),
             "pooling": ("model", "pooling", str), "hidden": ("model", "hidden", int),
             "weight_decay": ("train", "weight_decay", float), "lr": ("train", "lr", float),
             "embedding": ("model", "embedding", int), "layers": ("model", "layers", int),
             "cell": ("model", "cell", str), "level": ("data", "level", str),
             "vocab_size": ("data", "vocab_size", int), "max_len": ("data", "max_len", int),
             "schedule": ("train", "schedule", str), "batch_size": ("train", "batch_size", int)}


def candidates(grid: str) -> list[dict]:
    """``"dropout=0.3,0.5;pooling=max,mean-max"`` -> every combination, as dicts.

    ``+`` joins grids: ``"level=bpe + schedule=cosine"`` tries each change on its own.
    """
    if "+" in grid:
        return [row for part in grid.split("+") for row in candidates(part)]
    axes = []
    for part in filter(None, (part.strip() for part in grid.split(";"))):
        key, _, values = part.partition("=")
        key = key.strip().replace("-", "_")
        if key not in GRID_KEYS:
            raise SystemExit(f"--grid: unknown setting {key!r}; choose from {sorted(GRID_KEYS)}")
        kind = GRID_KEYS[key][2]
        axes.append([(key, kind(value.strip())) for value in values.split(",")])
    return [dict(combination) for combination in itertools.product(*axes)] or [{}]


def build(args, settings: dict, budget: float) -> ClassifyConfig:
    """The shared configuration of both models, with one candidate's settings on top."""
    config = ClassifyConfig()
    config.data.path = str(args.train)
    config.data.val_fraction = args.val_fraction
    config.data.level, config.data.vocab_size = args.level, args.vocab_size
    config.data.min_count, config.data.max_len = args.min_count, args.max_len
    config.model.cell, config.model.hidden, config.model.embedding = "lstm", args.hidden, 64
    config.model.pooling, config.model.dropout = args.pooling, args.dropout
    config.model.embedding_dropout = args.embedding_dropout
    config.train.lr, config.train.batch_size = args.lr, args.batch_size
    config.train.weight_decay = args.weight_decay
    config.train.time_budget, config.train.eval_every = budget, args.eval_every
    config.train.seed = args.seed
    for key, value in settings.items():
        section, field, _ = GRID_KEYS[key]
        setattr(getattr(config, section), field, value)
    return config


def limited(data: ClassifyData, limit: int) -> None:
    if limit:
        data.train_ids, data.train_targets = data.train_ids[:limit], data.train_targets[:limit]
        data.train.texts, data.train.labels = data.train.texts[:limit], data.train.labels[:limit]


def run_one(args, which: str, settings: dict, budget: float, test: bool) -> dict:
    config = build(args, settings, budget)
    tag = "-".join(f"{key}{value}" for key, value in settings.items()) or "default"
    config.out = str(Path(args.out) / which.replace(".", "") / ("final" if test else tag))
    shutil.rmtree(config.out, ignore_errors=True)  # a fresh run each time
    data = ClassifyData(config.data, config.train.seed)
    limited(data, args.limit)
    config.model.vocab_size, config.model.classes = data.encoder.vocab_size, len(data.classes)
    torch.manual_seed(config.train.seed)
    model = Classifier(config.model)
    if which == "torch.nn":
        rnnkit_layer = model.rnn
        model.rnn = torch.nn.LSTM(config.model.embedding, config.model.hidden, batch_first=True,
                                  bidirectional=True)
        model.rnn.load_state_dict(rnnkit_layer.state_dict())  # the same starting weights
    trainer = SupervisedTrainer(model, ClassifyTask(config, data), config.train, config.out,
                                progress=args.progress, score_name="val_error")
    started = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - started
    row = {"model": which, "settings": settings, "budget": budget,
           "level": config.data.level, "embedding": config.model.embedding,
           "hidden": config.model.hidden, "pooling": config.model.pooling,
           "dropout": config.model.dropout, "steps": result.steps,
           "epochs": round(result.steps / trainer.batches_per_epoch, 2),
           "train_seconds": round(seconds, 1), "val_accuracy": round(1 - result.best_score, 4)}
    if test:  # the test file, read once per reported run
        model.load_state_dict(load_checkpoint(config.out, "best", trainer_state=False).tensors)
        held_out = read_labelled(args.test, config.data.text_col, config.data.label_col)
        targets = data.targets(held_out, "test")
        probabilities = predict_probabilities(model, data.encoder.encode_many(held_out.texts))
        tested = scores(targets, probabilities.argmax(dim=1), len(data.classes))
        row.update(test_accuracy=round(tested["accuracy"], 4),
                   test_macro_f1=round(tested["macro_f1"], 4))
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=DATA / "nsmc-train.tsv")
    parser.add_argument("--test", type=Path, default=DATA / "nsmc-test.tsv")
    parser.add_argument("--budget", type=float, default=600.0, help="final training seconds")
    parser.add_argument("--select-budget", type=float, default=120.0,
                        help="training seconds of each candidate in the selection")
    parser.add_argument("--grid", default="dropout=0.0,0.5;pooling=max,mean-max",
                        help="candidates, e.g. 'dropout=0.0,0.5;pooling=max,mean-max' "
                             f"(settings: {', '.join(GRID_KEYS)}); '' for no selection")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--which", default="rnnkit,torch.nn")
    parser.add_argument("--out", default="runs/bench-nsmc")
    parser.add_argument("--results-name", default="classify_nsmc",
                        help="benchmarks/results/NAME.json ('' to write none)")
    parser.add_argument("--limit", type=int, default=0, help="training texts (0: all)")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--select-only", action="store_true",
                        help="only the selection on the validation split; the test file unread")
    # the shared model, before the grid's settings
    parser.add_argument("--level", default="char")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--pooling", default="max")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--embedding-dropout", type=float, default=0.0)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    grid = candidates(args.grid)
    selection, finals = [], []
    for which in args.which.split(","):
        tried = [run_one(args, which, settings, args.select_budget, test=False)
                 for settings in grid] if len(grid) > 1 else []
        best = max(tried, key=lambda row: row["val_accuracy"])["settings"] if tried else grid[0]
        selection += tried
        if not args.select_only:
            finals.append(run_one(args, which, best, args.budget, test=True))
    if selection:
        print("\nselection on the validation split (the test file unread)")
        for row in selection:
            print(f"  {row['model']:<9} {json.dumps(row['settings']):<42} "
                  f"val acc {row['val_accuracy']:.4f}  ({row['steps']} steps)")
    print(f"\n{'model':<10}{'settings':<42}{'steps':>7}{'epochs':>8}{'val acc':>9}"
          f"{'test acc':>10}{'macro-F1':>10}")
    for row in finals:
        print(f"{row['model']:<10}{json.dumps(row['settings']):<42}{row['steps']:>7}"
              f"{row['epochs']:>8}{row['val_accuracy']:>9.4f}{row['test_accuracy']:>10.4f}"
              f"{row['test_macro_f1']:>10.4f}")
    if args.results_name:
        settings = {key: str(value) if isinstance(value, Path) else value
                    for key, value in vars(args).items()}
        path = write_results(args.results_name, {"settings": settings, "selection": selection,
                                                 "final": finals})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
