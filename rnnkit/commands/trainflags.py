"""The training flags of ``train``, ``classify train`` and ``forecast train``, written once.

Every flag names a field of :class:`rnnkit.train.config.TrainConfig` (the one training loop's
settings) and takes that field's type; each command adds what only it has (its data and model
flags, and the language model's optimizer and truncated-BPTT settings) and shows the defaults
of its own configuration (``rnnkit.commands.helptext.with_default``).
"""

from __future__ import annotations

from dataclasses import fields

from rnnkit.train.config import TrainConfig

# field -> help; "{unit}" is what a batch holds in the command, "{epochs}" its default budget
HELP = {
    "batch_size": "{unit} per batch",
    "seq_len": "truncated-BPTT length",
    "optimizer": "adamw | sgd | rmsprop",
    "lr": "learning rate",
    "weight_decay": "weight decay (AdamW's, decoupled)",
    "momentum": "sgd / rmsprop momentum",
    "clip": "gradient-norm clipping, 0 off",
    "warmup": "steps of linear learning-rate warmup",
    "schedule": "constant | cosine | plateau",
    "min_lr": "cosine: the learning rate at the end of the budget",
    "plateau_factor": "plateau: multiply the rate by this when validation stalls",
    "plateau_patience": "plateau: evaluations without improvement before decaying",
    "max_steps": "stop after this many steps (0: no limit)",
    "epochs": "stop after this many passes (default {epochs} when no budget is given; "
              "0: no limit)",
    "time_budget": "stop after this many seconds (0: no limit)",
    "eval_every": "steps between evaluations (0: once per epoch)",
    "eval_batch_size": "{unit} per evaluation batch (0: the batch size)",
    "patience": "early stopping after N evaluations without improvement (0: off)",
    "ema": "evaluate and save an exponential moving average of the weights with this decay "
           "(e.g. 0.999; 0: off, the weights as trained)",
    "log_every": "steps between metrics.jsonl lines",
    "seed": "random seed",
    "threads": "torch threads (0: torch's choice; several processes: cores / processes)",
    "dist_timeout": "seconds a collective waits for the other processes",
}
# what only some commands take: the language model's optimizer and truncated BPTT, and an
# evaluation batch where validation runs in batches
OPTIONAL = ("seq_len", "optimizer", "momentum", "plateau_factor", "plateau_patience",
            "eval_batch_size")


def training_flags(unit: str, default_epochs: float,
                   extra: tuple[str, ...] = ()) -> dict[str, tuple[str, type, str]]:
    """``{"--flag": (TrainConfig field, type, help)}`` for a command whose batches hold
    ``unit`` and whose runs without a budget train ``default_epochs`` passes: every shared
    field, and the ``extra`` ones of :data:`OPTIONAL`, in the dataclass's order."""
    unknown = set(extra) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"not optional training flags: {sorted(unknown)}")
    flags = {}
    for item in fields(TrainConfig):
        if item.name in OPTIONAL and item.name not in extra:
            continue
        text = HELP[item.name].format(unit=unit, epochs=f"{default_epochs:g}")
        flags["--" + item.name.replace("_", "-")] = (item.name, type(item.default), text)
    return flags
