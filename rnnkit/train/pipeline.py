"""Start or resume a language-model run: config -> data -> model -> trainer -> run folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from rnnkit.data.language_data import prepare_language_data
from rnnkit.models.language_model import LanguageModel
from rnnkit.train import resume
from rnnkit.train.config import RunConfig, apply_default_budget
from rnnkit.train.runs import run_from_checkpoint
from rnnkit.train.trainer import Trainer, TrainResult

logger = logging.getLogger(__name__)


def start_run(config: RunConfig, progress: bool = False) -> Trainer:
    """A trainer for a fresh run of ``config`` (validated), its run folder created; a config
    without a budget gets the default (``config.DEFAULT_EPOCHS``)."""
    if apply_default_budget(config.train):
        logger.info("No budget given (max_steps, epochs or time_budget): training for the "
                    "default %g epochs", config.train.epochs)
    run_dir, ranks, restarted = resume.claim_run_folder(
        config, f"{Path(config.data.path).stem or 'corpus'}-{config.data.level}",
        lambda path: resume_run(path, {}, progress))
    if restarted is not None:
        return restarted
    ranks.check_global_batch(config.train.batch_size)
    progress = progress and ranks.is_main
    data = prepare_language_data(config.data, progress=progress)
    config.model.vocab_size = data.tokenizer.vocab_size
    if config.model.init == "chrono" and not config.model.chrono_max_len:
        config.model.chrono_max_len = config.train.seq_len
    torch.manual_seed(config.train.seed)
    model = LanguageModel(config.model)
    resume.write_run_config(run_dir, config, ranks)
    return Trainer(model, config, data, run_dir, progress=progress)


def resume_run(path: str | Path, overrides: dict, progress: bool = False) -> Trainer:
    """A trainer that continues the run folder ``path`` from its last checkpoint, exactly."""
    checkpoint = resume.load_last(path)
    model, tokenizer, config = run_from_checkpoint(checkpoint)
    config, ranks = resume.resumed_config(config, overrides)
    config.out = str(path)
    progress = progress and ranks.is_main
    data = prepare_language_data(config.data, tokenizer=tokenizer, progress=progress)
    trainer = Trainer(model, config, data, path, progress=progress)
    return resume.continue_run(trainer, checkpoint, config, path)


def train_language_model(config: RunConfig, progress: bool = False) -> TrainResult:
    """Train a fresh run to the end of its budget (library entry point, no printing)."""
    trainer = start_run(config, progress)
    logger.info("Run %s: %s", trainer.run_dir, json.dumps(config.to_dict()))
    return trainer.fit()
