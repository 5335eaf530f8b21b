"""Training models that read independent examples: classifiers and forecasters.

Unlike the language-model trainer there is no state carried between batches: every batch is
a set of whole sequences (or windows). The app's task supplies three things — the batches
of an epoch in a seeded order, a loss for one batch, and a validation that returns a score
to minimise — and the one training loop (:mod:`rnnkit.train.loop`) does the rest, as for
the language model: ``best`` and ``last`` checkpoints in the run folder, ``metrics.jsonl``,
a tqdm bar, step, epoch and time budgets, early stopping, Ctrl-C that saves, and an exact
resume (optimizer, schedule, RNG, step, epoch, position).

Under torchrun (:mod:`rnnkit.train.distributed`) ``batch_size`` is the global batch: every
rank computes the same seeded batches and takes every N-th example of each (a seeded
distributed sampler); each rank's loss is weighted so that DistributedDataParallel's average
of the gradients is the gradient of the global batch's mean loss. Validation sums every
rank's share. Rank 0 alone writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from rnnkit.errors import TrainingDiverged
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import FitResult, TrainingLoop

__all__ = ["SupervisedResult", "SupervisedTrainer", "Task", "TrainingDiverged",
           "epoch_generator"]

SupervisedResult = FitResult  # steps, best_score, last_metrics, stopped, run_dir


class Task(Protocol):
    """What a model type gives the loop."""

    def batch_count(self) -> int:
        """Batches in one epoch."""

    def batch_members(self, epoch: int, index: int) -> list[int]:
        """The examples of batch ``index`` of ``epoch``, in order; the order must depend only
        on the seed and the epoch."""

    def make_batch(self, members: list[int]):
        """A batch of these training examples."""

    def loss(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, int]:
        """The mean loss of ``batch`` (a scalar tensor) and the number of examples in it."""

    def validate(self, model: torch.nn.Module, ranks=None) -> dict:
        """Validation metrics; ``score`` (lower is better) decides the best checkpoint.

        With ``ranks`` (a distributed context of several ranks) score this rank's share of
        the validation data and sum the counts with ``ranks.all_reduce_sum``."""

    def checkpoint_config(self) -> dict:
        """The JSON ``config.json`` of a checkpoint: enough to rebuild model and data."""

    def data_hash(self) -> str:
        """A digest of the training data, so a resume refuses data that changed."""


class ExamplesTask:
    """The loop's task (:class:`rnnkit.train.loop.Task`) for an app's :class:`Task`."""

    unit = "examples"
    data_name = "the training data"

    def __init__(self, task: Task) -> None:
        self.task = task

    def __getattr__(self, name: str):  # the rest reads as the app's task (``.data``)
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def batch_count(self) -> int:
        return self.task.batch_count()

    def new_epoch(self) -> None:
        pass

    def step_loss(self, net, epoch: int, index: int, dist: distributed.Context):
        """One process: the whole batch. Under torchrun this rank's every N-th example of
        the global batch, its mean loss weighted by its share times N, so DDP's mean of the
        ranks' gradients is the global batch's gradient. A rank left without an example (a
        short last batch) runs one with weight 0."""
        if not dist.enabled:
            batch = self.task.make_batch(self.task.batch_members(epoch, index))
            loss, count = self.task.loss(net, batch)
            return loss, 1.0, count
        members = self.task.batch_members(epoch, index)
        mine = members[dist.rank::dist.world_size]
        loss, _ = self.task.loss(net, self.task.make_batch(mine or members[:1]))
        return loss, len(mine) * dist.world_size / len(members), len(members)

    def stepped(self) -> None:
        pass

    def loss_metrics(self, loss: float) -> dict:
        return {}

    def validate(self, model, dist: distributed.Context | None = None) -> dict:
        if dist is not None and dist.enabled:
            return self.task.validate(model, dist)
        return self.task.validate(model)

    def checkpoint_config(self) -> dict:
        return self.task.checkpoint_config()

    def data_hash(self) -> str:
        return self.task.data_hash()

    def state_dict(self, dist: distributed.Context) -> dict:
        return {}

    def load_state_dict(self, state: dict, dist: distributed.Context) -> None:
        pass


class SupervisedTrainer(TrainingLoop):
    """Trains ``model`` on ``task`` as ``train`` says, writing the run folder ``run_dir``."""

    def __init__(self, model: torch.nn.Module, task: Task, train: TrainConfig,
                 run_dir: str | Path, progress: bool = False, tensorboard: bool = False,
                 score_name: str = "score") -> None:
        distributed.current().check_global_batch(train.batch_size, "examples")
        super().__init__(model, ExamplesTask(task), train, run_dir, progress=progress,
                         tensorboard=tensorboard, score_name=score_name)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator for the order of ``epoch``: the same seed and epoch, the same order."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)
