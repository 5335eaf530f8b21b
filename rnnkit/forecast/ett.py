"""The long-horizon forecasting protocol of the ETT papers (Informer, Autoformer, DLinear,
PatchTST, iTransformer, SegRNN), and a benchmark run of a forecaster on it.

The protocol, as the ETDataset loaders of the DLinear and Time-Series-Library repositories
cut it (``Dataset_ETT_hour`` / ``Dataset_ETT_minute``):

- multivariate: every column but the timestamp is read and forecast;
- the first 20 months only: train is months 1-12, validation 13-16, test 17-20 (30-day
  months; for ETTh1 rows ``[0, 8640)``, ``[8640, 11520)`` and ``[11520, 14400)``); the rest
  of the file is not used;
- a window's inputs may start ``lookback`` rows before its part (validation windows read
  training rows, test windows validation rows), its targets lie inside the part;
- standardisation per column with the mean and deviation of the training rows only;
- MSE and MAE on the standardised values, over every test window (stride 1, none dropped),
  every step and every channel.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnkit.errors import UserError
from rnnkit.forecast.segrnn import SegRNN, SegRNNConfig
from rnnkit.forecast.series import read_series
from rnnkit.forecast.windows import Scaler, Split, check_windows

logger = logging.getLogger(__name__)

MONTH_DAYS = 30
PARTS_MONTHS = (12, 4, 4)  # train, validation, test
HORIZONS = (96, 192, 336, 720)

# Published multivariate MSE/MAE on ETTh1 (standardised), by lookback then model then horizon.
PUBLISHED = {
    "ETTh1": {
        96: {
            "DLinear": ("iTransformer (Liu et al., ICLR 2024, arXiv 2310.06625), full results, "
                        "L=96; as quoted in lss-1138/SegRNN README",
                        {96: (0.386, 0.400), 192: (0.437, 0.432), 336: (0.481, 0.459),
                         720: (0.519, 0.516)}),
            "PatchTST": ("iTransformer (Liu et al., ICLR 2024, arXiv 2310.06625), full results, "
                         "L=96; as quoted in lss-1138/SegRNN README",
                         {96: (0.414, 0.419), 192: (0.460, 0.445), 336: (0.501, 0.466),
                          720: (0.500, 0.488)}),
            "SegRNN": ("lss-1138/SegRNN README, 'Comparison Results for Lookback L = 96' (rerun "
                       "2024.06 with the last test batch kept; the paper itself reports L=720)",
                       {96: (0.368, 0.395), 192: (0.408, 0.419), 336: (0.444, 0.440),
                        720: (0.446, 0.457)}),
        },
    },
}
NOT_AT_96 = ("The DLinear paper (arXiv 2205.13504) reports L=336, PatchTST's (arXiv 2211.14730) "
             "L=336 and 512, SegRNN's (arXiv 2308.11200) L=720; their L=96 figures above come "
             "from the sources named.")


@dataclass
class ETTProtocol:
    """The cut of one ETT file: its rows per hour decide the borders."""

    path: str
    columns: list[str]
    values: np.ndarray  # (T_used, C), raw, the first 20 months
    rows_per_hour: int
    split: Split
    scaler: Scaler
    scaled: np.ndarray  # (T_used, C) float32

    @property
    def name(self) -> str:
        return Path(self.path).stem


def ett_borders(rows_per_hour: int = 1) -> Split:
    """Train ``[0, a)``, validation ``[a, b)``, test ``[b, c)`` rows of the ETT protocol."""
    month = MONTH_DAYS * 24 * rows_per_hour
    train, val, test = (months * month for months in PARTS_MONTHS)
    return Split(train + val + test, train, train + val)


def read_ett(path: str | Path) -> ETTProtocol:
    """Read an ETT CSV (``date`` then the value columns), cut and scale it by the protocol."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    columns = [name for name in header[1:] if name.strip()]
    if not columns:
        raise UserError(f"{path}: expected a header 'date,<column>,...' as in the ETT files, "
                        f"got {header!r}")
    series = read_series(path, columns[0], covariates=columns[1:], time_col=header[0])
    if not series.times or len(series.times) < 2:
        raise UserError(f"{path}: the ETT protocol needs timestamps in the first column")
    step = (series.times[1] - series.times[0]).total_seconds()
    if step <= 0 or 3600 % step:
        raise UserError(f"{path}: rows are {step:g} s apart; the ETT protocol needs hourly or "
                        f"a whole fraction of an hour (ETTh: 1 h, ETTm: 15 min)")
    rows_per_hour = int(3600 // step)
    split = ett_borders(rows_per_hour)
    if len(series) < split.length:
        raise UserError(f"{path} has {len(series):,} rows; the ETT protocol uses the first "
                        f"{split.length:,} (20 months of {rows_per_hour} row(s) per hour)")
    values = series.values[: split.length]
    scaler = Scaler.fit(values[: split.train_end], "standard")
    scaled = scaler.transform(values).astype(np.float32)
    return ETTProtocol(str(path), series.columns, values, rows_per_hour, split, scaler, scaled)


def window_origins(protocol: ETTProtocol, lookback: int, horizon: int) -> dict:
    """First predicted rows of every window of each part (stride 1, all of them)."""
    return check_windows(protocol.split, lookback, horizon, stride=1)


def gather(scaled: torch.Tensor, origins: torch.Tensor, lookback: int, horizon: int):
    """Inputs ``(N, lookback, C)`` and targets ``(N, horizon, C)`` of the windows whose first
    predicted row is each of ``origins``."""
    inputs = scaled[origins[:, None] + torch.arange(-lookback, 0)]
    targets = scaled[origins[:, None] + torch.arange(horizon)]
    return inputs, targets


@torch.no_grad()
def evaluate(model: torch.nn.Module, scaled: torch.Tensor, origins: list[int], lookback: int,
             horizon: int, batch_size: int = 256) -> dict:
    """MSE and MAE over every window in ``origins``, every step and channel (float64 sums,
    so the last, smaller batch weighs exactly its share)."""
    model.eval()
    squared = absolute = 0.0
    count = 0
    index = torch.as_tensor(origins, dtype=torch.long)
    for start in range(0, len(index), batch_size):
        inputs, targets = gather(scaled, index[start:start + batch_size], lookback, horizon)
        error = (model(inputs) - targets).double()
        squared += float((error ** 2).sum())
        absolute += float(error.abs().sum())
        count += error.numel()
    return {"mse": squared / count, "mae": absolute / count, "windows": len(origins)}


@dataclass
class BenchmarkConfig:
    lookback: int = 96
    horizons: list[int] = field(default_factory=lambda: list(HORIZONS))
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    model: SegRNNConfig = field(default_factory=SegRNNConfig)
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"  # or constant
    time_budget: float = 0.0  # seconds per run, 0: none (the epochs alone decide)
    threads: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def train_one(protocol: ETTProtocol, config: BenchmarkConfig, horizon: int, seed: int,
              report=None, test: bool = True) -> dict:
    """Train on the training windows for ``config.epochs`` epochs, keep the weights of the
    epoch with the lowest validation MSE, and score them once on every test window (not at
    all with ``test=False``: choosing settings reads the validation part only)."""
    lookback = config.lookback
    origins = window_origins(protocol, lookback, horizon)
    model_config = SegRNNConfig(**{**config.model.to_dict(), "channels": len(protocol.columns),
                                   "lookback": lookback, "horizon": horizon})
    torch.manual_seed(seed)
    model = SegRNN(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    scaled = torch.from_numpy(protocol.scaled)
    train = torch.as_tensor(origins["train"], dtype=torch.long)
    batches = math.ceil(len(train) / config.batch_size)
    total_steps = batches * config.epochs
    generator = torch.Generator().manual_seed(seed)
    best, best_state, history, step = math.inf, None, [], 0
    started = time.perf_counter()
    stopped = "epochs"
    for epoch in range(config.epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=generator)]
        running = 0.0
        for index in range(batches):
            if config.schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            inputs, targets = gather(scaled, order[index * config.batch_size:
                                                   (index + 1) * config.batch_size],
                                     lookback, horizon)
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.item()
            step += 1
        val = evaluate(model, scaled, origins["val"], lookback, horizon)
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch + 1, "train_mse": running / batches,
                        "val_mse": val["mse"], "val_mae": val["mae"], "seconds": seconds})
        if report:
            report(horizon, seed, history[-1])
        if val["mse"] < best:
            best = val["mse"]
            best_state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        if config.time_budget and seconds >= config.time_budget and epoch + 1 < config.epochs:
            stopped = "time_budget"
            break
    train_seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    scores = evaluate(model, scaled, origins["test"], lookback, horizon) if test else \
        {"mse": None, "mae": None, "windows": 0}
    best_epoch = min(history, key=lambda row: row["val_mse"])["epoch"]
    return {"horizon": horizon, "seed": seed, "mse": scores["mse"], "mae": scores["mae"],
            "test_windows": scores["windows"], "val_mse": best, "best_epoch": best_epoch,
            "epochs": len(history), "stopped": stopped, "train_seconds": train_seconds,
            "parameters": sum(p.numel() for p in model.parameters()), "history": history}


