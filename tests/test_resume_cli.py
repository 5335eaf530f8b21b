"""``--resume`` as a user expects, through the command line of every app: the command line
that started a run, repeated with ``--resume`` (its data left out), continues it; a changed
setting is refused with the value the run has; the resumed run says each thing once."""

from __future__ import annotations

import re

import pytest

from tests.helpers import run_cli
from tests.test_classify_cli import write_reviews
from tests.test_forecast_cli import write_sine
from tests.test_lm_helpers import write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

APPS = ["language_model", "classifier", "forecaster"]
BUDGET = ("only budgets: --max-steps, --epochs, --time-budget, --patience")


def command(app: str, tmp_path):
    """The command with its data, the flags that set the run up, a changed flag and the
    message that refuses it."""
    if app == "language_model":
        corpus = write_corpus(tmp_path)
        return (["train", corpus],
                ["--hidden", "24", "--embedding", "16", "--batch-size", "4", "--seq-len", "16",
                 "--dropout", "0.2", "--cache-dir", tmp_path / "cache", "--vocab-from", corpus,
                 "--layer-norm"],
                ["--hidden", "32"], f"--hidden cannot change ({BUDGET}); the run has hidden = 24")
    if app == "classifier":
        return (["classify", "train", write_reviews(tmp_path / "reviews.tsv", 120, seed=3)],
                ["--hidden", "12", "--embedding", "8", "--batch-size", "16", "--lr", "0.01",
                 "--unidirectional", "--level", "word"],
                ["--lr", "0.02"], f"--lr cannot change ({BUDGET}); the run has lr = 0.01")
    return (["forecast", "train", write_sine(tmp_path, count=160)],
            ["--target", "value", "--horizon", "8", "--lookback", "32", "--hidden", "16",
             "--quantiles", "0.1,0.5,0.9", "--sort"],
            ["--horizon", "4"], f"--horizon cannot change ({BUDGET}); the run has horizon = 8")


def start_and_resume(app, tmp_path, capsys):
    """The run started for 4 steps, then its command line repeated with --resume for 6."""
    data_command, flags, changed, message = command(app, tmp_path)
    run = tmp_path / "run"
    status, out, err = run_cli([*data_command, *flags, "--out", run, "--max-steps", "4",
                                "--threads", "1", "--no-progress"], capsys)
    assert status == 0, err
    resumed = run_cli([*data_command[:-1], "--resume", run, *flags, "--max-steps", "6",
                       "--threads", "1", "--no-progress"], capsys)
    return data_command[:-1], run, changed, message, resumed


@pytest.mark.parametrize("app", APPS)
def test_resume_accepts_the_settings_repeated_and_refuses_a_changed_one(app, tmp_path, capsys):
    command_only, run, changed, message, (status, out, err) = start_and_resume(app, tmp_path,
                                                                                capsys)
    assert status == 0, err
    assert "Stopped at step 6 (max steps)" in out
    status, out, err = run_cli([*command_only, "--resume", run, *changed, "--max-steps", "8"],
                               capsys)
    assert (status, out) == (2, "")
    assert err == f"rnnkit: error: --resume continues the run with its saved settings; " \
                  f"{message}\n"


@pytest.mark.parametrize("app", APPS)
def test_a_resumed_run_says_each_thing_once(app, tmp_path, capsys):
    *_, (status, out, err) = start_and_resume(app, tmp_path, capsys)
    assert status == 0, err
    lines = out.splitlines() + err.splitlines()
    assert len(lines) == len(set(lines)), lines
    news = [line for line in lines if re.search(r"\bstep 4\b", line)]
    assert len(news) == 1 and news[0].startswith(f"Resuming {tmp_path / 'run'} at step 4"), \
        lines
    counts = re.search(r"^([\d,]+) training and ([\d,]+) validation tokens", out, re.M)
    if app == "language_model":  # the corpus' numbers: printed once, not logged again
        for number in counts.groups():
            assert len([line for line in lines if re.search(rf"\b{number}\b", line)]) == 1, \
                lines
