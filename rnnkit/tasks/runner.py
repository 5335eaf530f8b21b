"""Run many (task, cell, seed) trainings, in parallel worker processes, with one progress bar.

Each run is small and spends its time stepping through time in Python, so one thread per
run and one run per core beats one run on all cores. Workers are spawned (not forked), so
no thread pool or lock of the parent is copied into them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue as queue_module
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

import torch
from tqdm import tqdm

from rnnkit import families
from rnnkit.tasks import make_task
from rnnkit.tasks.training import RunResult, TrainSettings, train

logger = logging.getLogger(__name__)
_REPORT_EVERY = 10  # steps between progress messages from a worker
_progress_queue = None


@dataclass
class Job:
    """One training run."""

    task: str
    length: int
    cell: str
    seed: int
    settings: TrainSettings

    @property
    def label(self) -> str:
        return f"{self.task} T={self.length} {self.cell} seed {self.seed}"


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside, as a worker does: these small GEMMs only lose from
    threading, and badly so when other processes want the cores too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _init_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue
    torch.set_num_threads(1)


def _run_job(index: int, job: Job, keep_model: bool):
    """Train one job; progress goes to the queue the worker was started with."""

    def on_step(step: int, score: float | None) -> None:
        if _progress_queue is not None and (step % _REPORT_EVERY == 0 or score is not None):
            _progress_queue.put((index, step, score))

    result, model = train(make_task(job.task, job.length), job.cell, job.seed, job.settings,
                          on_step)
    return index, result, (model.state_dict() if keep_model else None)


def run_jobs(
    jobs: list[Job],
    workers: int | None = None,
    progress: bool = True,
    on_result: Callable[[RunResult], None] | None = None,
    keep_models: Callable[[Job], bool] = lambda job: False,
) -> tuple[list[RunResult], dict[int, dict]]:
    """Run ``jobs``; returns their results in job order and the state dicts of the jobs
    ``keep_models`` picks (by job index). ``on_result`` is called as each run finishes."""
    workers = default_workers() if workers is None else max(1, workers)
    total = sum(job.settings.steps for job in jobs)
    bar = tqdm(total=total, unit="step", desc="training", disable=not progress, smoothing=0.05,
               dynamic_ncols=True)
    done_steps = [0] * len(jobs)
    latest: dict[int, str] = {}
    results: list[RunResult | None] = [None] * len(jobs)
    models: dict[int, dict] = {}

    def advance(index: int, step: int, score: float | None) -> None:
        if step > done_steps[index]:  # messages may arrive after the run has finished
            bar.update(step - done_steps[index])
            done_steps[index] = step
        if score is not None and results[index] is None:
            latest[index] = f"{jobs[index].task}/{jobs[index].cell} {score:.3f}"
            bar.set_postfix_str("  ".join(latest[i] for i in sorted(latest)), refresh=False)

    def finish(index: int, result: RunResult, state) -> None:
        # a run that stopped once solved gives its remaining steps back to the bar
        bar.total -= jobs[index].settings.steps - result.steps
        advance(index, result.steps, None)
        latest.pop(index, None)
        results[index] = result
        if state is not None:
            models[index] = state
        if on_result is not None:
            on_result(result)

    if workers == 1 or len(jobs) == 1:
        try:
            with one_thread():
                for index, job in enumerate(jobs):
                    result, model = train(make_task(job.task, job.length), job.cell, job.seed,
                                          job.settings, lambda s, v, i=index: advance(i, s, v))
                    finish(index, result, model.state_dict() if keep_models(job) else None)
        finally:
            bar.close()
        return results, models

    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context,
                             initializer=_init_worker, initargs=(progress_queue,)) as pool:
        # the longest runs first, so no core sits idle at the end waiting for one of them
        order = sorted(range(len(jobs)), key=lambda index: -_cost(jobs[index]))
        pending = {pool.submit(_run_job, index, jobs[index], keep_models(jobs[index]))
                   for index in order}
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, advance)
                for future in finished:
                    finish(*future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            bar.close()
    return results, models


def _cost(job: Job) -> float:
    """Rough relative cost of a run: gate blocks per step, times steps and length."""
    from rnnkit.tasks.models import CELLS

    blocks = families.get(CELLS[job.cell][0].__name__).blocks
    return blocks * job.settings.steps * job.length


def _drain(progress_queue, advance) -> None:
    while True:
        try:
            index, step, score = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        advance(index, step, score)
