"""Train one cell on one task with one seed: Adam, gradient clipping, a fixed test set.

The result records the learning curve on the test set, the final and best scores, the first
step at which the task counted as solved, the seconds it took, and the gradient flow at
initialisation and after training (loss at the last step, from the layer's internals).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rnnkit.diagnostics.gradflow import flush_denormals, task_gradient_flow
from rnnkit.errors import UserError
from rnnkit.tasks.base import Task
from rnnkit.tasks.models import TaskModel


@dataclass
class TrainSettings:
    """How each run trains. Defaults are the reference settings (hidden 64, batch 64, Adam
    1e-3, clip 1); ``stop_after_solved`` steps after solving a run stops (None: never)."""

    steps: int = 2000
    batch_size: int = 64
    hidden: int = 64
    learning_rate: float = 1e-3
    clip: float = 1.0
    eval_every: int = 50
    test_size: int = 1000
    stop_after_solved: int | None = None
    gradient_flow: bool = True
    backend: str = "auto"
    variants: dict = field(default_factory=dict)  # layer variants, e.g. {"layer_norm": True}

    def validate(self) -> TrainSettings:
        for name in ("steps", "batch_size", "hidden", "eval_every", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = name.replace("_", "-")
                raise UserError(f"--{flag} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise UserError(f"--lr must be positive, got {self.learning_rate}")
        if not self.clip > 0:
            raise UserError(f"--clip must be positive, got {self.clip}")
        if self.stop_after_solved is not None and self.stop_after_solved < 0:
            raise UserError(f"stop_after_solved must be >= 0, got {self.stop_after_solved}")
        return self


@dataclass
class RunResult:
    """One (task, cell, seed) run. ``curve`` is ``[[step, test score], ...]``, step 0 first."""

    task: str
    length: int
    cell: str
    seed: int
    metric: str
    final: float
    best: float
    solved_step: int | None
    steps: int
    seconds: float
    curve: list = field(default_factory=list)
    gradient_flow: dict = field(default_factory=dict)  # "initial", "trained": GradientFlow dicts

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate(model: TaskModel, task: Task, inputs, targets, chunk: int = 500) -> float:
    """The task's score on the test set, in chunks to bound memory."""
    model.eval()
    predictions = torch.cat([model(inputs[:, start : start + chunk])
                             for start in range(0, inputs.shape[1], chunk)], dim=-2)
    model.train()
    return task.score(predictions, targets)


def train(
    task: Task,
    cell: str,
    seed: int,
    settings: TrainSettings,
    on_step: Callable[[int, float | None], None] | None = None,
) -> tuple[RunResult, TaskModel]:
    """Train ``cell`` on ``task``; ``on_step(step, test score or None)`` is called every step."""
    with flush_denormals():
        return _train(task, cell, seed, settings, on_step)


def _train(task, cell, seed, settings, on_step):
    settings.validate()
    torch.manual_seed(seed)  # the weights (and chrono's time scales) depend on the seed only
    model = TaskModel(task, cell, settings.hidden, settings.backend, settings.variants)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    test_inputs, test_targets = task.test_set(settings.test_size, seed)
    metric = task.metric
    flows = {}
    if settings.gradient_flow:
        probe_inputs, probe_targets = task.subset(test_inputs, test_targets, 256)
        flows["initial"] = task_gradient_flow(
            model, task, probe_inputs, probe_targets, f"{cell} at initialisation").to_dict()
    started = time.perf_counter()
    score = evaluate(model, task, test_inputs, test_targets)
    curve, best, solved_step, step = [[0, score]], score, None, 0
    for step in range(1, settings.steps + 1):
        inputs, targets = task.sample(settings.batch_size, generator)
        loss = task.loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
        optimizer.step()
        score = None
        if step % settings.eval_every == 0 or step == settings.steps:
            score = evaluate(model, task, test_inputs, test_targets)
            curve.append([step, score])
            if metric.better(score, best):
                best = score
            if solved_step is None and metric.is_solved(score):
                solved_step = step
        if on_step is not None:
            on_step(step, score)
        if (solved_step is not None and settings.stop_after_solved is not None
                and step >= solved_step + settings.stop_after_solved and score is not None):
            break
    seconds = time.perf_counter() - started
    if curve[-1][0] != step:
        curve.append([step, evaluate(model, task, test_inputs, test_targets)])
    if settings.gradient_flow:
        flows["trained"] = task_gradient_flow(
            model, task, probe_inputs, probe_targets, f"{cell} after {step} steps").to_dict()
    result = RunResult(
        task=task.name, length=task.length, cell=cell, seed=seed, metric=metric.name,
        final=curve[-1][1], best=min(best, curve[-1][1]) if not metric.higher_is_better
        else max(best, curve[-1][1]), solved_step=solved_step, steps=step,
        seconds=round(seconds, 2), curve=curve, gradient_flow=flows,
    )
    return result, model
