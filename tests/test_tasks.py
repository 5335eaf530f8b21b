"""Task generators: shapes, what each sequence holds, the memoryless baselines, seeding, errors."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.errors import UserError
from rnnkit.tasks import TASKS, make_task, parse_cells


def draw(name: str, length: int, batch: int = 4096, seed: int = 0):
    task = make_task(name, length)
    return task, *task.sample(batch, torch.Generator().manual_seed(seed))


def test_adding_sequences_and_baseline():
    task, inputs, targets = draw("adding", 40)
    assert inputs.shape == (40, 4096, 2) and targets.shape == (4096, 1)
    values, markers = inputs[..., 0], inputs[..., 1]
    assert values.min() >= 0 and values.max() <= 1
    assert torch.equal(markers[:20].sum(0), torch.ones(4096))  # one marker in each half
    assert torch.equal(markers[20:].sum(0), torch.ones(4096))
    torch.testing.assert_close(targets[:, 0], (values * markers).sum(0))
    constant = task.score(torch.ones_like(targets), targets)  # the mean sum, 1, remembers nothing
    assert task.metric.baseline == pytest.approx(1 / 6)
    assert constant == pytest.approx(1 / 6, abs=0.01)
    assert task.score(targets, targets) == 0.0


def test_recall_sequences_and_chance():
    task, inputs, targets = draw("recall", 30)
    tokens = inputs.argmax(-1)  # (T, N)
    assert inputs.shape == (30, 4096, task.input_size) and targets.shape == (4096,)
    assert torch.equal(inputs.sum(-1), torch.ones(30, 4096))  # one-hot
    assert torch.equal(tokens[0], targets)
    assert tokens[1:].min() >= task.classes  # distractors never look like a class
    counts = torch.bincount(targets, minlength=task.classes).float() / 4096
    assert counts.sub(1 / task.classes).abs().max() < 0.03
    guess = torch.zeros(4096, task.classes)
    guess[:, 3] = 1.0  # always the same class: chance
    assert task.score(guess, targets) == pytest.approx(task.metric.baseline, abs=0.02)
    assert task.metric.baseline == 1 / task.classes


def test_copy_memory_sequences_and_baseline():
    task, inputs, targets = draw("copy", 25, batch=512)
    steps = 25 + 20
    assert inputs.shape == (steps, 512, 10) and targets.shape == (steps, 512)
    tokens = inputs.argmax(-1)
    assert tokens[:10].min() >= 1 and tokens[:10].max() <= 8
    assert torch.equal(tokens[10:34], torch.zeros(24, 512, dtype=torch.long))  # T - 1 blanks
    assert torch.equal(tokens[34], torch.full((512,), 9))  # the delimiter
    assert torch.equal(targets[-10:], tokens[:10])
    assert targets[:-10].abs().sum() == 0
    # blanks until the delimiter has passed, then a uniform guess over the 8 symbols
    logits = torch.full((steps, 512, 9), -1e4)
    logits[:-10, :, 0] = 0.0
    logits[-10:, :, 1:] = 0.0
    expected = 10 * math.log(8) / steps
    assert task.metric.baseline == pytest.approx(expected)
    assert task.score(logits, targets) == pytest.approx(expected, rel=1e-5)


def test_temporal_order_sequences_and_classes():
    task, inputs, targets = draw("order", 100)
    tokens = inputs.argmax(-1)
    assert torch.equal(tokens[0], torch.full((4096,), 6)) and torch.equal(tokens[-1],
                                                                          torch.full((4096,), 7))
    relevant = tokens >= 4
    relevant[0] = relevant[-1] = False
    assert torch.equal(relevant.sum(0), torch.full((4096,), 2))  # exactly two X/Y symbols
    positions = relevant.float().argsort(dim=0, descending=True, stable=True)[:2].sort(0).values
    assert positions[0].min() >= 10 and positions[0].max() <= 20
    assert positions[1].min() >= 50 and positions[1].max() <= 60
    first = tokens.gather(0, positions[:1])[0] - 4
    second = tokens.gather(0, positions[1:])[0] - 4
    assert torch.equal(targets, 2 * first + second)
    assert set(targets.tolist()) == {0, 1, 2, 3} and task.metric.baseline == 0.25


@pytest.mark.parametrize("name", sorted(TASKS))
def test_seeded_and_fixed_test_set(name):
    task = make_task(name, 20)
    first = task.sample(8, torch.Generator().manual_seed(3))
    again = task.sample(8, torch.Generator().manual_seed(3))
    other = task.sample(8, torch.Generator().manual_seed(4))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    test_a, test_b = task.test_set(16, seed=0), make_task(name, 20).test_set(16, seed=0)
    assert torch.equal(test_a[0], test_b[0]) and torch.equal(test_a[1], test_b[1])
    assert not torch.equal(test_a[0], task.test_set(16, seed=1)[0])
    inputs, targets = task.subset(*test_a, 5)
    assert inputs.shape[1] == 5 and targets.shape[int(task.every_step)] == 5


def test_bad_names_and_lengths_get_one_line_messages():
    with pytest.raises(UserError, match="unknown task 'sorting'; valid: adding, recall, copy"):
        make_task("sorting", 10)
    for length in (1, 0, -5):
        with pytest.raises(UserError, match="--T must be an integer of at least 2"):
            make_task("adding", length)
    with pytest.raises(UserError, match="at least 10"):
        make_task("order", 9)
    with pytest.raises(UserError, match="unknown cell 'lstmm'; valid: rnn, gru, lstm"):
        parse_cells("rnn,lstmm")
    with pytest.raises(UserError, match="at least one"):
        parse_cells(" , ")
    assert parse_cells("lstm, rnn,lstm") == ["lstm", "rnn"]
