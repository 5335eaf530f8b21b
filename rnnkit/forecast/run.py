"""Forecasting runs: the configuration, the data prepared from it, training, loading.

A forecasting run folder has the layout of a language-model run (``config.json``,
``metrics.jsonl``, ``checkpoints/``, ``best``, ``last``); its checkpoints' ``config.json``
holds ``kind: "forecaster"``, the whole configuration and the scaler fitted on the
training part, so predicting and backtesting never refit anything.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from rnnkit.errors import UserError
from rnnkit.forecast.model import Forecaster, ForecasterConfig, forecast_loss
from rnnkit.forecast.series import Series, read_series
from rnnkit.forecast.windows import (
    Scaler,
    Split,
    check_windows,
    chronological_split,
    make_windows,
)
from rnnkit.train import resume
from rnnkit.train.checkpoint import config_of_kind, load_checkpoint, rebuilding
from rnnkit.train.config import (
    FORECASTER_DEFAULT_EPOCHS,
    FORECASTER_TRAINING,
    AppConfig,
    TrainConfig,
    apply_default_budget,
)
from rnnkit.train.supervised import SupervisedTrainer, epoch_generator

logger = logging.getLogger(__name__)

KIND = "forecaster"


@dataclass
class SeriesConfig:
    """Which file and columns, how to clean them, how to split and scale."""

    path: str = ""
    target: str = ""
    time_col: str | None = None
    covariates: list[str] = field(default_factory=list)
    fill: str = "error"
    sort: bool = False
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    val_size: int = 0  # points; wins over val_fraction
    test_size: int = 0
    scale: str = "standard"
    season: int = 0  # 0: from the frequency (12 for monthly, 24 for hourly, ...)
    stride: int = 1  # between validation/test origins


@dataclass
class ForecastConfig(AppConfig):
    data: SeriesConfig = field(default_factory=SeriesConfig)
    model: ForecasterConfig = field(default_factory=ForecasterConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**FORECASTER_TRAINING))
    out: str = ""


class ForecastData:
    """The series of a configuration, split, scaled on its training part and cut in windows."""

    def __init__(self, config: ForecastConfig, series: Series | None = None,
                 scaler: Scaler | None = None) -> None:
        data, model = config.data, config.model
        if data.season < 0:  # (a negative one made the seasonal-naive baseline read the future)
            raise UserError(f"--season must be a number of steps >= 1 (or 0: from the "
                            f"frequency), got {data.season}")
        self.series = series or read_series(data.path, data.target, time_col=data.time_col,
                                            covariates=data.covariates, fill=data.fill,
                                            sort=data.sort)
        self.split: Split = chronological_split(len(self.series), data.val_fraction,
                                                data.test_fraction, data.val_size,
                                                data.test_size)
        self.origins = check_windows(self.split, model.lookback, model.horizon, data.stride)
        train_part = self.series.values[: self.split.train_end]
        self.scaler = scaler or Scaler.fit(train_part, data.scale)
        self.scaled = self.scaler.transform(self.series.values)  # (T, C)
        self.season = data.season or (self.series.frequency.season()
                                      if self.series.frequency else 1)
        self.lookback, self.horizon = model.lookback, model.horizon

    def windows(self, part: str):
        """Inputs ``(N, lookback, C)`` and targets ``(N, horizon)`` of ``part``, scaled."""
        return make_windows(self.scaled, self.origins[part], self.lookback, self.horizon)


class ForecastTask:
    """What the supervised loop needs: shuffled training windows, a loss, validation."""

    def __init__(self, config: ForecastConfig, data: ForecastData) -> None:
        self.config = config
        self.data = data
        self.train_inputs, self.train_targets = self.data.windows("train")
        self.val_inputs, self.val_targets = self.data.windows("val")
        if not len(self.val_inputs):  # no validation part: the last tenth of training windows
            count = max(1, len(self.train_inputs) // 10)
            self.val_inputs = self.train_inputs[-count:]
            self.val_targets = self.train_targets[-count:]

    def batch_count(self) -> int:
        return math.ceil(len(self.train_inputs) / self.config.train.batch_size)

    def batch_members(self, epoch: int, index: int) -> list[int]:
        order = torch.randperm(len(self.train_inputs),
                               generator=epoch_generator(self.config.train.seed, epoch))
        size = self.config.train.batch_size
        return order[index * size:(index + 1) * size].tolist()

    def make_batch(self, members: list[int]):
        chosen = torch.tensor(members, dtype=torch.long)
        return self.train_inputs[chosen], self.train_targets[chosen]

    def loss(self, model, batch):
        inputs, targets = batch
        return forecast_loss(self.config.model, model(inputs), targets), len(inputs)

    def validate(self, model, ranks=None) -> dict:
        if ranks is not None and ranks.enabled:
            return self._validate_shared(model, ranks)
        prediction = model(self.val_inputs)  # (N, H, Q)
        loss = forecast_loss(self.config.model, prediction, self.val_targets).item()
        point = prediction[:, :, self.config.model.median_index]
        error = point - self.val_targets
        return {"score": loss, "val_loss": loss, "val_mae_scaled": error.abs().mean().item(),
                "val_mse_scaled": (error ** 2).mean().item(), "val_windows": len(point)}

    def _validate_shared(self, model, ranks) -> dict:
        """Every N-th validation window on each rank; every window has the same number of
        values, so the summed per-window means of all ranks give one process's numbers."""
        mine = torch.arange(ranks.rank, len(self.val_inputs), ranks.world_size)
        sums = [0.0, 0.0, 0.0, 0.0]
        if len(mine):
            inputs, targets = self.val_inputs[mine], self.val_targets[mine]
            prediction = model(inputs)
            error = prediction[:, :, self.config.model.median_index] - targets
            count = len(mine)
            sums = [forecast_loss(self.config.model, prediction, targets).item() * count,
                    error.abs().mean().item() * count, (error ** 2).mean().item() * count,
                    float(count)]
        loss, mae, mse, count = ranks.all_reduce_sum(sums)
        return {"score": loss / count, "val_loss": loss / count, "val_mae_scaled": mae / count,
                "val_mse_scaled": mse / count, "val_windows": int(count)}

    def checkpoint_config(self) -> dict:
        series = self.data.series
        frequency = asdict(series.frequency) if series.frequency else None
        return {"kind": KIND, "run": self.config.to_dict(), "scaler": self.data.scaler.to_dict(),
                "series": {"columns": series.columns, "frequency": frequency,
                           "season": self.data.season, "length": len(series)}}

    def data_hash(self) -> str:
        return self.data.series.content_hash()


