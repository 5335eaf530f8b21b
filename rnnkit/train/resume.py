"""Starting and resuming a run folder, the same for every app (language model, classifier,
forecaster).

A fresh run claims its folder (:func:`claim_run_folder`: one that already holds a run is
refused, except when the elastic launcher restarted a failed group, which resumes it) and
saves its configuration (:func:`write_run_config`). ``--resume RUN`` loads the folder's
``last`` checkpoint (:func:`load_last`), takes the saved configuration with only the budgets
changed (:func:`resumed_config`, which also joins the process group), and hands the
checkpoint to the trainer (:func:`continue_run`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rnnkit.errors import UserError
from rnnkit.train import distributed
from rnnkit.train.checkpoint import Checkpoint, is_checkpoint, load_checkpoint, write_json_atomic

logger = logging.getLogger(__name__)

# what a resumed run may change: budgets and bookkeeping, never what decides the numbers
RESUMABLE = {f"train.{name}" for name in ("max_steps", "epochs", "time_budget", "patience",
                                          "log_every", "threads", "dist_timeout")}
BUDGET_FLAGS = "--max-steps, --epochs, --time-budget, --patience"

Resumed = TypeVar("Resumed")


def claim_run_folder(config, default: str, resume: Callable[[Path], Resumed]
                     ) -> tuple[Path, distributed.Context, Resumed | None]:
    """The run folder of ``config`` (``config.out``, else ``runs/<default>``, which becomes
    ``config.out``), the distributed context of the process group it joins, and None once it
    checked that the folder holds no run yet; but when the elastic launcher restarted the
    group after a rank failed and the folder has a ``last`` checkpoint, what ``resume``
    gives for it (the command line is the one that started the run) in place of None."""
    run_dir = Path(config.out or Path("runs") / default)
    train = config.train
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; expected a run folder (it is created if "
                        f"missing)")
    ranks = distributed.init(train.threads, train.dist_timeout)
    if (run_dir / "last").exists() or (run_dir / "best").exists():
        if distributed.restart_count() and (run_dir / "last").exists():
            logger.info("Restart %d: resuming %s", distributed.restart_count(), run_dir)
            return run_dir, ranks, resume(run_dir)
        raise UserError(f"--out {run_dir} already holds a run; continue it with --resume "
                        f"{run_dir} or choose another --out")
    config.out = str(run_dir)
    return run_dir, ranks, None


def write_run_config(run_dir: Path, config, ranks: distributed.Context) -> None:
    """Rank 0 creates the run folder and saves ``config.json`` (the resolved settings)."""
    if not ranks.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", config.to_dict())
    if distributed.restart_count():  # records of an attempt that saved no checkpoint
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)


def load_last(path: str | Path) -> Checkpoint:
    """The ``last`` checkpoint of the run folder ``path`` (not a checkpoint folder)."""
    path = Path(path)
    if is_checkpoint(path):
        raise UserError(f"--resume takes the run folder, not the checkpoint {path}; "
                        f"try --resume {path.resolve().parent.parent}")
    return load_checkpoint(path, "last")


def flag_name(dotted: str) -> str:
    return "--" + dotted.rpartition(".")[2].replace("_", "-")


def train_overrides(overrides: dict) -> dict:
    """Plain names (``max_steps``) as the training settings they are (``train.max_steps``)."""
    return {name if "." in name else f"train.{name}": value for name, value in overrides.items()}


def resumed_config(config, overrides: dict,
                   flags: dict[str, str] | None = None) -> tuple[object, distributed.Context]:
    """The saved ``config`` with ``overrides`` (``{"train.max_steps": 20, ...}``) applied and
    validated, and the process group joined with its threads and timeout.

    Budgets and bookkeeping may change; any other setting given must have its saved value (a
    command line repeated with ``--resume`` added is accepted), or it is refused with the
    value the run has. ``flags`` names the flag of a setting whose flag is not its name
    (``{"model.bidirectional": "--unidirectional"}``)."""
    changed = {}
    for dotted, value in overrides.items():
        if dotted not in RESUMABLE:
            section, _, key = dotted.partition(".")
            saved = getattr(getattr(config, section), key) if key else getattr(config, section)
            if value != saved:
                changed[dotted] = saved
    if changed:
        names = ", ".join((flags or {}).get(dotted) or flag_name(dotted) for dotted in changed)
        saved = ", ".join(f"{dotted.rpartition('.')[2]} = {value!r}"
                          for dotted, value in changed.items())
        raise UserError(f"--resume continues the run with its saved settings; {names} cannot "
                        f"change (only budgets: {BUDGET_FLAGS}); the run has {saved}")
    for dotted, value in overrides.items():
        if dotted in RESUMABLE:
            section, _, key = dotted.partition(".")
            setattr(getattr(config, section), key, value)
    config.train.validate()
    return config, distributed.init(config.train.threads, config.train.dist_timeout)


def continue_run(trainer, checkpoint: Checkpoint, config, path: str | Path):
    """``trainer`` at the checkpoint's step; rank 0 saves the (budget-changed) config."""
    trainer.resume(checkpoint)
    if trainer.dist.is_main:
        write_json_atomic(Path(path) / "config.json", config.to_dict())
    return trainer
