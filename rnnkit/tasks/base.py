"""What every long-range dependency task gives: seeded batches, a fixed test set, its metric.

A task draws fresh training sequences at every step from a seeded generator and keeps one
fixed test set, so runs of different cells with one seed see the same data. Inputs are float
tensors ``(T, N, input_size)`` (tokens one-hot), time first like the recurrent layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.errors import UserError


@dataclass(frozen=True)
class Metric:
    """How a task is scored: its name, direction, what a memoryless model scores, solved."""

    name: str  # "MSE", "accuracy", "cross-entropy"
    higher_is_better: bool
    baseline: float  # the score of the best predictor that remembers nothing
    solved: float  # the score at which the task counts as solved

    def is_solved(self, value: float) -> bool:
        return value >= self.solved if self.higher_is_better else value <= self.solved

    def better(self, value: float, than: float) -> bool:
        return value > than if self.higher_is_better else value < than


class Task:
    """A long-range dependency task. Subclasses set the class attributes and ``sample``.

    Attributes:
        name: the task's name on the command line.
        length: T, the dependency length the task is built around (see each task).
        input_size, output_size: features per step in and out of the model.
        every_step: True when the model answers at every step (copy), False when only the
            output at the last step is scored.
        regression: True for an MSE target, False for class indices and cross-entropy.
    """

    name = ""
    summary = ""
    input_size = 0
    output_size = 0
    every_step = False
    regression = False
    min_length = 2

    def __init__(self, length: int) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < self.min_length:
            raise UserError(
                f"{self.name}: --T must be an integer of at least {self.min_length}, got {length!r}"
            )
        self.length = length

    @property
    def metric(self) -> Metric:
        raise NotImplementedError

    @property
    def sequence_length(self) -> int:
        """Steps the model reads; T for most tasks, T + 20 for copy memory."""
        return self.length

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(inputs (L, N, input_size), targets)``; targets as :meth:`loss` takes them."""
        raise NotImplementedError

    def test_set(self, size: int = 1000, seed: int = 0) -> tuple[Tensor, Tensor]:
        """The fixed test set: ``size`` sequences drawn from their own seeded generator."""
        # a generator apart from training's, so the test set does not depend on the steps run
        generator = torch.Generator().manual_seed(10_007 * (seed + 1) + self.length)
        return self.sample(size, generator)

    def subset(self, inputs: Tensor, targets: Tensor, count: int) -> tuple[Tensor, Tensor]:
        """The first ``count`` sequences of a batch."""
        targets = targets[:, :count] if self.every_step else targets[:count]
        return inputs[:, :count], targets

    def loss(self, predictions: Tensor, targets: Tensor) -> Tensor:
        """The training loss: MSE, or cross-entropy averaged over the scored steps."""
        if self.regression:
            return F.mse_loss(predictions, targets)
        return F.cross_entropy(predictions.reshape(-1, self.output_size), targets.reshape(-1))

    @torch.no_grad()
    def score(self, predictions: Tensor, targets: Tensor) -> float:
        """The task's metric (see :attr:`metric`) of ``predictions`` against ``targets``."""
        if self.metric.name == "accuracy":
            return (predictions.argmax(-1) == targets).float().mean().item()
        return self.loss(predictions, targets).item()

    def describe(self) -> str:
        metric = self.metric
        return (
            f"{self.summary} (T={self.length}; {metric.name}, memoryless baseline "
            f"{metric.baseline:.4g}, solved at {'>=' if metric.higher_is_better else '<='} "
            f"{metric.solved:.4g})"
        )


def one_hot(tokens: Tensor, classes: int) -> Tensor:
    """``(L, N)`` token ids -> ``(L, N, classes)`` float one-hot inputs."""
    return F.one_hot(tokens, classes).float()