def start_forecast(config: ForecastConfig, progress: bool = False) -> SupervisedTrainer:
    """A trainer for a fresh run (its run folder created, its configuration saved)."""
    train = config.train
    apply_default_budget(train, FORECASTER_DEFAULT_EPOCHS)  # cosine decays over it
    train.validate()
    run_dir, ranks, restarted = resume.claim_run_folder(
        config, f"forecast-{Path(config.data.path).stem}",
        lambda path: resume_forecast(path, {}, progress))
    if restarted is not None:
        return restarted
    data = ForecastData(config)
    config.model.inputs = len(data.series.columns)
    config.model.validate()
    torch.manual_seed(train.seed)
    model = Forecaster(config.model)
    ranks.check_global_batch(train.batch_size, "windows")
    resume.write_run_config(run_dir, config, ranks)
    return SupervisedTrainer(model, ForecastTask(config, data), train, run_dir, progress,
                             score_name="val_loss")


class ForecastRun(NamedTuple):
    model: Forecaster
    config: ForecastConfig
    scaler: Scaler
    path: Path


def load_forecast(path: str | Path, tag: str = "best") -> ForecastRun:
    """The model (eval mode), configuration and scaler of a forecasting run or checkpoint."""
    checkpoint = load_checkpoint(path, tag, trainer_state=False)
    return _from_checkpoint(checkpoint)


def _from_checkpoint(checkpoint) -> ForecastRun:
    data = config_of_kind(checkpoint, KIND, "a forecasting run")
    with rebuilding(checkpoint):
        config = ForecastConfig.from_dict(data["run"])
        scaler = Scaler.from_dict(data["scaler"])
        model = Forecaster(config.model)
        model.load_state_dict(checkpoint.tensors)
    model.eval()
    return ForecastRun(model, config, scaler, checkpoint.path)


def resume_forecast(path: str | Path, overrides: dict, progress: bool = False):
    """Continue the run folder ``path`` from its last checkpoint; only budgets may change
    (``overrides``: ``{"max_steps": 20}`` or ``{"train.max_steps": 20}``; other settings,
    ``{"model.hidden": 32}``, only as saved)."""
    checkpoint = resume.load_last(path)
    run = _from_checkpoint(checkpoint)
    config, _ = resume.resumed_config(run.config, resume.train_overrides(overrides))
    data = ForecastData(config, scaler=run.scaler)
    run.model.train()
    trainer = SupervisedTrainer(run.model, ForecastTask(config, data), config.train, path,
                                progress, score_name="val_loss")
    return resume.continue_run(trainer, checkpoint, config, path)
