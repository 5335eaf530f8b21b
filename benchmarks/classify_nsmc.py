"""NSMC sentiment in a fixed time budget: rnnkit's classifier beside a plain torch.nn baseline.

Both runs use the same data pipeline (tokens, length buckets, validation split) and the same
training loop; the baseline swaps the recurrent layer for ``torch.nn.LSTM`` — a character
level bidirectional LSTM, embedding 64, hidden 128, max pooling, Adam 2e-3, as in the issue —
which works because rnnkit's layers take torch.nn's arguments and parameter names. Each run
trains for ``--budget`` seconds, then its best checkpoint (validation accuracy) is scored on
the test file. Run on a quiet machine:

    .venv/bin/python benchmarks/classify_nsmc.py --budget 600 --threads 2

Smoke test: ``--budget 20 --limit 2000``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from rnnkit.classify.data import read_labelled
from rnnkit.classify.metrics import scores
from rnnkit.classify.model import Classifier
from rnnkit.classify.run import ClassifyConfig, ClassifyData, ClassifyTask, predict_probabilities
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.supervised import SupervisedTrainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def build(args, which: str) -> ClassifyConfig:
    config = ClassifyConfig()
    config.data.path = str(args.train)
    config.data.val_fraction = args.val_fraction
    config.train.lr, config.train.batch_size = 2e-3, args.batch_size
    config.train.time_budget, config.train.eval_every = args.budget, args.eval_every
    config.train.seed = args.seed
    if which == "torch.nn":  # the baseline, exactly
        config.data.level, config.data.max_len = "char", 0
        config.model.embedding, config.model.hidden, config.model.pooling = 64, 128, "max"
        return config
    config.data.level, config.data.vocab_size = args.level, args.vocab_size
    config.data.min_count, config.data.max_len = args.min_count, args.max_len
    config.model.cell, config.model.hidden, config.model.embedding = (args.cell, args.hidden,
                                                                       args.embedding)
    config.model.pooling, config.model.dropout = args.pooling, args.dropout
    config.model.embedding_dropout = args.embedding_dropout
    config.train.weight_decay = args.weight_decay
    return config


def limited(data: ClassifyData, limit: int) -> None:
    if limit:
        data.train_ids, data.train_targets = data.train_ids[:limit], data.train_targets[:limit]
        data.train.texts, data.train.labels = data.train.texts[:limit], data.train.labels[:limit]


def run_one(args, which: str) -> dict:
    config = build(args, which)
    config.out = str(Path(args.out) / which.replace(".", ""))
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
    model.load_state_dict(load_checkpoint(config.out, "best", trainer_state=False).tensors)
    test = read_labelled(args.test, config.data.text_col, config.data.label_col)
    targets = data.targets(test, "test")
    probabilities = predict_probabilities(model, data.encoder.encode_many(test.texts))
    tested = scores(targets, probabilities.argmax(dim=1), len(data.classes))
    return {"model": which, "level": config.data.level, "cell": config.model.cell,
            "embedding": config.model.embedding, "hidden": config.model.hidden,
            "pooling": config.model.pooling, "dropout": config.model.dropout,
            "steps": result.steps, "epochs": round(result.steps / trainer.batches_per_epoch, 2),
            "train_seconds": round(seconds, 1), "val_accuracy": round(1 - result.best_score, 4),
            "test_accuracy": round(tested["accuracy"], 4),
            "test_macro_f1": round(tested["macro_f1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=DATA / "nsmc-train.tsv")
    parser.add_argument("--test", type=Path, default=DATA / "nsmc-test.tsv")
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--which", default="rnnkit,torch.nn")
    parser.add_argument("--out", default="runs/bench-nsmc")
    parser.add_argument("--limit", type=int, default=0, help="training texts (0: all)")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--progress", action="store_true")
    # rnnkit's model (the baseline's is fixed by the issue)
    parser.add_argument("--level", default="char")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=0)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--pooling", default="mean-max")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--embedding-dropout", type=float, default=0.2)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [run_one(args, which) for which in args.which.split(",")]
    for row in rows:
        print(json.dumps(row))
    print(f"\n{'model':<10}{'level':<6}{'steps':>7}{'epochs':>8}{'val acc':>9}{'test acc':>10}"
          f"{'macro-F1':>10}")
    for row in rows:
        print(f"{row['model']:<10}{row['level']:<6}{row['steps']:>7}{row['epochs']:>8}"
              f"{row['val_accuracy']:>9.4f}{row['test_accuracy']:>10.4f}"
              f"{row['test_macro_f1']:>10.4f}")


if __name__ == "__main__":
    main()
