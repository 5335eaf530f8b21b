"""Start or resume a language-model run: config -> data -> model -> trainer -> run folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from rnnkit.data.language_data import prepare_language_data
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel
from rnnkit.train import distributed
from rnnkit.train.checkpoint import is_checkpoint, load_checkpoint, write_json_atomic
from rnnkit.train.config import RunConfig, apply_default_budget
from rnnkit.train.runs import run_from_checkpoint
from rnnkit.train.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)

# what a resumed run may change: budgets and bookkeeping, never what decides the numbers
RESUMABLE_OVERRIDES = {"train.max_steps", "train.epochs", "train.time_budget", "train.patience",
                       "train.log_every", "train.threads", "train.dist_timeout"}


def default_run_dir(config: RunConfig) -> Path:
    return Path("runs") / f"{Path(config.data.path).stem or 'corpus'}-{config.data.level}"


def start_run(config: RunConfig, progress: bool = False) -> Trainer:
    """A trainer for a fresh run of ``config`` (validated), its run folder created; a config
    without a budget gets the default (``config.DEFAULT_EPOCHS``)."""
    if apply_default_budget(config.train):
        logger.info("No budget given (max_steps, epochs or time_budget): training for the "
                    "default %g epochs", config.train.epochs)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; expected a run folder (it is created if "
                        f"missing)")
    ranks = distributed.init(config.train.threads, config.train.dist_timeout)
    if (run_dir / "last").exists() or (run_dir / "best").exists():
        if distributed.restart_count() and (run_dir / "last").exists():
            # the launcher restarted the group after a rank failed: continue from the last
            # checkpoint (the command line is the one that started the run)
            logger.info("Restart %d: resuming %s", distributed.restart_count(), run_dir)
            return resume_run(run_dir, {}, progress)
        raise UserError(
            f"--out {run_dir} already holds a run; continue it with --resume {run_dir} or "
            f"choose another --out"
        )
    ranks.check_global_batch(config.train.batch_size)
    config.out = str(run_dir)
    progress = progress and ranks.is_main
    data = prepare_language_data(config.data, progress=progress)
    config.model.vocab_size = data.tokenizer.vocab_size
    if config.model.init == "chrono" and not config.model.chrono_max_len:
        config.model.chrono_max_len = config.train.seq_len
    torch.manual_seed(config.train.seed)
    model = LanguageModel(config.model)
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", config.to_dict())
        if distributed.restart_count():  # records of an attempt that saved no checkpoint
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    return Trainer(model, config, data, run_dir, progress=progress)


def resume_run(path: str | Path, overrides: dict, progress: bool = False) -> Trainer:
    """A trainer that continues the run folder ``path`` from its last checkpoint, exactly."""
    path = Path(path)
    if is_checkpoint(path):
        raise UserError(f"--resume takes the run folder, not the checkpoint {path}; "
                        f"try --resume {path.resolve().parent.parent}")
    checkpoint = load_checkpoint(path, "last")
    model, tokenizer, config = run_from_checkpoint(checkpoint)
    refused = sorted(set(overrides) - RESUMABLE_OVERRIDES)
    if refused:
        flags = ", ".join("--" + name.split(".")[-1].replace("_", "-") for name in refused)
        raise UserError(f"--resume continues the run with its saved settings; {flags} cannot "
                        f"change (only budgets: --max-steps, --epochs, --time-budget, --patience)")
    merged = config.to_dict()
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        merged[section][key] = value
    config = RunConfig.from_dict(merged).validate()
    config.out = str(path)
    ranks = distributed.init(config.train.threads, config.train.dist_timeout)
    progress = progress and ranks.is_main
    data = prepare_language_data(config.data, tokenizer=tokenizer, progress=progress)
    trainer = Trainer(model, config, data, path, progress=progress)
    trainer.resume(checkpoint)
    if ranks.is_main:
        write_json_atomic(path / "config.json", config.to_dict())
    return trainer


def train_language_model(config: RunConfig, progress: bool = False) -> TrainResult:
    """Train a fresh run to the end of its budget (library entry point, no printing)."""
    trainer = start_run(config, progress)
    logger.info("Run %s: %s", trainer.run_dir, json.dumps(config.to_dict()))
    return trainer.fit()
