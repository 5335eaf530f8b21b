"""CI-sized long-range training: on adding T=50 the RNN stays at the baseline while the chrono
LSTM and the GRU solve it; the runner's bookkeeping (solved step, curves, early stop)."""

from __future__ import annotations

import pytest

from rnnkit.tasks import make_task
from rnnkit.tasks.runner import Job, run_jobs
from rnnkit.tasks.training import TrainSettings

SETTINGS = TrainSettings(steps=1000, hidden=32, learning_rate=1e-2, eval_every=50, test_size=500,
                         stop_after_solved=0, gradient_flow=False, backend="reference")


def test_adding_ordering_rnn_forgets_gated_cells_solve():
    jobs = [Job("adding", 50, cell, 0, SETTINGS) for cell in ("rnn", "gru", "lstm-chrono")]
    (rnn, gru, chrono), _ = run_jobs(jobs, workers=1, progress=False)
    assert rnn.solved_step is None and rnn.steps == 1000
    assert rnn.best >= 0.15  # never better than predicting the mean sum (1/6)
    for gated in (gru, chrono):
        assert gated.solved_step is not None and gated.solved_step < 1000
        assert gated.final <= 0.05 and gated.steps == gated.solved_step  # stopped once solved
        assert gated.best == min(score for _, score in gated.curve)
    assert [step for step, _ in rnn.curve] == list(range(0, 1001, 50))


def test_settings_validation_messages():
    from rnnkit.errors import UserError

    with pytest.raises(UserError, match="--steps must be a positive integer, got 0"):
        TrainSettings(steps=0).validate()
    with pytest.raises(UserError, match="--lr must be positive"):
        TrainSettings(learning_rate=0.0).validate()
    with pytest.raises(UserError, match="--batch-size must be a positive integer"):
        TrainSettings(batch_size=-1).validate()


def test_describe_names_metric_and_baseline():
    text = make_task("copy", 100).describe()
    assert "cross-entropy" in text and f"{10 * 2.0794415 / 120:.4g}" in text
