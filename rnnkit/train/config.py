"""Typed configuration of a language-model run: data, model, training; from TOML and flags.

``RunConfig.from_sources(toml_path, overrides)`` merges, in this order, the dataclass
defaults, a ``run.toml`` (tables ``[data]``, ``[model]``, ``[train]``) and command-line
flags; the result is validated, saved in the run folder and printed at start.
"""

from __future__ import annotations

import math
import sys
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rnnkit.data.tokenizers import LEVELS
from rnnkit.errors import UserError
from rnnkit.models.language_model import ModelConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "plateau")


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes tokens."""

    path: str = ""
    level: str = "char"
    val: str | None = None  # a separate validation file; otherwise the last val_fraction
    val_fraction: float = 0.1
    encoding: str = "utf-8"
    min_count: int = 1  # word level: rarer words become <unk>
    max_vocab: int = 0  # word level: 0 keeps every word seen min_count times
    vocab_size: int = 1000  # bpe level
    cache_dir: str | None = None
    # texts whose symbols join the vocabulary without being trained on (pytorch/examples
    # word_language_model builds its dictionary from train, valid and test alike)
    vocab_from: list[str] = field(default_factory=list)

    def validate(self) -> DataConfig:
        if self.level not in LEVELS:
            raise UserError(f"--level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.val is None and not 0.0 < self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.min_count < 1:
            raise UserError(f"--min-count must be at least 1, got {self.min_count}")
        if self.max_vocab < 0 or 0 < self.max_vocab < 3:
            raise UserError(f"--max-vocab must be 0 (no limit) or at least 3, got {self.max_vocab}")
        if self.level == "bpe" and self.vocab_size < 257:
            raise UserError(f"--vocab-size must be at least 257 for bpe, got {self.vocab_size}")
        return self

    def tokenizer_settings(self) -> dict:
        if self.level == "word":
            return {"min_count": self.min_count, "max_vocab": self.max_vocab}
        if self.level == "bpe":
            return {"vocab_size": self.vocab_size}
        return {}


# the budget of a run given none (no max_steps, epochs or time_budget): ten passes over the
# training text, about what the README's Tiny Shakespeare run trains in its 600 s
DEFAULT_EPOCHS = 10.0
CLASSIFIER_DEFAULT_EPOCHS = 5.0  # classify train: passes over the training texts
FORECASTER_DEFAULT_EPOCHS = 60.0  # forecast train: passes over the training windows

# Each command's own defaults over the dataclasses' (which stay the Python API's), chosen on
# validation data by benchmarks/select_defaults.py. `rnnkit train` (Tiny Shakespeare's last 10%,
# 3 epochs each, select_defaults_train.json): layer norm where the cell offers it, dropout 0.2,
# AdamW 5e-3, wd 0.05, warmup 50, cosine to 5e-5 reached 1.578 nats/char against 1.755 for the
# plain LSTM at AdamW 2e-3. `forecast train` (the validation parts of AirPassengers, sunspots
# and ETTh1's OT, select_defaults_forecast.json): a cosine to 1e-5 over 60 epochs, 0.916 of the
# validation loss of a constant rate over 20 (geometric mean).
LANGUAGE_MODEL_DEFAULTS = {"layer_norm": True, "dropout": 0.2}
LANGUAGE_MODEL_TRAINING = {"lr": 5e-3, "weight_decay": 0.05, "schedule": "cosine",
                           "min_lr": 5e-5, "warmup": 50}
RUN_DEFAULTS = {"model": LANGUAGE_MODEL_DEFAULTS, "train": LANGUAGE_MODEL_TRAINING}
FORECASTER_TRAINING = {"batch_size": 32, "schedule": "cosine", "min_lr": 1e-5}
# `classify train`'s: evaluate and save a moving average of the weights (decay 0.999), chosen on
# NSMC's validation split at the full 600 s (classify_nsmc_screen600_ema.json): 0.850 at best and
# 0.843 at the end, against 0.849 and 0.838 for the weights as trained
CLASSIFIER_TRAINING = {"ema": 0.999}
BUDGETS = ("max_steps", "epochs", "time_budget")  # the TrainConfig fields that stop a run


def apply_default_budget(train: TrainConfig, epochs: float = DEFAULT_EPOCHS) -> bool:
    """Give ``train`` the default budget (``epochs``) when it has none; True if it did."""
    if any(getattr(train, name) for name in BUDGETS):
        return False
    train.epochs = epochs
    return True


def gives_budget(merged: dict) -> bool:
    """Whether merged sources (``RunConfig.merge_sources``) set a budget themselves."""
    train = merged.get("train") or {}
    return isinstance(train, dict) and any(train.get(name) for name in BUDGETS)


@dataclass
class TrainConfig:
    """How to train: batches, optimizer, schedule, budget, evaluation, logging."""

    batch_size: int = 64
    seq_len: int = 100
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    clip: float = 5.0  # gradient-norm clipping; 0 turns it off
    warmup: int = 0  # steps of linear learning-rate warmup
    schedule: str = "constant"
    min_lr: float = 0.0  # cosine: the learning rate at the end of the budget
    plateau_factor: float = 0.25  # plateau: multiply the rate by this when validation stalls
    plateau_patience: int = 0  # plateau: evaluations without improvement before decaying
    max_steps: int = 0  # 0: no step limit
    epochs: float = 0.0  # 0: no epoch limit
    time_budget: float = 0.0  # seconds; 0: no time limit
    eval_every: int = 0  # steps between evaluations; 0: once per epoch
    eval_batch_size: int = 0  # 0: the training batch size
    patience: int = 0  # early stopping after this many evaluations without improvement; 0 off
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 off
    log_every: int = 10
    seed: int = 1234
    threads: int = 0  # torch intra-op threads; 0 leaves torch's choice (ranks: cores / ranks)
    dist_timeout: float = 600.0  # distributed: seconds a collective waits for the other ranks

    def validate(self) -> TrainConfig:
        positive = ("batch_size", "seq_len", "log_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{flag(name)} must be a positive integer, got {value!r}")
        for name in ("warmup", "max_steps", "eval_every", "eval_batch_size", "patience",
                     "plateau_patience", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UserError(f"--{flag(name)} must be a non-negative integer, got {value!r}")
        for name in ("lr", "weight_decay", "momentum", "clip", "min_lr", "epochs", "time_budget"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise UserError(f"--{flag(name)} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if not isinstance(self.dist_timeout, int | float) or not self.dist_timeout > 0:
            raise UserError(f"--dist-timeout must be a positive number of seconds, got "
                            f"{self.dist_timeout!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise UserError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not isinstance(self.ema, int | float) or not 0.0 <= self.ema < 1.0:
            raise UserError(f"--ema must be a decay in [0, 1) (e.g. 0.999; 0 turns it off), got "
                            f"{self.ema!r}")
        if not 0.0 < self.plateau_factor <= 1.0:
            raise UserError(f"--plateau-factor must be in (0, 1], got {self.plateau_factor}")
        if self.schedule == "cosine" and self.min_lr > self.lr:
            raise UserError(f"--min-lr {self.min_lr} is above --lr {self.lr}: cosine decays "
                            f"from --lr down to --min-lr")
        if self.schedule == "cosine" and not (self.max_steps or self.epochs or self.time_budget):
            raise UserError(
                "--schedule cosine needs a budget to decay over: --max-steps, --epochs or "
                "--time-budget"
            )
        return self


@dataclass
class RunConfig:
    """Everything a run needs; saved whole in ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(**LANGUAGE_MODEL_DEFAULTS))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**LANGUAGE_MODEL_TRAINING))
    out: str = ""

    def validate(self) -> RunConfig:
        self.data.validate()
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Build from a (possibly partial) dict; unknown keys are refused with their name."""
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
        unknown = set(data) - set(sections) - {"out"}
        if unknown:
            raise UserError(f"config: unknown section(s) {', '.join(sorted(unknown))}; "
                            f"expected {', '.join(sections)}")
        built = {}
        for name, kind in sections.items():
            values = data.get(name, {}) or {}
            if not isinstance(values, dict):
                raise UserError(f"config: [{name}] must be a table of settings, got {values!r}")
            known = {item.name: item.type for item in fields(kind)}
            extra = set(values) - set(known)
            if extra:
                raise UserError(f"config [{name}]: unknown key(s) {', '.join(sorted(extra))}")
            for key, value in values.items():
                check_type(f"config [{name}] {key}", known[key], value)
            # the command's own defaults under the dict's values (a saved run names them all)
            built[name] = kind(**{**RUN_DEFAULTS.get(name, {}), **values})
        out = data.get("out", "")
        check_type("config out", "str", out)
        return cls(**built, out=out)

    @classmethod
    def from_sources(cls, toml_path: str | None, overrides: dict) -> RunConfig:
        """Defaults, then ``toml_path``, then ``overrides`` (``{"train.lr": 1e-3, ...}``);
        without a budget from either, the default one (``DEFAULT_EPOCHS``)."""
        return cls.from_merged(cls.merge_sources(toml_path, overrides))

    @classmethod
    def from_merged(cls, data: dict) -> RunConfig:
        """The validated configuration of ``merge_sources``' dict, the default budget given
        when it sets none."""
        config = cls.from_dict(data)
        if "layer_norm" not in data.get("model", {}) and not _offers(config.model.cell,
                                                                      "layer_norm"):
            config.model.layer_norm = False  # the default where the cell has it, else off
        apply_default_budget(config.train)  # (before validate: cosine decays over it)
        return config.validate()

    @staticmethod
    def merge_sources(toml_path: str | None, overrides: dict) -> dict:
        """The dict of ``toml_path`` with ``overrides`` on top (not yet checked)."""
        data: dict = {"data": {}, "model": {}, "train": {}}
        if toml_path:
            path = Path(toml_path)
            if not path.is_file():
                raise UserError(f"--config {path} does not exist or is not a file")
            try:
                loaded = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                raise UserError(f"--config {path} is not valid TOML: {error}") from None
            for section, values in loaded.items():
                if isinstance(values, dict):
                    data.setdefault(section, {}).update(values)
                else:
                    data[section] = values
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if key:
                data.setdefault(section, {})[key] = value
            else:
                data[section] = value
        return data


def _offers(cell: str, option: str) -> bool:
    """Whether the family called ``cell`` takes the variant ``option``."""
    from rnnkit import families

    found = families.cli_cells().get(cell)  # {--cell name: (family, init)}
    return found is not None and option in found[0].options


# what each annotation of the dataclasses above (strings: postponed annotations) accepts
EXPECTED = {
    "str": ((str,), "a string"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
}


def check_type(where: str, annotation: str, value) -> None:
    """Refuse a TOML or config.json value of the wrong type (flags are typed by argparse)."""
    kind, _, optional = str(annotation).partition(" | ")
    if value is None and optional == "None":
        return
    if kind == "list[str]":
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return
        raise UserError(f"{where}: expected a list of strings, got {value!r}")
    if kind not in EXPECTED:
        return
    types, text = EXPECTED[kind]
    if not isinstance(value, types) or (kind != "bool" and isinstance(value, bool)):
        raise UserError(f"{where}: expected {text}, got {value!r}")


def known_settings(kind, values: dict | None):
    """The settings dataclass ``kind`` from a saved dict; keys it does not know (a run saved
    by another rnnkit version) are left out."""
    known = {item.name for item in fields(kind)}
    return kind(**{key: value for key, value in (values or {}).items() if key in known})


class AppConfig:
    """``to_dict`` and ``from_dict`` of an app's settings (a dataclass of the sections
    ``data``, ``model`` and ``train`` and the run folder ``out``), saved as ``config.json``."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Rebuild from what :meth:`to_dict` saved, each section by :func:`known_settings`."""
        kinds = typing.get_type_hints(cls)
        return cls(**{name: known_settings(kinds[name], data.get(name))
                      for name in ("data", "model", "train")}, out=data.get("out", ""))


def flag(name: str) -> str:
    return name.replace("_", "-")
