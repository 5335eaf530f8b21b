"""The training loop of a language model: truncated BPTT over contiguous streams.

The recurrent state is carried from batch to batch and detached (char-rnn, pytorch/examples
word_language_model); it restarts at zero when the streams restart at a new epoch. The
trainer evaluates every ``eval_every`` steps, keeps ``best`` and ``last`` checkpoints, stops
on a step, epoch or time budget or early, and saves everything an exact resume needs:
optimizer, schedule, RNG state, step, data position and the carried state. Hooks
(``on_step``, ``on_eval``) let callers watch without subclassing.

Under torchrun (:mod:`rnnkit.train.distributed`) ``batch_size`` is the global batch: rank
``r`` of ``N`` reads its own block of ``batch_size / N`` contiguous streams and carries their
state (fairseq's ``TruncatedBPTTDataset``); DistributedDataParallel averages the gradients,
so with dropout 0 the ranks follow the loss curve of one process with the same global batch.
Rank 0 alone writes; evaluation sums every rank's share; a checkpoint holds the carried state
of all streams, so a run continues on any number of ranks that divides the global batch.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from rnnkit.data.batching import StreamBatches, check_one_batch
from rnnkit.data.language_data import LanguageData
from rnnkit.errors import TrainingDiverged, UserError
from rnnkit.models.language_model import LanguageModel, detach_state
from rnnkit.train import distributed
from rnnkit.train.checkpoint import Checkpoint, save_checkpoint
from rnnkit.train.config import RunConfig
from rnnkit.train.evaluate import evaluate, evaluate_sums, evaluation_streams
from rnnkit.train.metrics import MetricsLog, bits_per_token, perplexity
from rnnkit.train.optim import LearningRateSchedule, build_optimizer
from rnnkit.train.runs import checkpoint_config

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    steps: int
    best_val_loss: float
    last_val_loss: float
    stopped: str  # "max_steps", "epochs", "time_budget", "early_stopping", "interrupted"
    run_dir: Path


@dataclass
class _Progress:
    """Everything that moves during training, besides the model and optimizer."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # next batch of the current epoch
    tokens: int = 0
    elapsed: float = 0.0  # seconds of training, summed over resumed sessions
    best_val_loss: float = math.inf
    last_val_loss: float = math.inf
    evals_without_improvement: int = 0
    last_eval_step: int = -1
    history: list = field(default_factory=list)


