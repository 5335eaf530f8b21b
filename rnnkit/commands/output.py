"""How much the training commands print on stdout: ``-q`` (only the result), the default (a
few lines: what runs, on what, then one line per evaluation), ``-v`` (also every setting).

``rnnkit.cli`` sets ``args.verbosity`` from ``-q`` / ``-v`` (given before or after the
command); warnings and errors go to stderr at every level.
"""

from __future__ import annotations

QUIET, NORMAL, VERBOSE = -1, 0, 1


def verbosity(args) -> int:
    return getattr(args, "verbosity", NORMAL)


def say(args, text: str) -> None:
    """A line for the default level and -v (what runs, on what data, where it is saved)."""
    if verbosity(args) >= NORMAL:
        print(text, flush=True)


def detail(args, text: str) -> None:
    """A line for -v only (every setting)."""
    if verbosity(args) >= VERBOSE:
        print(text, flush=True)


def budget_text(train) -> str:
    """The budget of a ``TrainConfig`` in words: its limits, whichever comes first."""
    limits = []
    if train.max_steps:
        limits.append(f"{train.max_steps:,} steps")
    if train.epochs:
        limits.append(f"{train.epochs:g} epoch{'' if train.epochs == 1 else 's'}")
    if train.time_budget:
        limits.append(f"{train.time_budget:g} s")
    if not limits:
        return "no budget (until Ctrl-C)"
    text = " or ".join(limits) + (", whichever comes first" if len(limits) > 1 else "")
    if train.patience:
        text += f"; early stopping after {train.patience} evaluations without gain"
    return text


def to_toml(config: dict) -> str:
    """A configuration dict (top-level values, then one table per section) as TOML that
    ``--config`` reads back; None values are written as comments."""
    lines = []
    for key, value in config.items():
        if not isinstance(value, dict) and value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            for key, value in values.items():
                if value is None:
                    lines.append(f"# {key} not set")
                else:
                    lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return repr(value)


def settings_dump(args, command: str, run_dir) -> None:
    """At -v, every setting of the run, as saved in its ``config.json`` (printed as TOML,
    which ``rnnkit train --config`` reads back)."""
    if verbosity(args) < VERBOSE:
        return
    import json
    from pathlib import Path

    from rnnkit.train import distributed

    if not distributed.current().is_main:  # rank 0 wrote the file and prints
        return
    where = Path(run_dir) / "config.json"
    detail(args, f"# {command}: resolved configuration (saved in {where})")
    detail(args, to_toml(json.loads(where.read_text(encoding="utf-8"))))