def published(protocol: ETTProtocol, lookback: int) -> dict:
    """``{model: (source, {horizon: (mse, mae)})}`` for this file and lookback, or ``{}``."""
    return PUBLISHED.get(protocol.name, {}).get(lookback, {})


def summarise(results: list[dict]) -> list[dict]:
    """Per horizon: the mean, and the smallest and largest value over seeds."""
    rows = []
    for horizon in sorted({row["horizon"] for row in results}):
        runs = [row for row in results if row["horizon"] == horizon]
        summary = {"horizon": horizon, "seeds": len(runs)}
        for metric in ("mse", "mae", "train_seconds"):
            values = [row[metric] for row in runs]
            summary[metric] = float(np.mean(values))
            summary[f"{metric}_min"], summary[f"{metric}_max"] = min(values), max(values)
        rows.append(summary)
    return rows


def _run_in_worker(path: str, config: BenchmarkConfig, horizon: int, seed: int) -> dict:
    if config.threads:
        torch.set_num_threads(config.threads)
    return train_one(read_ett(path), config, horizon, seed)


def run_benchmark(path: str | Path, config: BenchmarkConfig, report=None,
                  on_result=None, jobs: int = 1) -> dict:
    """Every (seed, horizon) run of the protocol on ``path``; one JSON-ready dict.
    ``on_result(partial)`` gets that dict after each run. With ``jobs`` > 1 that many runs
    train at once, each in its own process with ``config.threads`` threads (the horizons in
    order, its seeds side by side); every run is the same as it would be alone."""
    if config.threads:
        torch.set_num_threads(config.threads)
    protocol = read_ett(path)
    for horizon in config.horizons:  # every error before the first long run
        window_origins(protocol, config.lookback, horizon)
        SegRNNConfig(**{**config.model.to_dict(), "lookback": config.lookback,
                        "horizon": horizon}).validate()
    results = []
    if jobs > 1:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_run_in_worker, str(path), config, horizon, seed)
                       for horizon in config.horizons for seed in config.seeds]
            for future in concurrent.futures.as_completed(futures):
                results.append(future.result())
                if on_result:
                    on_result(_payload(protocol, config, results))
        return _payload(protocol, config, results)
    for seed in config.seeds:
        for horizon in config.horizons:
            logger.info("ETT %s: horizon %d seed %d", protocol.name, horizon, seed)
            results.append(train_one(protocol, config, horizon, seed, report))
            if on_result:
                on_result(_payload(protocol, config, results))
    return _payload(protocol, config, results)


def _payload(protocol: ETTProtocol, config: BenchmarkConfig, results: list[dict]) -> dict:
    split = protocol.split
    origins = {h: window_origins(protocol, config.lookback, h) for h in config.horizons}
    return {
        "protocol": "ett", "data": protocol.name, "columns": protocol.columns,
        "borders": {"train": [0, split.train_end],
                    "val": [split.train_end - config.lookback, split.val_end],
                    "test": [split.val_end - config.lookback, split.length]},
        "windows": {str(h): {part: len(o[part]) for part in ("train", "val", "test")}
                    for h, o in origins.items()},
        "scaler": {"mean": protocol.scaler.center, "std": protocol.scaler.scale},
        "lookback": config.lookback, "model": "segrnn", "config": config.to_dict(),
        "complete": len(results) == len(config.seeds) * len(config.horizons),
        "results": sorted(results, key=lambda row: (row["horizon"], row["seed"])),
        "summary": summarise(results),
        "published": {name: {"source": source,
                             "figures": {str(h): {"mse": v[0], "mae": v[1]}
                                         for h, v in figures.items()}}
                      for name, (source, figures) in published(protocol,
                                                               config.lookback).items()},
    }
