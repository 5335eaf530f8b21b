"""Language-model runs: what ``config.json`` holds for them, and :func:`load_run`.

``load_run(path)`` gives back the model (in eval mode), its tokenizer and its configuration
from a run folder (its best checkpoint, else its last) or from one checkpoint folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from rnnkit.data.tokenizers import Tokenizer, tokenizer_from_dict
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel, ModelConfig
from rnnkit.train.checkpoint import CONFIG_FILE, Checkpoint, config_of_kind, load_checkpoint
from rnnkit.train.config import RunConfig

KIND = "language_model"


class LanguageModelRun(NamedTuple):
    model: LanguageModel
    tokenizer: Tokenizer
    config: RunConfig


def checkpoint_config(config: RunConfig, tokenizer: Tokenizer) -> dict:
    """The ``config.json`` of a language-model checkpoint: the whole config and the vocabulary."""
    return {"kind": KIND, "run": config.to_dict(), "tokenizer": tokenizer.to_dict()}


def run_from_checkpoint(checkpoint: Checkpoint) -> LanguageModelRun:
    """Rebuild model, tokenizer and config from a loaded checkpoint."""
    where = checkpoint.path / CONFIG_FILE
    data = config_of_kind(checkpoint, KIND, "a language-model run")
    try:
        config = RunConfig.from_dict(data["run"])
        model_config = ModelConfig.from_dict(data["run"]["model"])
    except (KeyError, TypeError) as error:
        raise UserError(f"{where} is corrupt: missing or malformed {error}") from None
    except UserError as error:
        raise UserError(f"{where} is corrupt: {error}") from None
    try:
        tokenizer = tokenizer_from_dict(data.get("tokenizer"))
    except UserError as error:
        raise UserError(f"{where} is corrupt: {error}") from None
    if model_config.vocab_size != tokenizer.vocab_size:
        raise UserError(
            f"{where} is corrupt: the model has {model_config.vocab_size} tokens but the "
            f"saved vocabulary {tokenizer.vocab_size}"
        )
    try:
        model = LanguageModel(model_config)
    except UserError as error:
        raise UserError(f"{where} is corrupt: {error}") from None
    try:
        model.load_state_dict(checkpoint.tensors)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise UserError(
            f"{checkpoint.path}: the weights do not fit the saved configuration ({first_line})"
        ) from None
    model.eval()
    config.model = model_config
    return LanguageModelRun(model, tokenizer, config)


def load_run(path: str | Path, tag: str = "best") -> LanguageModelRun:
    """The model, tokenizer and config of a language-model run.

    ``path`` is a run folder (its ``tag`` checkpoint, ``best`` falling back to ``last``) or
    a checkpoint folder. A folder that is not a run, or whose files are missing or corrupt,
    raises :class:`rnnkit.errors.UserError` with a one-line message.
    """
    return run_from_checkpoint(load_checkpoint(path, tag, trainer_state=False))
