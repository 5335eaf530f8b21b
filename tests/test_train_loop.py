"""The one training loop under every app: each resumes bit-identically from any step."""

from __future__ import annotations

import json
import re

import pytest
import torch

from rnnkit.classify.run import resume_classifier, start_classifier
from rnnkit.errors import UserError
from rnnkit.forecast.run import resume_forecast, start_forecast
from rnnkit.train.checkpoint import TRAINER_STATE_FILE, find_checkpoint, load_checkpoint
from rnnkit.train.loop import TrainingLoop
from rnnkit.train.metrics import read_metrics
from rnnkit.train.pipeline import resume_run, start_run
from tests.test_classify_cli import tiny_config as classify_config
from tests.test_classify_cli import write_reviews
from tests.test_forecast_cli import sine_config, write_sine
from tests.test_lm_helpers import tiny_config, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TIMING = ("elapsed", "tokens_per_second", "examples_per_second")
APPS = ["language_model", "classifier", "forecaster"]


def start(app: str, tmp_path, out: str, steps: int, log_every: int = 1):
    """A fresh run of ``app`` (tiny, dropout on) logging every ``log_every`` steps the mean
    training loss since the last log, evaluating every 5."""
    if app == "language_model":
        config = tiny_config(write_corpus(tmp_path), tmp_path / out, tmp_path / "cache",
                             max_steps=steps, log_every=log_every)
        return start_run(config)
    if app == "classifier":
        config = classify_config(write_reviews(tmp_path / "reviews.tsv", 120, seed=3),
                                 tmp_path / out, steps)
        config.train.log_every = log_every
        return start_classifier(config)[0]
    config = sine_config(write_sine(tmp_path, count=160), tmp_path / out, steps)
    config.model.dropout = 0.2
    config.train.eval_every, config.train.log_every = 5, log_every
    return start_forecast(config)


def resume(app: str, run_dir, steps: int):
    if app == "language_model":
        return resume_run(run_dir, {"train.max_steps": steps})
    if app == "classifier":
        return resume_classifier(run_dir, {"max_steps": steps})
    return resume_forecast(run_dir, {"max_steps": steps})


def interrupt_at(step: int):
    def hook(trainer, record):
        if record["step"] == step:
            trainer._interrupted = True  # what Ctrl-C does

    return hook


def interrupt_at_evaluation(step: int):
    def hook(trainer, record):
        if record["step"] == step:
            trainer._interrupted = True  # Ctrl-C during the evaluation: stop after it

    return hook


def records(run_dir) -> list[dict]:
    """metrics.jsonl without the clock's numbers."""
    return [{key: value for key, value in record.items() if key not in TIMING}
            for record in read_metrics(run_dir)]


@pytest.mark.parametrize("app", APPS)
def test_every_app_resumes_bit_identically_from_a_step_between_evaluations(app, tmp_path):
    straight = start(app, tmp_path, "straight", 12)
    assert isinstance(straight, TrainingLoop)
    straight.fit()
    stopped = start(app, tmp_path, "stopped", 12)
    stopped.on_step.append(interrupt_at(7))
    assert stopped.fit().stopped == "interrupted"
    assert load_checkpoint(tmp_path / "stopped", "last").trainer_state["step"] == 7
    resumed = resume(app, tmp_path / "stopped", 12)
    assert resumed.progress.step == 7
    assert resumed.fit().stopped == "max_steps"
    expected = records(tmp_path / "straight")
    assert [r["step"] for r in expected if r["kind"] == "train"] == list(range(1, 13))
    assert [r["step"] for r in expected if r["kind"] == "eval"] == [5, 10, 12]
    assert records(tmp_path / "stopped") == expected  # floats compared exactly
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("app", APPS)
def test_the_loss_logged_after_a_resume_is_the_uninterrupted_runs(app, tmp_path):
    """Logged every 3 steps, stopped at step 5: the loss logged at step 6 after the resume
    is the mean of steps 4, 5 and 6, as in the run that never stopped (the window of losses
    since the last log is saved in the trainer state)."""
    straight = start(app, tmp_path, "straight", 12, log_every=3)
    straight.fit()
    stopped = start(app, tmp_path, "stopped", 12, log_every=3)
    stopped.on_eval.append(interrupt_at_evaluation(5))
    assert stopped.fit().stopped == "interrupted"
    state = load_checkpoint(tmp_path / "stopped", "last").trainer_state
    assert (state["step"], state["window_steps"]) == (5, 2)
    resume(app, tmp_path / "stopped", 12).fit()
    expected = records(tmp_path / "straight")
    assert [r["step"] for r in expected if r["kind"] == "train"] == [3, 6, 9, 12]
    assert records(tmp_path / "stopped") == expected  # the loss at step 6 included, exactly


def test_a_run_saved_before_the_loop_was_shared_resumes(tmp_path):
    """Trainer states written by the language model's own loop named the count ``tokens``,
    the scores ``best_val_loss`` / ``last_val_loss`` and the hash ``content_hash``."""
    start("language_model", tmp_path, "straight", 12).fit()
    stopped = start("language_model", tmp_path, "stopped", 12)
    stopped.on_step.append(interrupt_at(7))
    stopped.fit()
    path = find_checkpoint(tmp_path / "stopped", "last") / TRAINER_STATE_FILE
    state = torch.load(path, weights_only=True)
    for old, new in (("tokens", "seen"), ("best_val_loss", "best_score"),
                     ("last_val_loss", "last_score"), ("content_hash", "data_hash")):
        state[old] = state.pop(new)
    del state["window_loss"], state["window_steps"]  # (empty: it was logged at step 7)
    torch.save(state, path)
    resumed = resume("language_model", tmp_path / "stopped", 12)
    assert resumed.progress.tokens == 7 * 4 * 16
    resumed.fit()
    assert records(tmp_path / "stopped") == records(tmp_path / "straight")

CHANGED_LR = {"language_model": {"train.lr": 0.5}, "classifier": {"lr": 0.5},
              "forecaster": {"train.lr": 0.5}}
RESUME = {"language_model": resume_run, "classifier": resume_classifier,
          "forecaster": resume_forecast}


@pytest.mark.parametrize("app", APPS)
def test_every_app_starts_and_resumes_a_run_folder_alike(app, tmp_path):
    """One helper claims, loads and continues the run folders of every app: the same
    refusals, in the same words, for each."""
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=r"^--out \S+file is a file; expected a run folder"):
        start(app, tmp_path, "file", 2)
    first = start(app, tmp_path, "run", 2)
    first.fit()
    with pytest.raises(UserError, match=r"^--out \S+run already holds a run; continue it with "
                                        r"--resume \S+run or choose another --out$"):
        start(app, tmp_path, "run", 2)
    with pytest.raises(UserError, match=r"^--resume takes the run folder, not the checkpoint "
                                        r"\S+last; try --resume \S+run$"):
        RESUME[app](tmp_path / "run" / "last", {})
    with pytest.raises(UserError, match=r"^--resume continues the run with its saved settings; "
                                        r"--lr cannot change \(only budgets: --max-steps, "
                                        r"--epochs, --time-budget, --patience\); the run has "
                                        + re.escape(f"lr = {first.train.lr!r}") + "$"):
        RESUME[app](tmp_path / "run", CHANGED_LR[app])
    resumed = RESUME[app](tmp_path / "run", {"train.max_steps": 3})
    assert resumed.progress.step == 2 and resumed.train.max_steps == 3
    resumed.fit()
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["train"]["max_steps"] == 3  # the budget it continued with
