"""One training loop under every app: language models, classifiers and forecasters.

The loop owns what every run does alike: the optimizer and learning-rate schedule, step,
epoch and time budgets, early stopping, evaluation every ``eval_every`` steps with ``best``
and ``last`` checkpoints, ``metrics.jsonl`` (and TensorBoard), a tqdm bar, Ctrl-C and SIGTERM
that save, the stop on a loss that is not finite, the clock summed over resumed sessions, an
exact resume (optimizer, schedule, RNG states, step, epoch, data position), and under
torchrun the DistributedDataParallel step (:mod:`rnnkit.train.distributed`).

An app hands it a :class:`Task`: what one training step's loss is, what a validation
measures, and what goes into a checkpoint besides the loop's own state. The language model's
task (:mod:`rnnkit.train.trainer`) carries the recurrent state from batch to batch; the
supervised one (:mod:`rnnkit.train.supervised`) reads independent examples.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from rnnkit.errors import TrainingDiverged, UserError
from rnnkit.train import distributed
from rnnkit.train.average import WeightAverage
from rnnkit.train.checkpoint import Checkpoint, save_checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.metrics import MetricsLog
from rnnkit.train.optim import LearningRateSchedule, build_optimizer

logger = logging.getLogger(__name__)

# trainer-state names that runs saved before the loop was shared, and what they are now
LEGACY_NAMES = {"tokens": "seen", "examples": "seen", "best_val_loss": "best_score",
                "last_val_loss": "last_score", "content_hash": "data_hash"}
BAR_NAMES = {"perplexity": "ppl", "tokens": "tok", "examples": "ex"}  # tqdm's postfix


class Task(Protocol):
    """What an app hands the loop."""

    unit: str  # what a step counts, for the rate: "tokens", "examples"
    data_name: str  # what changed when a resume finds other data: "the corpus x.txt"

    def batch_count(self) -> int:
        """Batches in one epoch (at least one)."""

    def new_epoch(self) -> None:
        """A new pass over the data starts (the language model drops its carried state)."""

    def step_loss(self, net: torch.nn.Module, epoch: int, index: int,
                  dist: distributed.Context) -> tuple[torch.Tensor, float, int]:
        """This rank's loss on batch ``index`` of ``epoch`` (a scalar tensor), its weight in
        the ranks' mean of gradients (1 on one process), and the units of the whole batch."""

    def stepped(self) -> None:
        """The optimizer step of the last ``step_loss`` was taken."""

    def loss_metrics(self, loss: float) -> dict:
        """Numbers logged beside a mean training loss (the language model: perplexity)."""

    def validate(self, model: torch.nn.Module, dist: distributed.Context) -> dict:
        """Validation metrics, called in eval mode without gradients; ``score`` (lower is
        better) decides the best checkpoint. Under torchrun each rank scores its share and
        the counts are summed with ``dist.all_reduce_sum``."""

    def checkpoint_config(self) -> dict:
        """The JSON ``config.json`` of a checkpoint: enough to rebuild model and data."""

    def data_hash(self) -> str:
        """A digest of the training data, so a resume refuses data that changed."""

    def state_dict(self, dist: distributed.Context) -> dict:
        """What the task adds to the trainer state (a collective under torchrun)."""

    def load_state_dict(self, state: dict, dist: distributed.Context) -> None:
        """Take back what :meth:`state_dict` saved."""


