"""Training a language model: truncated BPTT over contiguous streams (``Trainer``).

The recurrent state is carried from batch to batch and detached (char-rnn, pytorch/examples
word_language_model); it restarts at zero when the streams restart at a new epoch. This
module is the language model's task for the one training loop (:mod:`rnnkit.train.loop`),
which evaluates, keeps ``best`` and ``last`` checkpoints, stops on a budget or early and
saves everything an exact resume needs; the task adds the carried state to the checkpoint.

Under torchrun (:mod:`rnnkit.train.distributed`) ``batch_size`` is the global batch: rank
``r`` of ``N`` reads its own block of ``batch_size / N`` contiguous streams and carries their
state (fairseq's ``TruncatedBPTTDataset``); DistributedDataParallel averages the gradients,
so with dropout 0 the ranks follow the loss curve of one process with the same global batch.
Rank 0 alone writes; evaluation sums every rank's share; a checkpoint holds the carried state
of all streams, so a run continues on any number of ranks that divides the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.nn import functional as F

from rnnkit.data.batching import StreamBatches, check_one_batch
from rnnkit.data.language_data import LanguageData
from rnnkit.errors import TrainingDiverged
from rnnkit.models.language_model import LanguageModel, detach_state
from rnnkit.train import distributed
from rnnkit.train.config import RunConfig
from rnnkit.train.evaluate import evaluate, evaluate_sums, evaluation_streams
from rnnkit.train.loop import TrainingLoop
from rnnkit.train.metrics import bits_per_token, perplexity
from rnnkit.train.runs import checkpoint_config

__all__ = ["LanguageModelTask", "TrainResult", "Trainer", "TrainingDiverged"]


@dataclass
class TrainResult:
    steps: int
    best_val_loss: float
    last_val_loss: float
    stopped: str  # "max_steps", "epochs", "time_budget", "early_stopping", "interrupted"
    run_dir: Path


class LanguageModelTask:
    """Truncated BPTT over contiguous streams, the state carried between batches."""

    unit = "tokens"

    def __init__(self, config: RunConfig, data: LanguageData,
                 dist: distributed.Context) -> None:
        train = config.train
        self.config, self.data = config, data
        self.data_name = f"the corpus {config.data.path}"
        dist.check_global_batch(train.batch_size)
        check_one_batch(data.train, train.batch_size, train.seq_len)
        self.batches = StreamBatches(
            data.train, train.batch_size, train.seq_len,
            streams=dist.block(train.batch_size) if dist.enabled else None)
        self.state = None  # the carried recurrent state
        self._next_state = None

    def batch_count(self) -> int:
        return len(self.batches)

    def new_epoch(self) -> None:
        self.state = None  # the streams restart

    def step_loss(self, net, epoch: int, index: int, dist: distributed.Context):
        inputs, targets = self.batches.batch(index)
        logits, self._next_state = net(inputs, self.state)  # (L, N, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return loss, 1.0, targets.numel() * dist.world_size

    def stepped(self) -> None:
        self.state = detach_state(self._next_state)
        self._next_state = None

    def loss_metrics(self, loss: float) -> dict:
        return {"perplexity": perplexity(loss)}

    def validate(self, model, dist: distributed.Context) -> dict:
        train = self.config.train
        eval_batch = train.eval_batch_size or train.batch_size
        if dist.enabled:  # each rank scores its block of the streams; the sums are shared
            streams = dist.block(evaluation_streams(self.data.valid, eval_batch))
            total, count = dist.all_reduce_sum(list(evaluate_sums(
                model, self.data.valid, eval_batch, train.seq_len, streams=streams)))
            loss, count = total / count, int(count)
        else:
            loss, count = evaluate(model, self.data.valid, eval_batch, train.seq_len)
        return {"score": loss, "val_loss": loss, "val_perplexity": perplexity(loss),
                "val_bits_per_token": bits_per_token(loss), "val_tokens": count}

    def checkpoint_config(self) -> dict:
        return checkpoint_config(self.config, self.data.tokenizer)

    def data_hash(self) -> str:
        return self.data.content_hash

    def state_dict(self, dist: distributed.Context) -> dict:
        state = dist.gather_state(self.state)  # every stream's state (all ranks)
        if state is None:
            return {"carried_state": []}
        return {"carried_state": list(state) if isinstance(state, tuple) else [state]}

    def load_state_dict(self, state: dict, dist: distributed.Context) -> None:
        carried = state["carried_state"]
        if dist.enabled and carried:  # this rank's block of the saved global streams
            block = dist.block(self.config.train.batch_size)
            carried = [part[:, block.start:block.stop].clone() for part in carried]
        self.state = None if not carried else (tuple(carried) if len(carried) == 2 else carried[0])


class Trainer(TrainingLoop):
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
        self.config = config
        self.data = data
        task = LanguageModelTask(config, data, distributed.current())
        super().__init__(model, task, config.train, run_dir, progress=progress,
                         tensorboard=tensorboard, score_name="val_loss")

    @property
    def batches(self) -> StreamBatches:
        return self.task.batches

    @property
    def state(self):
        """The carried recurrent state."""
        return self.task.state

    def fit(self) -> TrainResult:
        result = super().fit()
        return TrainResult(result.steps, result.best_score, self.progress.last_score,
                           result.stopped, result.run_dir)