class Trainer:
    """Trains ``model`` on ``data`` as ``config`` says, writing the run folder ``run_dir``.

    ``progress`` shows a tqdm bar (loss, perplexity, tokens per second) on stderr.
    """

    def __init__(
        self,
        model: LanguageModel,
        config: RunConfig,
        data: LanguageData,
        run_dir: str | Path,
        progress: bool = False,
        tensorboard: bool = True,
    ) -> None:
        self.model = model
        self.config = config
        self.data = data
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()
        self.progress_bar = progress and self.dist.is_main
        train = config.train
        self.dist.check_global_batch(train.batch_size)
        check_one_batch(data.train, train.batch_size, train.seq_len)
        self.batches = StreamBatches(
            data.train, train.batch_size, train.seq_len,
            streams=self.dist.block(train.batch_size) if self.dist.enabled else None)
        self.net = self.dist.wrap(model)  # what the training step calls (DDP under torchrun)
        if self.dist.enabled and not self.dist.is_main:
            # each rank its own dropout masks, after the model every rank built alike
            torch.manual_seed(distributed.rank_seed(train.seed, self.dist.rank))
        self.optimizer = build_optimizer(model.parameters(), train)
        self.total_steps = train.max_steps
        if train.epochs:
            epoch_steps = math.ceil(train.epochs * len(self.batches))
            self.total_steps = min(self.total_steps or epoch_steps, epoch_steps)
        self.schedule = LearningRateSchedule(train, self.total_steps)
        self.eval_every = train.eval_every or len(self.batches)
        self.state = None  # the carried recurrent state
        self.progress = _Progress()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir, tensorboard=tensorboard) if self.dist.is_main \
            else distributed.NoMetrics()
        self.on_step: list[Callable[[Trainer, dict], None]] = []
        self.on_eval: list[Callable[[Trainer, dict], None]] = []
        self._interrupted = False
        self._agreed_stop = False  # distributed: some rank was interrupted (all agree)
        self._session_start, self._agreed_elapsed = time.perf_counter(), 0.0  # set by fit

    # ---- saving and resuming -------------------------------------------------------------

    def trainer_state(self) -> dict:
        progress = self.progress
        state = self.dist.gather_state(self.state)  # every stream's state (all ranks)
        if state is None:
            carried = []
        else:
            carried = list(state) if isinstance(state, tuple) else [state]
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "carried_state": carried,
            "step": progress.step,
            "epoch": progress.epoch,
            "batch_index": progress.batch_index,
            "tokens": progress.tokens,
            "elapsed": progress.elapsed,
            "best_val_loss": progress.best_val_loss,
            "last_val_loss": progress.last_val_loss,
            "evals_without_improvement": progress.evals_without_improvement,
            "last_eval_step": progress.last_eval_step,
            "content_hash": self.data.content_hash,
            **distributed.rng_states(self.dist),
        }

    def save(self, tags: tuple[str, ...]) -> None:
        trainer_state = self.trainer_state()  # a collective under torchrun: every rank calls
        if not self.dist.is_main:
            return
        config = checkpoint_config(self.config, self.data.tokenizer)
        save_checkpoint(self.run_dir, self.model.state_dict(), config, trainer_state,
                        step=self.progress.step, tags=tags)

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from a ``last`` checkpoint exactly where it stopped."""
        state = checkpoint.trainer_state or {}
        if "optimizer" not in state:
            raise UserError(f"{checkpoint.path} holds no trainer state to resume from")
        if state.get("content_hash") != self.data.content_hash:
            raise UserError(
                f"the corpus {self.config.data.path} changed since this run started (its "
                f"content hash differs); exact resume needs the same text"
            )
        self.model.load_state_dict(checkpoint.tensors)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        distributed.restore_rng(state, self.dist, self.config.train.seed)
        carried = state["carried_state"]
        if self.dist.enabled and carried:  # this rank's block of the saved global streams
            block = self.dist.block(self.config.train.batch_size)
            carried = [part[:, block.start:block.stop].clone() for part in carried]
        self.state = None if not carried else (tuple(carried) if len(carried) == 2 else carried[0])
        progress = self.progress
        for name in ("step", "epoch", "batch_index", "tokens", "elapsed", "best_val_loss",
                     "last_val_loss", "evals_without_improvement", "last_eval_step"):
            setattr(progress, name, state[name])
        self.metrics.truncate_after(progress.step)
        logger.info("Resumed at step %d (epoch %d, batch %d)", progress.step, progress.epoch,
                    progress.batch_index)

    # ---- the loop ------------------------------------------------------------------------

    def _on_sigint(self, signum, frame) -> None:
        if self._interrupted:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self._interrupted = True
        logger.warning("Interrupted: saving a checkpoint after this step (Ctrl-C again to quit)")

    def _budget_spent(self) -> str | None:
        train, progress = self.config.train, self.progress
        if self.total_steps and progress.step >= self.total_steps:
            return "max_steps" if self.total_steps == train.max_steps else "epochs"
        if train.time_budget and progress.elapsed >= train.time_budget:
            return "time_budget"
        if train.patience and progress.evals_without_improvement >= train.patience:
            return "early_stopping"
        return None

    def train_step(self) -> float:
        """One optimizer step on the next batch; returns its loss (nats per token)."""
        progress = self.progress
        if progress.batch_index >= len(self.batches):  # a new pass: the streams restart
            progress.epoch += 1
            progress.batch_index = 0
            self.state = None
        inputs, targets = self.batches.batch(progress.batch_index)
        rate = self.schedule.rate(progress.step, progress.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.model.train()
        logits, state = self.net(inputs, self.state)  # (L, N, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        if self.dist.enabled:
            return self._distributed_step(loss, state, targets)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at step {progress.step + 1}; stopped. The "
                f"last good checkpoint in {self.run_dir} is intact: resume from it with a "
                f"lower --lr or a tighter --clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.train.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip)
        self.optimizer.step()
        self.state = detach_state(state)
        progress.step += 1
        progress.batch_index += 1
        progress.tokens += targets.numel()
        return value

    def _distributed_step(self, loss: torch.Tensor, state, targets: torch.Tensor) -> float:
        """The step of one rank: its gradients are averaged by DDP during ``backward``; the
        ranks then agree on the mean loss (every rank scores the same number of tokens), an
        interruption and rank 0's clock in one all-reduce; a loss that is not finite on any
        rank stops every rank (the optimizer step it took is never saved)."""
        progress = self.progress
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.train.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip)
        self.optimizer.step()
        self.state = detach_state(state)
        value, interrupted, elapsed = self.dist.agree(
            loss.item() / self.dist.world_size, self._interrupted,
            time.perf_counter() - self._session_start)
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at step {progress.step + 1}; stopped. The "
                f"last good checkpoint in {self.run_dir} is intact: resume from it with a "
                f"lower --lr or a tighter --clip"
            )
        self._agreed_stop = interrupted
        self._agreed_elapsed = elapsed
        progress.step += 1
        progress.batch_index += 1
        progress.tokens += targets.numel() * self.dist.world_size
        return value

    def validate(self) -> dict:
        train, progress = self.config.train, self.progress
        eval_batch = train.eval_batch_size or train.batch_size
        if self.dist.enabled:  # each rank scores its block of the streams; the sums are shared
            streams = self.dist.block(evaluation_streams(self.data.valid, eval_batch))
            total, count = self.dist.all_reduce_sum(list(evaluate_sums(
                self.model, self.data.valid, eval_batch, train.seq_len, streams=streams)))
            loss, count = total / count, int(count)
        else:
            loss, count = evaluate(self.model, self.data.valid, eval_batch, train.seq_len)
        improved = loss < progress.best_val_loss
        progress.last_val_loss = loss
        progress.last_eval_step = progress.step
        if improved:
            progress.best_val_loss = loss
            progress.evals_without_improvement = 0
        else:
            progress.evals_without_improvement += 1
        self.schedule.on_evaluation(improved)
        record = {"kind": "eval", "step": progress.step, "epoch": progress.epoch,
                  "elapsed": round(progress.elapsed, 3), "val_loss": loss,
                  "val_perplexity": perplexity(loss), "val_bits_per_token": bits_per_token(loss),
                  "val_tokens": count, "best_val_loss": progress.best_val_loss}
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

    def fit(self) -> TrainResult:
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

    def _fit(self) -> TrainResult:
        train, progress = self.config.train, self.progress
        in_main_thread = threading.current_thread() is threading.main_thread() \
            and not self.dist.enabled
        previous_handler = signal.signal(signal.SIGINT, self._on_sigint) if in_main_thread \
            else None
        bar = tqdm(total=self.total_steps or None, initial=progress.step, unit="step",
                   disable=not self.progress_bar, dynamic_ncols=True)
        window_loss, window_tokens, window_steps = 0.0, 0, 0
        window_start = time.perf_counter()
        session_start = time.perf_counter() - progress.elapsed
        self._session_start, self._agreed_elapsed = session_start, progress.elapsed
        stopped = self._budget_spent()
        try:
            while stopped is None:
                loss = self.train_step()
                progress.elapsed = self._clock(session_start)
                window_loss += loss
                window_steps += 1
                window_tokens += train.batch_size * train.seq_len
                bar.update(1)
                if progress.step % train.log_every == 0:
                    seconds = max(time.perf_counter() - window_start, 1e-9)
                    mean = window_loss / window_steps
                    record = {"kind": "train", "step": progress.step, "epoch": progress.epoch,
                              "elapsed": round(progress.elapsed, 3), "loss": mean,
                              "perplexity": perplexity(mean),
                              "lr": self.optimizer.param_groups[0]["lr"],
                              "tokens_per_second": window_tokens / seconds}
                    self.metrics.write(record)
                    bar.set_postfix(loss=f"{mean:.3f}", ppl=f"{perplexity(mean):.1f}",
                                    tok_s=f"{window_tokens / seconds:.0f}")
                    for hook in self.on_step:
                        hook(self, record)
                    window_loss, window_tokens, window_steps = 0.0, 0, 0
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
        logger.debug("Stopped after step %d (%s); best validation loss %.4f", progress.step,
                    stopped, progress.best_val_loss)
        return TrainResult(progress.step, progress.best_val_loss, progress.last_val_loss,
                           stopped, self.run_dir)

