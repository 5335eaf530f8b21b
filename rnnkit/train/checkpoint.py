"""Run folders and their checkpoints, written atomically, read without unpickling code.

A checkpoint is a folder of three files (DESIGN.md): ``model.safetensors`` (the weights),
``config.json`` (everything needed to rebuild the model, its vocabulary included, plus the
rnnkit and format versions) and ``trainer_state.pt`` (optimizer, scheduler, RNG states,
step, data position; loaded with ``weights_only=True``). A run folder holds them as::

    run/
      config.json                 the resolved configuration, for people and scripts
      metrics.jsonl               one JSON object per logged step or evaluation
      checkpoints/step-00000120/  model.safetensors, config.json, trainer_state.pt
      last -> checkpoints/step-00000120
      best -> checkpoints/step-00000100

A checkpoint is written into a hidden temporary folder and renamed into place; ``last`` and
``best`` are relative symbolic links swapped with ``os.replace``. A process killed at any
moment therefore leaves the previous checkpoint whole and loadable. Nothing here knows what
the model is: any model type (language model, classifier, forecaster) can use it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnkit import __version__
from rnnkit.errors import UserError

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_STATE_FILE = "trainer_state.pt"
CHECKPOINT_FILES = (MODEL_FILE, CONFIG_FILE, TRAINER_STATE_FILE)
TAGS = ("best", "last")


@dataclass
class Checkpoint:
    """What one checkpoint folder holds, loaded."""

    path: Path
    tensors: dict[str, torch.Tensor]
    config: dict
    trainer_state: dict | None


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(path: str | Path, data) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _plain_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory (tied weights): store each one whole
    return {name: tensor.detach().cpu().contiguous().clone() for name, tensor in tensors.items()}


def save_checkpoint(
    run_dir: str | Path,
    tensors: dict[str, torch.Tensor],
    config: dict,
    trainer_state: dict | None = None,
    *,
    step: int = 0,
    tags: tuple[str, ...] = ("last",),
) -> Path:
    """Write one checkpoint into ``run_dir/checkpoints`` and point each of ``tags`` at it.

    ``config`` must be JSON-serialisable; ``trainer_state`` may hold tensors, numbers,
    strings, lists and dicts only (what ``torch.load(weights_only=True)`` reads back).
    Checkpoints no tag points at any more are removed. Returns the checkpoint folder.
    """
    for tag in tags:
        if tag not in TAGS:
            raise ValueError(f"checkpoint tag must be one of {TAGS}, got {tag!r}")
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    suffix = 0
    while (folder / name).exists():
        suffix += 1
        name = f"step-{step:08d}-{suffix}"
    temporary = folder / f".tmp-{name}-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    config = {**config, "format_version": FORMAT_VERSION, "rnnkit_version": __version__}
    save_file(_plain_tensors(tensors), str(temporary / MODEL_FILE), metadata={"step": str(step)})
    write_json_atomic(temporary / CONFIG_FILE, config)
    torch.save(trainer_state or {}, temporary / TRAINER_STATE_FILE)
    for file_name in CHECKPOINT_FILES:
        _fsync(temporary / file_name)
    os.replace(temporary, folder / name)
    for tag in tags:
        link = run_dir / f".{tag}.tmp-{os.getpid()}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("checkpoints") / name, target_is_directory=True)
        os.replace(link, run_dir / tag)
    _fsync(run_dir)
    _remove_unreferenced(run_dir)
    return folder / name


def _remove_unreferenced(run_dir: Path) -> None:
    referenced = {(run_dir / tag).resolve() for tag in TAGS if (run_dir / tag).is_symlink()}
    for folder in (run_dir / "checkpoints").iterdir():
        if folder.name.startswith("step-") and folder.resolve() not in referenced:
            shutil.rmtree(folder, ignore_errors=True)


def is_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / MODEL_FILE).exists()


def find_checkpoint(path: str | Path, tag: str = "best") -> Path:
    """The checkpoint folder that ``path`` names: a checkpoint itself, or a run's ``tag``.

    ``tag="best"`` falls back to ``last`` when a run has no best checkpoint yet.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{path} is a file; expected an rnnkit run folder")
    if is_checkpoint(path):
        return path
    order = (tag, "last") if tag == "best" else (tag,)
    for candidate in order:
        if (path / candidate).exists():
            return path / candidate
    if (path / "best").is_symlink() or (path / "last").is_symlink():
        raise UserError(f"{path}: its best/last links point at missing checkpoints")
    raise UserError(
        f"{path} is not an rnnkit run folder: expected a 'last' or 'best' checkpoint, or the "
        f"files {', '.join(CHECKPOINT_FILES)}"
    )


def load_checkpoint(
    path: str | Path, tag: str = "best", *, trainer_state: bool = True
) -> Checkpoint:
    """Load the checkpoint ``path`` names (see :func:`find_checkpoint`).

    Every failure — a missing or truncated file, JSON that does not parse, a format from a
    newer rnnkit — is a :class:`UserError` naming the file.
    """
    folder = find_checkpoint(path, tag)
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise UserError(f"checkpoint {folder} is incomplete: missing {', '.join(missing)}")
    try:
        with open(folder / CONFIG_FILE, encoding="utf-8") as handle:
            config = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{folder / CONFIG_FILE} is corrupt: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise UserError(f"{folder / CONFIG_FILE} is corrupt: expected a JSON object")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{folder / CONFIG_FILE}: checkpoint format {version!r} is not one this rnnkit "
            f"({__version__}) reads; expected format {FORMAT_VERSION} or older"
        )
    try:
        tensors = load_file(str(folder / MODEL_FILE))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{folder / MODEL_FILE} is corrupt: {error}") from None
    state = None
    if trainer_state:
        try:
            state = torch.load(folder / TRAINER_STATE_FILE, weights_only=True)
        except Exception as error:  # truncated zip, foreign pickle: both are user errors here
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(
                f"{folder / TRAINER_STATE_FILE} is corrupt or not a trainer state: "
                f"{type(error).__name__}: {first_line}"
            ) from None
    return Checkpoint(path=folder, tensors=tensors, config=config, trainer_state=state)


def config_of_kind(checkpoint: Checkpoint, kind: str, what: str) -> dict:
    """The ``config.json`` of ``checkpoint`` if it is a run of ``kind`` (``what`` names it for
    people: "a classifier run"); another kind is a :class:`UserError`."""
    found = checkpoint.config.get("kind")
    if found != kind:
        raise UserError(f"{checkpoint.path / CONFIG_FILE}: expected {what}, found kind "
                        f"{found!r}")
    return checkpoint.config


@contextmanager
def rebuilding(checkpoint: Checkpoint) -> Iterator[None]:
    """Rebuild a model from ``checkpoint`` inside: a missing or malformed setting, or weights
    that do not fit, become one :class:`UserError` naming its ``config.json``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{checkpoint.path / CONFIG_FILE} is corrupt or does not fit its "
                        f"weights ({first_line})") from None