@dataclass
class Progress:
    """Everything that moves during training, besides the model and optimizer."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # next batch of the current epoch
    seen: int = 0  # units trained on (tokens, examples)
    elapsed: float = 0.0  # seconds of training, summed over resumed sessions
    best_score: float = math.inf
    last_score: float = math.inf
    evals_without_improvement: int = 0
    last_eval_step: int = -1
    # the training losses since the last logged step (their mean is the next one logged):
    # saved, so the first loss logged after a resume is the uninterrupted run's
    window_loss: float = 0.0
    window_steps: int = 0

    # the names each app's callers know
    tokens = property(lambda self: self.seen)
    examples = property(lambda self: self.seen)
    best_val_loss = property(lambda self: self.best_score)
    last_val_loss = property(lambda self: self.last_score)


PROGRESS_FIELDS = tuple(item.name for item in fields(Progress))


@dataclass
class FitResult:
    steps: int
    best_score: float
    last_metrics: dict
    stopped: str  # "max_steps", "epochs", "time_budget", "early_stopping", "interrupted"
    run_dir: Path


class TrainingLoop:
    """Trains ``model`` on ``task`` as ``train`` says, writing the run folder ``run_dir``.

    ``progress`` shows a tqdm bar on stderr; ``score_name`` names the validation score in the
    ``best_<score_name>`` of each evaluation record. Hooks ``on_step`` and ``on_eval`` (called
    with the loop and the record just logged) let callers watch without subclassing.
    """

    def __init__(self, model: torch.nn.Module, task: Task, train: TrainConfig,
                 run_dir: str | Path, progress: bool = False, tensorboard: bool = True,
                 score_name: str = "score") -> None:
        self.model = model
        self.task = task
        self.train = train
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()
        self.progress_bar = progress and self.dist.is_main
        self.score_name = score_name
        self.net = self.dist.wrap(model)  # what the training step calls (DDP under torchrun)
        if self.dist.enabled and not self.dist.is_main:
            # each rank its own dropout masks, after the model every rank built alike
            torch.manual_seed(distributed.rank_seed(train.seed, self.dist.rank))
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad],
                                         train)
        # --ema: evaluation and checkpoints see the average, the optimizer the live weights
        self.average = WeightAverage(model, train.ema) if train.ema else None
        self.batches_per_epoch = task.batch_count()
        if self.batches_per_epoch < 1:
            raise UserError("the training data gives no batch: add data or lower --batch-size")
        self.total_steps = train.max_steps
        if train.epochs:
            epoch_steps = math.ceil(train.epochs * self.batches_per_epoch)
            self.total_steps = min(self.total_steps or epoch_steps, epoch_steps)
        self.schedule = LearningRateSchedule(train, self.total_steps)
        self.eval_every = train.eval_every or self.batches_per_epoch
        self.progress = Progress()
        self.last_metrics: dict = {}
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir, tensorboard=tensorboard) if self.dist.is_main \
            else distributed.NoMetrics()
        self.on_step: list[Callable[[TrainingLoop, dict], None]] = []
        self.on_eval: list[Callable[[TrainingLoop, dict], None]] = []
        self._interrupted = False
        self._agreed_stop = False  # distributed: some rank was interrupted (all agree)
        self._session_start, self._agreed_elapsed = time.perf_counter(), 0.0  # set by fit

    # ---- saving and resuming -------------------------------------------------------------

    def trainer_state(self) -> dict:
        """What an exact resume needs (a collective under torchrun: every rank calls)."""
        state = {name: getattr(self.progress, name) for name in PROGRESS_FIELDS}
        state.update(optimizer=self.optimizer.state_dict(), schedule=self.schedule.state_dict(),
                     data_hash=self.task.data_hash(), **self.task.state_dict(self.dist),
                     **distributed.rng_states(self.dist))
        if self.average is not None:
            state["ema"] = self.average.state_dict()
        return state

    def _evaluated_weights(self):
        """The block in which the model holds what is evaluated and saved: with --ema the
        average, else the weights as trained."""
        return self.average.swapped() if self.average is not None else nullcontext()

    def save(self, tags: tuple[str, ...]) -> None:
        trainer_state = self.trainer_state()
        if not self.dist.is_main:
            return
        with self._evaluated_weights():
            tensors = {name: tensor.clone() if self.average is not None else tensor
                       for name, tensor in self.model.state_dict().items()}
        save_checkpoint(self.run_dir, tensors, self.task.checkpoint_config(),
                        trainer_state, step=self.progress.step, tags=tags)

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from a ``last`` checkpoint exactly where it stopped."""
        state = dict(checkpoint.trainer_state or {})
        if "optimizer" not in state:
            raise UserError(f"{checkpoint.path} holds no trainer state to resume from")
        for old, new in LEGACY_NAMES.items():
            if old in state:
                state.setdefault(new, state[old])
        if state.get("data_hash") != self.task.data_hash():
            raise UserError(f"{self.task.data_name} changed since this run started (its "
                            f"content hash differs); exact resume needs the same data")
        self.model.load_state_dict(checkpoint.tensors)
        if self.average is not None:  # the checkpoint's weights are the average
            self.average.load_state_dict(state.get("ema"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        distributed.restore_rng(state, self.dist, self.train.seed)
        self.task.load_state_dict(state, self.dist)
        fresh = Progress()  # (runs saved before the loss window was kept start it empty)
        for name in PROGRESS_FIELDS:
            setattr(self.progress, name, state.get(name, getattr(fresh, name)))
        self.metrics.truncate_after(self.progress.step)
        logger.debug("Resumed at step %d (epoch %d, batch %d)", self.progress.step,
                     self.progress.epoch, self.progress.batch_index)

    # ---- one step, one evaluation --------------------------------------------------------

    def _diverged(self, value: float) -> TrainingDiverged:
        return TrainingDiverged(
            f"the training loss became {value} at step {self.progress.step + 1}; stopped. The "
            f"last good checkpoint in {self.run_dir} is intact: resume from it with a lower "
            f"--lr or a tighter --clip"
        )

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.train.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.clip)
        self.optimizer.step()

    def train_step(self) -> tuple[float, int]:
        """One optimizer step on the next batch: its mean loss and the units it held.

        On one process a loss that is not finite stops before the step is taken. Under
        torchrun DDP averages the ranks' gradients (each weighted by its share of the global
        batch) during ``backward``; the ranks then agree on the mean loss, an interruption
        and rank 0's clock in one all-reduce, and a loss that is not finite on any rank stops
        every rank (the step it took is never saved)."""
        progress = self.progress
        if progress.batch_index >= self.batches_per_epoch:  # a new pass over the data
            progress.epoch += 1
            progress.batch_index = 0
            self.task.new_epoch()
        rate = self.schedule.rate(progress.step, progress.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.model.train()
        loss, weight, count = self.task.step_loss(self.net, progress.epoch,
                                                  progress.batch_index, self.dist)
        if self.dist.enabled:
            self._update(loss if weight == 1 else loss * weight)
            value, interrupted, elapsed = self.dist.agree(
                loss.item() * weight / self.dist.world_size, self._interrupted,
                time.perf_counter() - self._session_start)
            if not math.isfinite(value):
                raise self._diverged(value)
            self._agreed_stop, self._agreed_elapsed = interrupted, elapsed
        else:
            value = loss.item()
            if not math.isfinite(value):
                raise self._diverged(value)
            self._update(loss)
        if self.average is not None:
            self.average.update()
        self.task.stepped()
        progress.step += 1
        progress.batch_index += 1
        progress.seen += count
        return value, count

    def validate(self) -> dict:
        """Score the validation data, log it, save ``last`` (and ``best`` if it improved)."""
        progress = self.progress
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._evaluated_weights():
                metrics = dict(self.task.validate(self.model, self.dist))
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

    # ---- the loop ------------------------------------------------------------------------

    def _on_sigint(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self._interrupted = True
        logger.warning("Interrupted: saving a checkpoint after this step (Ctrl-C again to quit)")

    def _on_signal(self, signum, frame) -> None:
        if not self._interrupted and self.dist.is_main:
            logger.warning("Interrupted: every rank stops after this step; rank 0 saves a "
                           "checkpoint")
        self._interrupted = True

    def _budget_spent(self) -> str | None:
        train, progress = self.train, self.progress
        if self.total_steps and progress.step >= self.total_steps:
            return "max_steps" if self.total_steps == train.max_steps else "epochs"
        if train.time_budget and progress.elapsed >= train.time_budget:
            return "time_budget"
        if train.patience and progress.evals_without_improvement >= train.patience:
            return "early_stopping"
        return None

    def _clock(self, session_start: float) -> float:
        if self.dist.enabled:  # rank 0's clock, agreed on at the last step
            return self._agreed_elapsed
        return time.perf_counter() - session_start

    def fit(self) -> FitResult:
        """Train until a budget is spent, early stopping, or an interruption."""
        if not self.dist.enabled:
            return self._result(self._fit())
        previous = self.dist.install_signal_handlers(self._on_signal)
        try:
            return self._result(self._fit())
        except RuntimeError as error:  # a collective failed: name the rank, never hang
            failure = self.dist.failure(error, self.progress.step, self.run_dir)
            if failure is error:
                raise
            raise failure from None
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _result(self, stopped: str) -> FitResult:
        return FitResult(self.progress.step, self.progress.best_score, self.last_metrics,
                         stopped, self.run_dir)

    def _train_record(self, loss: float, units_per_second: float) -> dict:
        progress = self.progress
        return {"kind": "train", "step": progress.step, "epoch": progress.epoch,
                "elapsed": round(progress.elapsed, 3), "loss": loss,
                **self.task.loss_metrics(loss), "lr": self.optimizer.param_groups[0]["lr"],
                f"{self.task.unit}_per_second": units_per_second}

    def _fit(self) -> str:
        train, progress = self.train, self.progress
        in_main_thread = threading.current_thread() is threading.main_thread() \
            and not self.dist.enabled
        previous_handler = signal.signal(signal.SIGINT, self._on_sigint) if in_main_thread \
            else None
        bar = tqdm(total=self.total_steps or None, initial=progress.step, unit="step",
                   disable=not self.progress_bar, dynamic_ncols=True)
        window_units, window_start = 0, time.perf_counter()  # this session's, for the rate
        session_start = time.perf_counter() - progress.elapsed
        self._session_start, self._agreed_elapsed = session_start, progress.elapsed
        stopped = self._budget_spent()
        try:
            while stopped is None:
                loss, count = self.train_step()
                progress.elapsed = self._clock(session_start)
                progress.window_loss += loss
                progress.window_steps += 1
                window_units += count
                bar.update(1)
                if progress.step % train.log_every == 0:
                    rate = window_units / max(time.perf_counter() - window_start, 1e-9)
                    record = self._train_record(progress.window_loss / progress.window_steps,
                                                rate)
                    self.metrics.write(record)
                    extras = self.task.loss_metrics(record["loss"])
                    bar.set_postfix(loss=f"{record['loss']:.4f}", **{
                        BAR_NAMES.get(name, name): f"{value:.1f}" for name, value in
                        extras.items()}, **{f"{BAR_NAMES.get(self.task.unit, 'units')}_s":
                                            f"{rate:.0f}"})
                    for hook in self.on_step:
                        hook(self, record)
                    progress.window_loss, progress.window_steps = 0.0, 0
                    window_units, window_start = 0, time.perf_counter()
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
        logger.debug("Stopped after step %d (%s); best validation %s %.4f", progress.step,
                     stopped, self.score_name, progress.best_score)
        return stopped
