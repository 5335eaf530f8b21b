"""A long-range experiment: tasks x cells x seeds, the gradient flow at initialisation, and
everything ``results.json`` holds. ``rnnkit demo`` and ``rnnkit longdep`` both run one."""

from __future__ import annotations

import time
from dataclasses import asdict

import torch

from rnnkit import __version__
from rnnkit.diagnostics.gradflow import GradientFlow, task_gradient_flow
from rnnkit.tasks import make_task
from rnnkit.tasks.models import TaskModel
from rnnkit.tasks.runner import Job, one_thread, run_jobs
from rnnkit.tasks.training import TrainSettings


def initial_gradient_flow(cells, task_name: str, length: int, seed: int = 0, batch: int = 128,
                          hidden: int = 64, backend: str = "auto") -> dict[str, GradientFlow]:
    """Per cell, the gradient flow of a freshly initialised model on one batch of the task."""
    task = make_task(task_name, length)
    inputs, targets = task.sample(batch, torch.Generator().manual_seed(seed))
    flows = {}
    with one_thread():
        for cell in cells:
            torch.manual_seed(seed)
            model = TaskModel(task, cell, hidden, backend)
            flows[cell] = task_gradient_flow(model, task, inputs, targets,
                                             f"{cell} at initialisation")
    return flows


def run_experiment(
    tasks: list[tuple[str, int]],
    cells: list[str],
    seeds: list[int],
    settings: TrainSettings,
    flow_length: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    on_result=None,
    keep_models=lambda job: False,
) -> tuple[dict, dict]:
    """Train every (task, cell, seed); returns the ``results.json`` data and the kept models
    (``{(task, cell, seed): state_dict}``).

    ``flow_length``: also measure the gradient flow at initialisation on the first task at
    this length (None: skip).
    """
    settings.validate()
    started = time.perf_counter()
    data = {"rnnkit_version": __version__, "settings": asdict(settings), "tasks": []}
    for name, length in tasks:
        task = make_task(name, length)
        metric = task.metric
        data["tasks"].append({"name": name, "length": length, "description": task.describe(),
                              "metric": metric.name, "baseline": metric.baseline,
                              "solved": metric.solved})
    if flow_length is not None:
        flows = initial_gradient_flow(cells, tasks[0][0], flow_length, seeds[0],
                                      hidden=settings.hidden, backend=settings.backend)
        data["gradient_flow"] = {"task": tasks[0][0], "length": flow_length,
                                 "initial": {cell: flow.to_dict() for cell, flow in flows.items()}}
    jobs = [Job(name, length, cell, seed, settings)
            for name, length in tasks for seed in seeds for cell in cells]
    results, states = run_jobs(jobs, workers, progress, on_result, keep_models)
    data["runs"] = [result.to_dict() for result in results]
    data["seconds"] = round(time.perf_counter() - started, 1)
    models = {(jobs[index].task, jobs[index].cell, jobs[index].seed): state
              for index, state in states.items()}
    return data, models
