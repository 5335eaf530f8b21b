"""The trainer: it learns, it resumes bit-identically, it stops cleanly on Ctrl-C and NaN."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rnnkit.errors
import rnnkit.train.supervised
from rnnkit.forecast.run import start_forecast
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.metrics import read_metrics
from rnnkit.train.pipeline import resume_run, start_run
from rnnkit.train.trainer import TrainingDiverged
from tests.test_forecast_cli import sine_config, write_sine
from tests.test_lm_helpers import VERSE, tiny_config, write_corpus

ROOT = Path(__file__).resolve().parents[1]


def train_losses(run_dir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if r["kind"] == "train"]


def test_tiny_model_memorises_a_few_hundred_characters(tmp_path):
    corpus = write_corpus(tmp_path, VERSE[:320])
    config = tiny_config(corpus, tmp_path / "run", tmp_path / "cache", max_steps=250,
                         eval_every=250, lr=1e-2, log_every=10)
    config.model.dropout, config.model.hidden, config.model.embedding = 0.0, 64, 32
    config.data.val_fraction = 0.05
    result = start_run(config).fit()
    losses = train_losses(tmp_path / "run")
    assert losses[0][1] > 2.5  # about log(vocabulary) at the start
    assert losses[-1][1] < 0.4, losses[-5:]
    assert result.stopped == "max_steps" and result.steps == 250


def test_resume_is_bit_identical(tmp_path):
    corpus = write_corpus(tmp_path)
    straight = start_run(tiny_config(corpus, tmp_path / "straight", tmp_path / "cache"))
    straight.fit()

    stopped = start_run(tiny_config(corpus, tmp_path / "stopped", tmp_path / "cache"))

    def interrupt_at_seven(trainer, record):
        if record["step"] == 7:
            trainer._interrupted = True  # what Ctrl-C does

    stopped.on_step.append(interrupt_at_seven)
    assert stopped.fit().stopped == "interrupted"
    assert load_checkpoint(tmp_path / "stopped", "last").trainer_state["step"] == 7
    resumed = resume_run(tmp_path / "stopped", {})
    assert resumed.fit().stopped == "max_steps"

    expected, actual = train_losses(tmp_path / "straight"), train_losses(tmp_path / "stopped")
    assert [step for step, _ in expected] == list(range(1, 13))
    assert actual == expected  # floats compared exactly
    evaluations = [
        [(r["step"], r["val_loss"]) for r in read_metrics(run) if r["kind"] == "eval"]
        for run in (tmp_path / "straight", tmp_path / "stopped")
    ]
    assert evaluations[0] == evaluations[1]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_ctrl_c_saves_and_resume_matches(tmp_path):
    """A real SIGINT to ``rnnkit train``: checkpoint saved, exit 130, resume identical."""
    corpus = write_corpus(tmp_path)
    common = [str(corpus), "--cache-dir", str(tmp_path / "cache"), "--hidden", "24",
              "--embedding", "16", "--batch-size", "4", "--seq-len", "16", "--log-every", "1",
              "--eval-every", "50", "--dropout", "0.2",
              "--schedule", "constant",  # (a cosine would decay over the budget, changed here)
              "--max-steps", "100000"]
    command = [sys.executable, "-m", "rnnkit.cli", "train", *common]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command + ["--out", str(tmp_path / "run")], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 180  # generous: the machine may be shared
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"Continue with: rnnkit train --resume" in stdout
    interrupted_at = load_checkpoint(tmp_path / "run", "last").trainer_state["step"]
    assert interrupted_at >= 5
    final = interrupted_at + 5
    resume = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "train", "--resume", str(tmp_path / "run"),
         "--max-steps", str(final)], cwd=tmp_path, env=env, capture_output=True, timeout=120,
    )
    assert resume.returncode == 0, resume.stderr.decode()
    straight = subprocess.run(
        command[:-1] + [str(final), "--out", str(tmp_path / "straight")], cwd=tmp_path,
        env=env, capture_output=True, timeout=120,
    )
    assert straight.returncode == 0, straight.stderr.decode()
    assert train_losses(tmp_path / "run") == train_losses(tmp_path / "straight")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    corpus = write_corpus(tmp_path)
    trainer = start_run(tiny_config(corpus, tmp_path / "run", tmp_path / "cache",
                                    max_steps=20, eval_every=4))

    def poison_after_first_eval(trainer, record):
        with torch.no_grad():
            trainer.model.decoder.bias.fill_(math.nan)

    trainer.on_eval.append(poison_after_first_eval)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 5.*last good checkpoint"):
        trainer.fit()
    checkpoint = load_checkpoint(tmp_path / "run", "last")
    assert checkpoint.trainer_state["step"] == 4
    assert checkpoint.tensors["decoder.bias"].isfinite().all()


def poison(trainer, record):
    """An ``on_eval`` hook that makes every weight NaN: the next step's loss is NaN."""
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.fill_(math.nan)


