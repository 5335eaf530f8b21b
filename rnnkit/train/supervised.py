"""The training loop of models that read independent examples: classifiers and forecasters.

Unlike the language-model trainer there is no state carried between batches: every batch is
a set of whole sequences (or windows). The task supplies three things — the batches of an
epoch in a seeded order, a loss for one batch, and a validation that returns a score to
minimise — and the loop does the rest as the language-model trainer does: ``best`` and
``last`` checkpoints in the run folder, ``metrics.jsonl``, a tqdm bar, step, epoch and time
budgets, early stopping, Ctrl-C that saves, and an exact resume (optimizer, schedule, RNG,
step, epoch, position).

Under torchrun (:mod:`rnnkit.train.distributed`) ``batch_size`` is the global batch: every
rank computes the same seeded batches and takes every N-th example of each (a seeded
distributed sampler); each rank's loss is weighted so that DistributedDataParallel's average
of the gradients is the gradient of the global batch's mean loss. Validation sums every
rank's share. Rank 0 alone writes.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from rnnkit.errors import TrainingDiverged, UserError
from rnnkit.train import distributed
from rnnkit.train.checkpoint import Checkpoint, save_checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.metrics import MetricsLog
from rnnkit.train.optim import LearningRateSchedule, build_optimizer

logger = logging.getLogger(__name__)

PROGRESS_FIELDS = ("step", "epoch", "batch_index", "examples", "elapsed", "best_score",
                   "last_score", "evals_without_improvement", "last_eval_step")


class Task(Protocol):
    """What a model type gives the loop."""

    def batch_count(self) -> int:
        """Batches in one epoch."""

    def batch(self, epoch: int, index: int):
        """Batch ``index`` of ``epoch``; the order must depend only on the seed and epoch."""

    def batch_members(self, epoch: int, index: int) -> list[int]:
        """The examples of batch ``index`` of ``epoch`` (what ``batch`` holds), in order."""

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


@dataclass
class SupervisedResult:
    steps: int
    best_score: float
    last_metrics: dict
    stopped: str  # "max_steps", "epochs", "time_budget", "early_stopping", "interrupted"
    run_dir: Path


@dataclass
class _Progress:
    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # next batch of the current epoch
    examples: int = 0
    elapsed: float = 0.0  # seconds of training, summed over resumed sessions
    best_score: float = math.inf
    last_score: float = math.inf
    evals_without_improvement: int = 0
    last_eval_step: int = -1


class SupervisedTrainer:
    """Trains ``model`` on ``task`` as ``train`` says, writing the run folder ``run_dir``."""

    def __init__(self, model: torch.nn.Module, task: Task, train: TrainConfig,
                 run_dir: str | Path, progress: bool = False, tensorboard: bool = False,
                 score_name: str = "score") -> None:
        self.model = model
        self.task = task
        self.train = train
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()
        self.progress_bar = progress and self.dist.is_main
        self.score_name = score_name
        self.dist.check_global_batch(train.batch_size, "examples")
        self.net = self.dist.wrap(model)  # what the training step calls (DDP under torchrun)
        if self.dist.enabled and not self.dist.is_main:
            torch.manual_seed(distributed.rank_seed(train.seed, self.dist.rank))
        parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(parameters, train)
        self.batches_per_epoch = task.batch_count()
        if self.batches_per_epoch < 1:
            raise UserError("the training data gives no batch: add data or lower --batch-size")
        self.total_steps = train.max_steps
        if train.epochs:
            epoch_steps = math.ceil(train.epochs * self.batches_per_epoch)
            self.total_steps = min(self.total_steps or epoch_steps, epoch_steps)
        self.schedule = LearningRateSchedule(train, self.total_steps)
        self.eval_every = train.eval_every or self.batches_per_epoch
        self.progress = _Progress()
        self.last_metrics: dict = {}
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir, tensorboard=tensorboard) if self.dist.is_main \
            else distributed.NoMetrics()
        self.on_step: list[Callable[[SupervisedTrainer, dict], None]] = []
        self.on_eval: list[Callable[[SupervisedTrainer, dict], None]] = []
        self._interrupted = False
        self._agreed_stop = False  # distributed: some rank was interrupted (all agree)
        self._session_start, self._agreed_elapsed = time.perf_counter(), 0.0  # set by fit

    # ---- saving and resuming -------------------------------------------------------------

    def trainer_state(self) -> dict:
        state = {name: getattr(self.progress, name) for name in PROGRESS_FIELDS}
        state.update(optimizer=self.optimizer.state_dict(), schedule=self.schedule.state_dict(),
                     torch_rng=torch.get_rng_state(), data_hash=self.task.data_hash())
        if self.dist.enabled:
            state.update(distributed.rng_states(self.dist))
        return state

    def save(self, tags: tuple[str, ...]) -> None:
        trainer_state = self.trainer_state()  # a collective under torchrun: every rank calls
        if not self.dist.is_main:
            return
        save_checkpoint(self.run_dir, self.model.state_dict(), self.task.checkpoint_config(),
                        trainer_state, step=self.progress.step, tags=tags)

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from a ``last`` checkpoint exactly where it stopped."""
        state = checkpoint.trainer_state or {}
        if "optimizer" not in state:
            raise UserError(f"{checkpoint.path} holds no trainer state to resume from")
        if state.get("data_hash") != self.task.data_hash():
            raise UserError("the training data changed since this run started (its content "
                            "hash differs); resume needs the same data")
        self.model.load_state_dict(checkpoint.tensors)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        distributed.restore_rng(state, self.dist, self.train.seed)
        for name in PROGRESS_FIELDS:
            setattr(self.progress, name, state[name])
        self.metrics.truncate_after(self.progress.step)
        logger.info("Resumed at step %d (epoch %d, batch %d)", self.progress.step,
                    self.progress.epoch, self.progress.batch_index)

    # ---- the loop ------------------------------------------------------------------------

    def _on_sigint(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self._interrupted = True
        logger.warning("Interrupted: saving a checkpoint after this step (Ctrl-C again to quit)")

    def _budget_spent(self) -> str | None:
        train, progress = self.train, self.progress
        if self.total_steps and progress.step >= self.total_steps:
            return "max_steps" if self.total_steps == train.max_steps else "epochs"
        if train.time_budget and progress.elapsed >= train.time_budget:
            return "time_budget"
        if train.patience and progress.evals_without_improvement >= train.patience:
            return "early_stopping"
        return None

    def train_step(self) -> tuple[float, int]:
        """One optimizer step on the next batch: its mean loss and its number of examples."""
        progress = self.progress
        if progress.batch_index >= self.batches_per_epoch:
            progress.epoch += 1
            progress.batch_index = 0
        batch = None if self.dist.enabled else self.task.batch(progress.epoch,
                                                                progress.batch_index)
        rate = self.schedule.rate(progress.step, progress.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.model.train()
        if self.dist.enabled:
            return self._distributed_step(progress.epoch, progress.batch_index)
        loss, count = self.task.loss(self.model, batch)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at step {progress.step + 1}; stopped. The "
                f"last good checkpoint in {self.run_dir} is intact: resume from it with a "
                f"lower --lr or a tighter --clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.train.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.clip)
        self.optimizer.step()
        progress.step += 1
        progress.batch_index += 1
        progress.examples += count
        return value, count

    def _distributed_step(self, epoch: int, index: int) -> tuple[float, int]:
        """This rank's every N-th example of the global batch; its mean loss weighted by its
        share times N, so DDP's mean of the ranks' gradients is the global batch's gradient.
        A rank left without an example (a short last batch) runs one with weight 0."""
        progress, world = self.progress, self.dist.world_size
        members = self.task.batch_members(epoch, index)
        mine = members[self.dist.rank::world]
        weight = len(mine) * world / len(members)
        batch = self.task.make_batch(mine or members[:1])
        loss, _ = self.task.loss(self.net, batch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        if self.train.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.clip)
        self.optimizer.step()
        value, interrupted, elapsed = self.dist.agree(
            loss.item() * weight / world, self._interrupted,
            time.perf_counter() - self._session_start)
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at step {progress.step + 1}; stopped. The "
                f"last good checkpoint in {self.run_dir} is intact: resume from it with a "
                f"lower --lr or a tighter --clip"
            )
        self._agreed_stop, self._agreed_elapsed = interrupted, elapsed
        progress.step += 1
        progress.batch_index += 1
        progress.examples += len(members)
        return value, len(members)

    def validate(self) -> dict:
        progress = self.progress
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = dict(self.task.validate(self.model, self.dist) if self.dist.enabled
                               else self.task.validate(self.model))
        finally:
            self.model.train(was_training)
        score = float(metrics.pop("score"))
        improved = score < progress.best_score
        progress.last_score = score
        progress.last_eval_step = progress.step
        if improved:
            progress.best_score = score
            progress.evals_without_improvement = 0
        else:
            progress.evals_without_improvement += 1
        self.schedule.on_evaluation(improved)
        record = {"kind": "eval", "step": progress.step, "epoch": progress.epoch,
                  "elapsed": round(progress.elapsed, 3), **metrics,
                  f"best_{self.score_name}": progress.best_score}
        self.last_metrics = record
        self.metrics.write(record)
        self.save(("last", "best") if improved else ("last",))
        for hook in self.on_eval:
            hook(self, record)
        return record

    def _on_signal(self, signum, frame) -> None:
        if not self._interrupted and self.dist.is_main:
            logger.warning("Interrupted: every rank stops after this step; rank 0 saves a "
                           "checkpoint")
        self._interrupted = True

    def _clock(self, session_start: float) -> float:
        if self.dist.enabled:  # rank 0's clock, agreed on at the last step
            return self._agreed_elapsed
        return time.perf_counter() - session_start

    def fit(self) -> SupervisedResult:
        if not self.dist.enabled:
            return self._fit()
        previous = self.dist.install_signal_handlers(self._on_signal)
        try:
            return self._fit()
        except RuntimeError as error:  # a collective failed: name the rank, never hang
            failure = self.dist.failure(error, self.progress.step, self.run_dir)
            if failure is error:
                raise
            raise failure from None
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _fit(self) -> SupervisedResult:
        train, progress = self.train, self.progress
        in_main_thread = threading.current_thread() is threading.main_thread() \
            and not self.dist.enabled
        previous_handler = signal.signal(signal.SIGINT, self._on_sigint) if in_main_thread \
            else None
        bar = tqdm(total=self.total_steps or None, initial=progress.step, unit="step",
                   disable=not self.progress_bar, dynamic_ncols=True)
        window_loss, window_examples, window_steps = 0.0, 0, 0
        window_start = time.perf_counter()
        session_start = time.perf_counter() - progress.elapsed
        self._session_start, self._agreed_elapsed = session_start, progress.elapsed
        stopped = self._budget_spent()
        try:
            while stopped is None:
                loss, count = self.train_step()
                progress.elapsed = self._clock(session_start)
                window_loss += loss
                window_steps += 1
                window_examples += count
                bar.update(1)
                if progress.step % train.log_every == 0:
                    seconds = max(time.perf_counter() - window_start, 1e-9)
                    mean = window_loss / window_steps
                    record = {"kind": "train", "step": progress.step, "epoch": progress.epoch,
                              "elapsed": round(progress.elapsed, 3), "loss": mean,
                              "lr": self.optimizer.param_groups[0]["lr"],
                              "examples_per_second": window_examples / seconds}
                    self.metrics.write(record)
                    bar.set_postfix(loss=f"{mean:.4f}", ex_s=f"{window_examples / seconds:.0f}")
                    for hook in self.on_step:
                        hook(self, record)
                    window_loss, window_examples, window_steps = 0.0, 0, 0
                    window_start = time.perf_counter()
                if progress.step % self.eval_every == 0 or self._budget_spent() is not None:
                    self.validate()
                    progress.elapsed = self._clock(session_start)
                stopped = self._budget_spent()
                if stopped is None and (self._agreed_stop if self.dist.enabled
                                        else self._interrupted):
                    stopped = "interrupted"
            if progress.last_eval_step != progress.step:
                self.save(("last",))
        finally:
            bar.close()
            self.metrics.close()
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_handler)
        return SupervisedResult(progress.step, progress.best_score, self.last_metrics, stopped,
                                self.run_dir)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator for the order of ``epoch``: the same seed and epoch, the same order."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)
