"""Optimizers and the learning-rate schedule: warmup, then constant, cosine or plateau decay.

The schedule is a pure function of the step (and, for a time budget, of the elapsed time)
plus one saved number (the plateau scale), so resuming restores it exactly.
"""

from __future__ import annotations

import math

import torch

from rnnkit.train.config import TrainConfig


def build_optimizer(parameters, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.RMSprop(
        parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


class LearningRateSchedule:
    """``rate(step, elapsed)``: linear warmup, then the configured decay.

    Cosine decays from ``lr`` to ``min_lr`` over the budget: the larger of the fractions of
    ``total_steps`` and of ``time_budget`` spent. Plateau multiplies by ``plateau_factor``
    after ``plateau_patience + 1`` evaluations in a row without a new best validation loss.
    """

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = total_steps
        self.scale = 1.0  # plateau decay so far
        self.stalled = 0  # evaluations since the last improvement

    def rate(self, step: int, elapsed: float = 0.0) -> float:
        config = self.config
        rate = config.lr * self.scale
        if config.schedule == "cosine":
            progress = 0.0
            if self.total_steps:
                progress = max(progress, step / self.total_steps)
            if config.time_budget:
                progress = max(progress, elapsed / config.time_budget)
            progress = min(progress, 1.0)
            rate = config.min_lr + (config.lr - config.min_lr) * 0.5 * (
                1.0 + math.cos(math.pi * progress)
            )
        if config.warmup and step < config.warmup:
            rate *= (step + 1) / config.warmup
        return rate

    def on_evaluation(self, improved: bool) -> None:
        if self.config.schedule != "plateau":
            return
        self.stalled = 0 if improved else self.stalled + 1
        if self.stalled > self.config.plateau_patience:
            self.scale *= self.config.plateau_factor
            self.stalled = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "stalled": self.stalled}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.stalled = int(state["stalled"])
