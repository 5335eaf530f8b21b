"""The four long-range dependency tasks: adding, delayed recall, copy memory, temporal order.

Each is seeded (fresh sequences at every step from the caller's generator) and knows the
score of the best model that remembers nothing, so a table can say what "learnt" means.
"""

from __future__ import annotations

import math

import torch

from rnnkit.tasks.base import Metric, Task, one_hot


class Adding(Task):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

    Two channels over T steps: values drawn from U[0, 1] and a marker channel with exactly one
    1 in each half. The target, read at the last step, is the sum of the two marked values.
    Predicting the mean sum 1 scores the variance of a sum of two uniforms, 2/12 = 1/6.
    """

    name = "adding"
    summary = "Adding problem: sum the two marked values"
    input_size = 2
    output_size = 1
    regression = True

    @property
    def metric(self) -> Metric:
        return Metric("MSE", higher_is_better=False, baseline=1 / 6, solved=0.05)

    def sample(self, batch_size, generator):
        steps, half = self.length, self.length // 2
        values = torch.rand(steps, batch_size, generator=generator)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, steps, (batch_size,), generator=generator)
        markers = torch.zeros(steps, batch_size)
        columns = torch.arange(batch_size)
        markers[first, columns] = 1.0
        markers[second, columns] = 1.0
        targets = (values * markers).sum(0, keepdim=True).T  # (N, 1)
        return torch.stack([values, markers], dim=-1), targets


class DelayedRecall(Task):
    """Delayed recall ("I grew up in France ... I speak fluent French").

    A class token at the first step, then T - 1 distractor tokens drawn from their own
    alphabet; the class must be named at the last step. Guessing scores 1 / classes.
    """

    name = "recall"
    summary = "Delayed recall: name the class token seen T-1 steps ago"
    classes = 8
    distractors = 8
    input_size = classes + distractors
    output_size = classes

    @property
    def metric(self) -> Metric:
        return Metric("accuracy", higher_is_better=True, baseline=1 / self.classes, solved=0.9)

    def sample(self, batch_size, generator):
        targets = torch.randint(self.classes, (batch_size,), generator=generator)
        noise = torch.randint(
            self.classes, self.input_size, (self.length - 1, batch_size), generator=generator
        )
        tokens = torch.cat([targets.unsqueeze(0), noise])  # (T, N)
        return one_hot(tokens, self.input_size), targets


class CopyMemory(Task):
    """The copy-memory task (Arjovsky, Shah & Bengio 2016, arXiv 1511.06464).

    Input of T + 20 steps: 10 symbols from {1..8}, T - 1 blanks (0), the delimiter 9, then 10
    blanks. The model must output blanks until the delimiter has passed and then the 10
    symbols in order. Outputting blanks and then guessing uniformly scores a cross-entropy of
    10 ln 8 / (T + 20) per step.
    """

    name = "copy"
    summary = "Copy memory: repeat 10 symbols after T blanks"
    symbols = 8
    copied = 10
    input_size = symbols + 2  # blank, the symbols, the delimiter
    output_size = symbols + 1  # blank and the symbols
    every_step = True
    min_length = 2

    @property
    def sequence_length(self) -> int:
        return self.length + 2 * self.copied

    @property
    def metric(self) -> Metric:
        baseline = self.copied * math.log(self.symbols) / self.sequence_length
        return Metric("cross-entropy", higher_is_better=False, baseline=baseline,
                      solved=baseline / 10)

    def sample(self, batch_size, generator):
        steps = self.sequence_length
        symbols = torch.randint(1, self.symbols + 1, (self.copied, batch_size), generator=generator)
        tokens = torch.zeros(steps, batch_size, dtype=torch.long)
        tokens[: self.copied] = symbols
        tokens[self.copied + self.length - 1] = self.symbols + 1  # the delimiter
        targets = torch.zeros(steps, batch_size, dtype=torch.long)
        targets[-self.copied :] = symbols
        return one_hot(tokens, self.input_size), targets


class TemporalOrder(Task):
    """The temporal-order task (Hochreiter & Schmidhuber 1997, experiment 6a).

    T symbols: B first, E last, a/b/c/d elsewhere except at two positions, one in
    [T/10, 2T/10] and one in [5T/10, 6T/10], which hold X or Y. The class at the end is the
    order of the two: XX, XY, YX or YY. Guessing scores 1/4.
    """

    name = "order"
    summary = "Temporal order: classify the order of X/Y at two far-apart positions"
    alphabet = ("a", "b", "c", "d", "X", "Y", "B", "E")
    input_size = len(alphabet)
    output_size = 4
    min_length = 10

    @property
    def metric(self) -> Metric:
        return Metric("accuracy", higher_is_better=True, baseline=0.25, solved=0.9)

    def sample(self, batch_size, generator):
        steps = self.length
        tokens = torch.randint(0, 4, (steps, batch_size), generator=generator)
        tokens[0], tokens[-1] = 6, 7
        first = torch.randint(steps // 10, 2 * steps // 10 + 1, (batch_size,), generator=generator)
        second = torch.randint(steps // 2, 6 * steps // 10 + 1, (batch_size,), generator=generator)
        first, second = first.clamp(1, steps - 3), second.clamp(2, steps - 2)
        first_symbol = torch.randint(0, 2, (batch_size,), generator=generator)
        second_symbol = torch.randint(0, 2, (batch_size,), generator=generator)
        columns = torch.arange(batch_size)
        tokens[first, columns] = 4 + first_symbol
        tokens[second, columns] = 4 + second_symbol
        targets = 2 * first_symbol + second_symbol  # XX=0, XY=1, YX=2, YY=3
        return one_hot(tokens, self.input_size), targets


TASKS = {task.name: task for task in (Adding, DelayedRecall, CopyMemory, TemporalOrder)}
