"""Gate traces on text: what a trained language model's gates and cells do, character by
character (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent
Networks", arXiv 1506.02078).

Works with any model that has an ``embedding`` and an rnnkit recurrent layer (``rnn``, or the
first one found), and any tokenizer with ``encode``/``decode``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rnnkit.layers import RecurrentLayer

SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9
FEATURES = ("inside quotes", "inside brackets", "position in line", "start of word")


@dataclass
class TextTrace:
    """One layer over one passage. Arrays are ``(L, H)``: one row per token."""

    tokens: list[str]
    hidden: np.ndarray
    cell: np.ndarray | None  # the LSTM's c_t
    gates: dict[str, np.ndarray]

    @property
    def activations(self) -> np.ndarray:
        """What a "cell" shows: tanh(c_t) for the LSTM (in [-1, 1]), else h_t."""
        return np.tanh(self.cell) if self.cell is not None else self.hidden


def recurrent_layer(model: nn.Module) -> nn.Module:
    layer = getattr(model, "rnn", None)
    if isinstance(layer, RecurrentLayer):
        return layer
    for module in model.modules():
        if isinstance(module, RecurrentLayer):
            return module
    raise ValueError(f"{type(model).__name__} holds no rnnkit recurrent layer")


@torch.no_grad()
def trace(model: nn.Module, tokenizer, text: str, layer: int = -1) -> TextTrace:
    """Run ``text`` through ``model.embedding`` and its recurrent layer; keep ``layer``'s
    states and gates (forward direction)."""
    ids = tokenizer.encode(text)
    if not ids:
        raise ValueError("the passage has no tokens")
    recurrent = recurrent_layer(model)
    was_training = model.training
    model.eval()
    tokens = torch.tensor(ids).unsqueeze(1)  # (L, 1)
    if recurrent.batch_first:
        tokens = tokens.T
    _, _, internals = recurrent(model.embedding(tokens), return_internals=True)
    model.train(was_training)
    chosen = internals[layer][0]

    def rows(tensor):  # (L, 1, H) or (1, L, H) -> (L, H)
        return tensor.squeeze(0 if recurrent.batch_first else 1).numpy().astype(np.float64)

    return TextTrace(
        tokens=[tokenizer.decode([token]) for token in ids],
        hidden=rows(chosen.hidden),
        cell=None if chosen.cell is None else rows(chosen.cell),
        gates={name: rows(value) for name, value in chosen.gates.items()},
    )


def text_features(tokens: list[str]) -> dict[str, np.ndarray]:
    """Per token, simple features of the text it sits in (read at its first character):
    inside double quotes, inside () [] {}, characters since the line began, start of a word."""
    quotes = brackets = column = 0
    previous = "\n"
    values = {name: [] for name in FEATURES}
    for token in tokens:
        first = True
        for character in token or " ":
            if first:
                values["inside quotes"].append(float(quotes % 2 == 1))
                values["inside brackets"].append(float(brackets > 0))
                values["position in line"].append(float(column))
                values["start of word"].append(
                    float(character.isalnum() and not previous.isalnum()))
                first = False
            if character == '"':
                quotes += 1
            elif character in "([{":
                brackets += 1
            elif character in ")]}":
                brackets = max(0, brackets - 1)
            column = 0 if character == "\n" else column + 1
            previous = character
    return {name: np.asarray(value) for name, value in values.items()}


def correlations(activations: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit ``(L, H)`` with ``feature (L,)``; 0 where either is
    constant."""
    centred = activations - activations.mean(axis=0)
    target = feature - feature.mean()
    denominator = np.sqrt((centred**2).sum(axis=0) * (target**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (centred * target[:, None]).sum(axis=0) / denominator
    return np.nan_to_num(result, nan=0.0, posinf=0.0, neginf=0.0)


def best_cells(trace_: TextTrace, count: int = 3) -> dict[str, list[tuple[int, float]]]:
    """Per feature, the ``count`` units whose activation best tracks it: ``[(unit, r), ...]``
    by |r|, strongest first. Features constant over the passage are left out."""
    found = {}
    for name, feature in text_features(trace_.tokens).items():
        if feature.std() == 0:
            continue
        r = correlations(trace_.activations, feature)
        order = np.argsort(-np.abs(r))[:count]
        found[name] = [(int(unit), float(r[unit])) for unit in order]
    return found


def saturation(trace_: TextTrace) -> dict[str, dict]:
    """Per gate: share of all values below 0.1 and above 0.9, and the same per unit
    (``left``/``right`` lists), as in Karpathy et al. 2015, figure 3. The GRU's candidate
    ("new", a tanh) and the LSTM's "cell" candidate are not gates and are left out."""
    stats = {}
    for name, values in trace_.gates.items():
        if name in ("cell", "new"):
            continue
        low, high = values < SATURATION_LOW, values > SATURATION_HIGH
        stats[name] = {"below_0.1": float(low.mean()), "above_0.9": float(high.mean()),
                       "left": low.mean(axis=0).tolist(), "right": high.mean(axis=0).tolist()}
    return stats


def corpus_passage(path, chars: int) -> str:
    """``chars`` characters from the last tenth of a corpus file (where a run's validation
    text usually is), from a line start; "" when the file is not there."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    start = text.find("\n", int(len(text) * 0.9)) + 1
    return text[start : start + chars] or text[:chars]
