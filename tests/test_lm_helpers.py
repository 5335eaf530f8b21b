"""Tiny corpora and configurations shared by the language-model tests."""

from __future__ import annotations

from rnnkit.train.config import RunConfig

VERSE = (
    "FIRST CITIZEN:\nBefore we proceed any further, hear me speak.\n\n"
    "ALL:\nSpeak, speak.\n\n"
    "FIRST CITIZEN:\nYou are all resolved rather to die than to famish?\n\n"
    "ALL:\nResolved. resolved.\n\n"
    "FIRST CITIZEN:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
)


def write_corpus(folder, text: str = VERSE * 3, name: str = "corpus.txt"):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def tiny_config(corpus, run_dir, cache_dir, **train) -> RunConfig:
    overrides = {
        "data.path": str(corpus), "data.cache_dir": str(cache_dir), "out": str(run_dir),
        "model.hidden": 24, "model.embedding": 16, "model.layers": 2, "model.dropout": 0.2,
        "train.batch_size": 4, "train.seq_len": 16, "train.log_every": 1,
        "train.eval_every": 5, "train.max_steps": 12, "train.lr": 1e-2,
    }
    overrides.update({f"train.{key}": value for key, value in train.items()})
    return RunConfig.from_sources(None, overrides)
