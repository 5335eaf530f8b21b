"""Training: configuration, the trainer loop, checkpoints and run folders, metrics."""

from rnnkit.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnnkit.train.config import DataConfig, RunConfig, TrainConfig
from rnnkit.train.runs import LanguageModelRun, load_run

__all__ = [
    "Checkpoint",
    "DataConfig",
    "LanguageModelRun",
    "RunConfig",
    "TrainConfig",
    "load_checkpoint",
    "load_run",
    "save_checkpoint",
]
