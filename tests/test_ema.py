"""``--ema``: the loop's moving average of the weights is the one its definition gives, is what
evaluation sees and checkpoints hold, and resumes bit for bit."""

from __future__ import annotations

import pytest
import torch

from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.metrics import read_metrics
from rnnkit.train.pipeline import resume_run, start_run
from tests.helpers import run_cli
from tests.test_lm_helpers import tiny_config, write_corpus


def test_the_average_is_the_decayed_sum_of_the_live_weights(tmp_path):
    corpus = write_corpus(tmp_path)
    trainer = start_run(tiny_config(corpus, tmp_path / "run", tmp_path / "cache", max_steps=12,
                                    ema=0.5, eval_every=100))
    names = [name for name, _ in trainer.model.named_parameters()]
    expected = {name: p.detach().double().clone() for name, p in trainer.model.named_parameters()}
    steps = []

    def follow(trainer, record):  # log_every 1: after every step, in float64
        t = record["step"]
        decay = min(0.5, (1 + t) / (10 + t))
        for name, parameter in trainer.model.named_parameters():
            expected[name] = decay * expected[name] + (1 - decay) * parameter.detach().double()
        steps.append(t)

    trainer.on_step.append(follow)
    trainer.fit()
    assert steps == list(range(1, 13)) and trainer.average.updates == 12
    for name in names:
        torch.testing.assert_close(trainer.average.average[name].double(), expected[name],
                                   rtol=1e-6, atol=1e-7)
        live = dict(trainer.model.named_parameters())[name]
        assert not torch.equal(live, trainer.average.average[name])  # (the live ones moved on)


def test_checkpoints_hold_the_average_and_validation_scores_it(tmp_path):
    corpus = write_corpus(tmp_path)
    trainer = start_run(tiny_config(corpus, tmp_path / "run", tmp_path / "cache", max_steps=10,
                                    ema=0.9, eval_every=10))
    trainer.fit()
    saved = load_checkpoint(tmp_path / "run", "last").tensors
    for name, average in trainer.average.average.items():
        assert torch.equal(saved[name], average)
    live = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    last = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "eval"][-1]
    with trainer.average.swapped():  # the logged validation is the average's
        trainer.model.eval()
        with torch.no_grad():
            again = trainer.task.validate(trainer.model, trainer.dist)
    assert again["val_loss"] == last["val_loss"]
    for name, parameter in trainer.model.named_parameters():  # and the live weights are back
        assert torch.equal(parameter, live[name])


def test_a_resumed_run_with_an_average_is_bit_identical(tmp_path):
    corpus = write_corpus(tmp_path)
    straight = start_run(tiny_config(corpus, tmp_path / "straight", tmp_path / "cache",
                                     ema=0.8))
    straight.fit()
    stopped = start_run(tiny_config(corpus, tmp_path / "stopped", tmp_path / "cache", ema=0.8))

    def interrupt_at_seven(trainer, record):
        if record["step"] == 7:
            trainer._interrupted = True

    stopped.on_step.append(interrupt_at_seven)
    assert stopped.fit().stopped == "interrupted"
    resumed = resume_run(tmp_path / "stopped", {})
    assert resumed.average.updates == 7
    resumed.fit()
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
        assert torch.equal(straight.average.average[name], resumed.average.average[name]), name
    losses = [[(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(run)]
              for run in (tmp_path / "straight", tmp_path / "stopped")]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_a_decay_outside_zero_to_one_is_one_line(value, tmp_path, capsys):
    corpus = write_corpus(tmp_path)
    status, _, err = run_cli(["train", corpus, "--ema", value, "--max-steps", "1", "--out",
                              tmp_path / "run", "--cache-dir", tmp_path / "cache"], capsys)
    assert status == 2 and "--ema must be a decay in [0, 1)" in err
    assert not (tmp_path / "run").exists()
