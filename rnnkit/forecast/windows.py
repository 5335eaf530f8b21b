"""A chronological split, scaling fitted on the training part only, and sliding windows.

The series is cut in time order into train | validation | test parts, never shuffled
across the cuts. A window reads ``lookback`` steps and predicts the next ``horizon``; a
window belongs to the part its first predicted step falls in, and may read its inputs from
the part before (as the ETDataset loaders do), so no target is ever seen in training that
lies past the training cut.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from rnnkit.errors import UserError

SCALINGS = ("standard", "minmax", "log", "none")


@dataclass
class Split:
    """Cut points: train is ``[0, train_end)``, validation ``[train_end, val_end)``, test
    ``[val_end, length)``."""

    length: int
    train_end: int
    val_end: int

    def part(self, name: str) -> tuple[int, int]:
        return {"train": (0, self.train_end), "val": (self.train_end, self.val_end),
                "test": (self.val_end, self.length)}[name]


def chronological_split(length: int, val_fraction: float = 0.2, test_fraction: float = 0.2,
                        val_size: int = 0, test_size: int = 0) -> Split:
    """Sizes in points (``*_size``) win over fractions; the training part comes first."""
    for name, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise UserError(f"{name} must be in [0, 1), got {value}")
    test = test_size or int(round(length * test_fraction))
    val = val_size or int(round(length * val_fraction))
    if val_size < 0 or test_size < 0:
        raise UserError("--val-size and --test-size must be positive numbers of points")
    if length - val - test < 2:
        raise UserError(f"the series has {length} points: nothing is left for training after "
                        f"{val} validation and {test} test points")
    return Split(length, length - val - test, length - test)


@dataclass
class Scaler:
    """Per-column ``(x - center) / scale``, fitted on the training part only; ``log``
    standardises the logarithm of the values (all of them must be positive), which turns a
    multiplicative seasonality into an additive one."""

    kind: str
    center: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, values: np.ndarray, kind: str = "standard") -> Scaler:
        """``values`` is the training part ``(T_train, C)`` and nothing else."""
        if kind not in SCALINGS:
            raise UserError(f"--scale must be one of {', '.join(SCALINGS)}, got {kind!r}")
        columns = values.shape[1]
        if kind == "log":
            values = cls._log(values)
        if kind == "none":
            return cls(kind, [0.0] * columns, [1.0] * columns)
        if kind in ("standard", "log"):
            center, scale = values.mean(axis=0), values.std(axis=0)
        else:
            center, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)  # a constant column stays as it is
        return cls(kind, [float(v) for v in center], [float(v) for v in scale])

    @staticmethod
    def _log(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if (values <= 0).any():
            raise UserError(f"--scale log needs positive values; the series holds "
                            f"{values.min():g}")
        return np.log(values)

    def transform(self, values: np.ndarray) -> np.ndarray:
        if self.kind == "log":
            values = self._log(values)
        return (values - np.asarray(self.center)) / np.asarray(self.scale)

    def inverse_target(self, values: np.ndarray) -> np.ndarray:
        """Target-column values (any shape) back to the original units."""
        original = values * self.scale[0] + self.center[0]
        return np.exp(original) if self.kind == "log" else original

    def transform_target(self, values: np.ndarray) -> np.ndarray:
        if self.kind == "log":
            values = self._log(values)
        return (values - self.center[0]) / self.scale[0]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(data["kind"], list(data["center"]), list(data["scale"]))


def window_origins(start: int, end: int, lookback: int, horizon: int, stride: int = 1) -> list:
    """First predicted steps ``o`` with targets ``[o, o + horizon)`` inside ``[start, end)``
    and inputs ``[o - lookback, o)`` inside the series."""
    return list(range(max(start, lookback), end - horizon + 1, stride))


def make_windows(scaled: np.ndarray, origins: list[int], lookback: int, horizon: int):
    """Inputs ``(N, lookback, C)`` and target windows ``(N, horizon)`` as float32 tensors."""
    if not origins:
        columns = scaled.shape[1]
        return torch.zeros(0, lookback, columns), torch.zeros(0, horizon)
    starts = np.asarray(origins)
    steps = np.arange(lookback)
    inputs = scaled[(starts[:, None] - lookback) + steps]  # (N, L, C)
    targets = scaled[starts[:, None] + np.arange(horizon), 0]  # (N, H)
    return (torch.from_numpy(inputs.astype(np.float32)),
            torch.from_numpy(targets.astype(np.float32)))


def check_windows(split: Split, lookback: int, horizon: int, stride: int = 1) -> dict:
    """The origins of each part; a part too short for one window is a one-line error."""
    if lookback < 1 or horizon < 1:
        raise UserError(f"--lookback and --horizon must be positive, got {lookback} and "
                        f"{horizon}")
    if stride < 1:  # (0 made range() raise; a negative one left no window and blamed --horizon)
        raise UserError(f"--stride must be a positive number of steps, got {stride}")
    origins = {}
    for name in ("train", "val", "test"):
        start, end = split.part(name)
        origins[name] = window_origins(start, end, lookback, horizon,
                                       1 if name == "train" else stride)
    if not origins["train"]:
        longest = split.train_end - horizon  # the longest lookback this horizon leaves room for
        if longest >= 1:  # --horizon fits: --lookback is what is too long
            raise UserError(
                f"--lookback {lookback} is longer than the series allows: with --horizon "
                f"{horizon} a training window reads at most {longest} points (the training part "
                f"has {split.train_end} of the series' {split.length}); give --lookback "
                f"{longest} or less, or hold out fewer points"
            )
        raise UserError(
            f"--horizon {horizon} is longer than the series allows: a training window needs "
            f"--lookback {lookback} + --horizon {horizon} = {lookback + horizon} points but the "
            f"training part has {split.train_end} of the series' {split.length}; shorten "
            f"--horizon, or hold out fewer points"
        )
    for name in ("val", "test"):
        start, end = split.part(name)
        if end > start and not origins[name]:
            raise UserError(
                f"--horizon {horizon} is longer than the {name} part ({end - start} points) "
                f"allows; shorten --horizon or give the {name} part at least {horizon} points "
                f"(--{name}-size)"
            )
    return origins