def test_every_trainer_raises_the_one_training_diverged(tmp_path):
    """The language model's and the forecaster's divergence are one class, whichever of the
    old import paths (``trainer``, ``supervised``) or ``rnnkit.errors`` a caller catches."""
    assert TrainingDiverged is rnnkit.errors.TrainingDiverged
    assert rnnkit.train.supervised.TrainingDiverged is rnnkit.errors.TrainingDiverged
    corpus = write_corpus(tmp_path)
    language = start_run(tiny_config(corpus, tmp_path / "lm", tmp_path / "cache",
                                     max_steps=20, eval_every=4))
    forecast = start_forecast(sine_config(write_sine(tmp_path, count=160),
                                          tmp_path / "forecast", 20))
    forecast.eval_every = 4
    caught = []
    # each caught by the other's old name: one class, so neither escapes
    for trainer, name in ((language, rnnkit.train.supervised.TrainingDiverged),
                          (forecast, TrainingDiverged)):
        trainer.on_eval.append(poison)
        try:
            trainer.fit()
        except name as error:
            caught.append((type(error), str(error)))
    assert [kind for kind, _ in caught] == [rnnkit.errors.TrainingDiverged] * 2
    for _, message in caught:
        assert "loss became nan at step 5" in message and "last good checkpoint" in message
    assert load_checkpoint(tmp_path / "forecast", "last").trainer_state["step"] == 4


def test_plateau_decay_and_early_stopping(tmp_path):
    corpus = write_corpus(tmp_path)
    config = tiny_config(corpus, tmp_path / "run", tmp_path / "cache", max_steps=200,
                         eval_every=2, lr=5.0, schedule="plateau", patience=3, optimizer="sgd",
                         warmup=0)
    trainer = start_run(config)
    rates = []
    trainer.on_eval.append(lambda trainer, record: rates.append(trainer.schedule.scale))
    result = trainer.fit()
    assert result.stopped == "early_stopping" and result.steps < 200
    evaluations = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "eval"]
    stalled = [a["best_val_loss"] == b["best_val_loss"] for a, b in
               zip(evaluations, evaluations[1:])]
    assert stalled[-3:] == [True, True, True]
    assert rates[-1] == pytest.approx(0.25 ** 3)


def test_cosine_warmup_schedule_numbers(tmp_path):
    corpus = write_corpus(tmp_path)
    config = tiny_config(corpus, tmp_path / "run", tmp_path / "cache", max_steps=10,
                         schedule="cosine", warmup=2, min_lr=1e-3, lr=1e-2)
    trainer = start_run(config)
    trainer.fit()
    rates = [r["lr"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    expected = [1e-3 + 9e-3 * 0.5 * (1 + math.cos(math.pi * step / 10)) for step in range(10)]
    expected[0] *= 0.5
    assert rates == pytest.approx(expected, rel=1e-12)
