"""What ``rnnkit explore`` computes for a language-model run, from the layers' internals.

One :class:`ExploreRun` wraps a loaded run (:func:`rnnkit.train.runs.load_run`). Its
:meth:`ExploreRun.analyse` runs a text through the model once with
``forward(..., return_internals=True)`` and keeps every layer's gates, ``c_t`` and ``h_t``
(forward direction) and the next-token log-probabilities; the views read from that. The
numbers are the internals themselves (float32, unrounded), so ``/api/trace`` can be checked
against the layer. Connectivity (Madsen 2019, "Visualizing memorization in RNNs", Distill) is
the norm of the gradient of one prediction with respect to each earlier token's embedding.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.tokenizers import END_OF_LINE
from rnnkit.diagnostics import text as text_diagnostics
from rnnkit.errors import UserError
from rnnkit.models.language_model import filter_logits

TOP_K = 5
HISTOGRAM_BINS = 20
CACHE_SIZE = 4


class RequestError(UserError):
    """A request the server refuses with a 4xx status and a one-line message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Analysis:
    """One text through the model: per layer, arrays of ``(L, H)`` (one row per token)."""

    ids: list[int]
    tokens: list[str]
    spans: list[tuple[int, int]]  # each token's characters in ``display``
    display: str  # the tokens joined as the page shows them (word level: spaces between)
    gates: list[dict[str, np.ndarray]]
    cell: list[np.ndarray | None]
    hidden: list[np.ndarray]
    log_probs: np.ndarray  # (L, V): log p(next token | tokens up to t)

    def surprise(self) -> list[float | None]:
        """-log p(token_t | tokens before it) in nats; None for the first token."""
        following = np.asarray(self.ids[1:])
        values = -self.log_probs[np.arange(len(following)), following]
        return [None, *values.tolist()]

    def quantity(self, name: str, layer: int) -> np.ndarray:
        """``(L, H)`` values of a gate, "cell" (c_t), "hidden" (h_t) or "activation"
        (tanh(c_t) for the LSTM, else h_t) of ``layer``."""
        if name == "hidden":
            return self.hidden[layer]
        if name in ("cell", "activation") and self.cell[layer] is not None:
            return self.cell[layer] if name == "cell" else np.tanh(self.cell[layer])
        if name == "activation":
            return self.hidden[layer]
        if name in self.gates[layer]:
            return self.gates[layer][name]
        known = sorted(self.gates[layer]) + ["hidden", "activation"]
        if self.cell[layer] is not None:
            known.append("cell")
        raise RequestError(f"quantity {name!r} is not one of this layer's: {', '.join(known)}"
                           " (or 'surprise')")


def token_pieces(vocab_pieces: list[str], ids: list[int], word_level: bool
                 ) -> tuple[list[str], list[tuple[int, int]], str]:
    """Each token as text (``vocab_pieces[id]``), its span in the joined text, and the joined
    text (word level: a space between words, none around a line break)."""
    pieces, spans, position = [], [], 0
    for index, token in enumerate(ids):
        piece = vocab_pieces[token]
        if word_level and piece != "\n" and index > 0 and pieces[-1] != "\n":
            position += 1  # the space before a word
        pieces.append(piece)
        spans.append((position, position + len(piece)))
        position += len(piece)
    display = [" "] * position
    for piece, (start, end) in zip(pieces, spans):
        display[start:end] = list(piece)
    return pieces, spans, "".join(display)


GATE_NAMES = {"lstm": ["input", "forget", "cell", "output"], "gru": ["reset", "update", "new"],
              "rnn": []}


def training_curves(path: Path) -> dict:
    """Training loss and validation loss against the step, from the run's metrics.jsonl."""
    from rnnkit.train.metrics import read_metrics

    records = read_metrics(path) if path.is_dir() else []
    return {"train": [[r["step"], r["loss"]] for r in records
                      if r.get("kind") == "train" and "loss" in r],
            "validation": [[r["step"], r["val_loss"]] for r in records
                           if r.get("kind") == "eval" and "val_loss" in r]}


def rows_of(tensor, batch_first: bool) -> np.ndarray:
    """One sequence's ``(L, 1, H)`` or ``(1, L, H)`` internals as ``(L, H)``."""
    return (tensor[0] if batch_first else tensor[:, 0]).detach().numpy()


class ExploreBase:
    """What every kind of run shares: its name, layer count and the request checks."""

    kind: str
    max_chars: int
    layers: int
    hidden: int

    def check_text(self, text) -> str:
        if not isinstance(text, str):
            raise RequestError("'text' must be a string")
        if not text:
            raise RequestError("'text' is empty: type some text to trace")
        if len(text) > self.max_chars:
            raise RequestError(f"'text' has {len(text)} characters; the limit is "
                               f"{self.max_chars} (start the server with --max-chars to change "
                               "it)", status=413)
        return text

    def check_layer(self, layer) -> int:
        layers = self.layers
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise RequestError(f"'layer' must be an integer from 0 to {layers - 1}")
        if not 0 <= layer < layers:
            raise RequestError(f"layer {layer} does not exist: the model has {layers} "
                               f"layer(s), 0 to {layers - 1}")
        return layer

    def check_unit(self, unit) -> int:
        hidden = self.hidden
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < hidden:
            raise RequestError(f"'unit' must be an integer from 0 to {hidden - 1}")
        return unit


class ExploreRun(ExploreBase):
    """A loaded language-model run and a small cache of analysed texts."""

    kind = "language_model"

    def __init__(self, path: Path, model, tokenizer, config, *, max_chars: int = 5000) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.max_chars = max_chars
        self.layers, self.hidden = config.model.layers, config.model.hidden
        self.layer = text_diagnostics.recurrent_layer(model)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Analysis] = OrderedDict()
        self._pieces = ["\n" if symbol == END_OF_LINE else tokenizer.decode([index])
                        for index, symbol in enumerate(tokenizer.vocab)]

    @classmethod
    def load(cls, path: str | Path, *, max_chars: int = 5000) -> ExploreRun:
        from rnnkit.train.runs import load_run

        model, tokenizer, config = load_run(path)  # safetensors and JSON: nothing unpickled
        return cls(Path(path), model, tokenizer, config, max_chars=max_chars)

    # -- the run ---------------------------------------------------------------------------
    def gate_names(self) -> list[str]:
        return GATE_NAMES[self.config.model.cell]

    def summary(self) -> dict:
        model = self.config.model
        return {
            "name": self.name, "kind": self.kind, "cell": model.cell,
            "layers": model.layers, "hidden": model.hidden, "directions": 1,
            "level": self.tokenizer.level, "vocab_size": self.tokenizer.vocab_size,
            "gates": self.gate_names(), "has_cell": model.cell == "lstm",
            "max_chars": self.max_chars, "config": self.config.to_dict(),
        }

    def validation_text(self, chars: int = 2000) -> str:
        """The last tenth of the run's corpus (where its validation text is), if it is here."""
        path = getattr(self.config.data, "path", "") or ""
        return text_diagnostics.corpus_passage(Path(path), chars) if path else ""

    def encode(self, text: str) -> list[int]:
        try:
            ids = self.tokenizer.encode(text)
        except UserError as error:  # characters outside a character-level vocabulary
            raise RequestError(str(error).splitlines()[0]) from None
        if not ids:
            raise RequestError("the text has no tokens (only spaces?)")
        return ids

    # -- forward ---------------------------------------------------------------------------
    def analyse(self, text: str) -> Analysis:
        """Every layer's internals and the next-token log-probabilities over ``text``."""
        text = self.check_text(text)
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
            ids = self.encode(text)
            with torch.no_grad():
                logits, _, internals = self.model(torch.tensor(ids).unsqueeze(1),
                                                  return_internals=True)
            def rows(tensor):
                return rows_of(tensor, batch_first=False)

            pieces, spans, display = token_pieces(self._pieces, ids,
                                                  self.tokenizer.level == "word")
            analysis = Analysis(
                ids=ids, tokens=pieces, spans=spans, display=display,
                gates=[{name: rows(value) for name, value in layer[0].gates.items()}
                       for layer in internals],
                cell=[None if layer[0].cell is None else rows(layer[0].cell)
                      for layer in internals],
                hidden=[rows(layer[0].hidden) for layer in internals],
                log_probs=torch.log_softmax(logits[:, 0], dim=-1).numpy(),
            )
            self._cache[text] = analysis
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            return analysis

    def check_units(self, units) -> list[int] | slice:
        """``None`` (every unit) or a list of unit indices."""
        if units is None:
            return slice(None)
        if not isinstance(units, list) or not units:
            raise RequestError("'units' must be a non-empty list of unit indices")
        return [self.check_unit(unit) for unit in units]

    def trace(self, text: str, layer: int, units=None) -> dict:
        """The ``/api/trace`` answer: ``layer``'s forward-direction internals, exactly
        (only the columns of ``units`` when given)."""
        layer = self.check_layer(layer)
        columns = self.check_units(units)
        analysis = self.analyse(text)
        cell = analysis.cell[layer]
        return {"tokens": analysis.tokens,
                "gates": {name: value[:, columns].tolist()
                          for name, value in analysis.gates[layer].items()},
                "cell": None if cell is None else cell[:, columns].tolist(),
                "hidden": analysis.hidden[layer][:, columns].tolist()}

    def piece(self, token: int) -> str:
        """One token id as the page shows it (``<eos>`` as a line break)."""
        return self._pieces[token]

    def top_next(self, analysis: Analysis, positions=None, k: int = TOP_K) -> list[list]:
        """Per position, the ``k`` likeliest next tokens as ``[piece, probability]``."""
        log_probs = torch.from_numpy(analysis.log_probs)
        if positions is not None:
            log_probs = log_probs[positions]
        values, indices = log_probs.topk(min(k, log_probs.shape[-1]), dim=-1)
        pieces = self._pieces
        chances = values.exp().round(decimals=6)  # shown to 3 decimals; shorter JSON
        return [[[pieces[token], probability] for token, probability in zip(row, row_chances)]
                for row, row_chances in zip(indices.tolist(), chances.tolist())]

    def colour(self, text: str, quantity: str, layer: int, unit: int) -> dict:
        """What the Text view paints: one value per token, the surprise, the top-k next."""
        layer = self.check_layer(layer)
        analysis = self.analyse(text)
        surprise = analysis.surprise()
        if quantity == "surprise":
            values, scale = surprise, "surprise"
        else:
            unit = self.check_unit(unit)
            values = analysis.quantity(quantity, layer)[:, unit].tolist()
            scale = "gate" if quantity in analysis.gates[layer] and quantity not in ("cell",
                                                                                       "new") \
                else "signed"
        return {"tokens": analysis.tokens, "values": values, "scale": scale,
                "surprise": surprise,
                "top": self.top_next(analysis)}

    def token(self, text: str, layer: int, position) -> dict:
        """Hover: one token's gates, c_t and h_t (all units), its top-k next tokens and its
        connectivity to every earlier token."""
        layer = self.check_layer(layer)
        analysis = self.analyse(text)
        if isinstance(position, bool) or not isinstance(position, int) \
                or not 0 <= position < len(analysis.ids):
            raise RequestError(f"'position' must be a token index from 0 to "
                               f"{len(analysis.ids) - 1}")
        cell = analysis.cell[layer]
        return {"position": position, "token": analysis.tokens[position],
                "gates": {name: value[position].tolist()
                          for name, value in analysis.gates[layer].items()},
                "cell": None if cell is None else cell[position].tolist(),
                "hidden": analysis.hidden[layer][position].tolist(),
                "top": self.top_next(analysis, [position])[0],
                # an exploding gradient can overflow float32 far back: null there
                "connectivity": finite(self.connectivity(analysis, position))}

    def connectivity(self, analysis: Analysis, position: int) -> list[float]:
        """||d log p(most likely next token) / d embedding of token s|| for s <= position."""
        target = int(np.argmax(analysis.log_probs[position]))
        ids = torch.tensor(analysis.ids[: position + 1]).unsqueeze(1)
        with self._lock, torch.enable_grad():
            embedded = self.model.embedding(ids).detach().requires_grad_(True)
            output, _ = self.layer(embedded)
            log_prob = torch.log_softmax(self.model.decoder(output[-1, 0]), dim=-1)[target]
            (grad,) = torch.autograd.grad(log_prob, embedded)
        return grad[:, 0].norm(dim=-1).tolist()

    # -- units -----------------------------------------------------------------------------
    def hypothesis(self, text: str, pattern: str, layer: int, quantity: str,
                   count: int = 8) -> dict:
        """Units ranked by |Pearson r| between their values and "this token is inside a match
        of ``pattern``"."""
        layer = self.check_layer(layer)
        if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
            raise RequestError("'pattern' must be a regular expression of 1 to 200 characters")
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise RequestError(f"'pattern' is not a regular expression: {error}") from None
        analysis = self.analyse(text)
        inside = np.zeros(len(analysis.display), dtype=bool)
        for match in compiled.finditer(analysis.display):
            inside[match.start():max(match.end(), match.start() + 1)] = True
        feature = np.array([float(inside[start:end].any()) if end > start else 0.0
                            for start, end in analysis.spans])
        values = analysis.quantity(quantity, layer)
        if feature.std() == 0:
            raise RequestError("the pattern matches every token or none of them: nothing to "
                               "correlate with")
        r = text_diagnostics.correlations(values.astype(np.float64), feature)
        order = np.argsort(-np.abs(r))[:count]
        return {"tokens": analysis.tokens, "feature": feature.tolist(),
                "units": [{"unit": int(unit), "r": float(r[unit]),
                           "values": values[:, unit].tolist()} for unit in order]}

    def match(self, text: str, start, end, threshold, layer: int, quantity: str,
              against: str) -> dict:
        """LSTMVis's select-and-match (Strobelt et al. 2018): the units above ``threshold``
        on every token of ``[start, end)``, and the spans of ``against`` where all of them
        are on together, longest first."""
        layer = self.check_layer(layer)
        analysis = self.analyse(text)
        count = len(analysis.ids)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) \
                or not 0 <= start < end <= count:
            raise RequestError(f"'start' and 'end' must be token indices with 0 <= start < "
                               f"end <= {count}")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise RequestError("'threshold' must be a number")
        values = analysis.quantity(quantity, layer)
        units = np.flatnonzero((values[start:end] > threshold).all(axis=0))
        other = self.analyse(against or text)
        spans = []
        if len(units):
            on = (other.quantity(quantity, layer)[:, units] > threshold).all(axis=1)
            begin = None
            for index, flag in enumerate([*on.tolist(), False]):
                if flag and begin is None:
                    begin = index
                elif not flag and begin is not None:
                    spans.append((begin, index))
                    begin = None
            spans.sort(key=lambda span: (-(span[1] - span[0]), span[0]))
        return {"units": units.tolist(), "selected": "".join(analysis.tokens[start:end]),
                "tokens": other.tokens,
                "spans": [{"start": a, "end": b, "text": "".join(other.tokens[a:b])}
                          for a, b in spans[:20]]}

    # -- sampling --------------------------------------------------------------------------
    def sample(self, prime: str, length: int, temperature: float, top_k: int, top_p: float,
               layer: int, seed: int | None):
        """Yield ``{"token", "gates"}`` per generated token: the text piece and, per gate of
        ``layer``, its mean over units at that step."""
        layer = self.check_layer(layer)
        ids = self.encode(self.check_text(prime or "\n"))
        generator = torch.Generator()
        generator.manual_seed(seed) if seed is not None else generator.seed()
        state = None
        tokens = torch.tensor(ids).unsqueeze(1)
        for _ in range(length):
            with self._lock, torch.no_grad():
                logits, state, internals = self.model(tokens, state, return_internals=True)
            direction = internals[layer][0]
            gates = {name: float(value[-1, 0].mean()) for name, value in direction.gates.items()}
            filtered = filter_logits(logits[-1, 0] / temperature, top_k, top_p)
            token = int(torch.multinomial(filtered.softmax(-1), 1, generator=generator))
            piece = self.piece(token)
            if self.tokenizer.level == "word" and piece != "\n":
                piece = " " + piece
            yield {"token": piece, "gates": gates}
            tokens = torch.tensor([[token]])

    # -- health ----------------------------------------------------------------------------
    def health(self) -> dict:
        """Training curves, gate saturation per layer and gradient flow over the validation
        passage (or a stretch of the model's own sample when the corpus is not here)."""
        from rnnkit.diagnostics.run_report import passage_gradient_flow

        curves = training_curves(self.path)
        passage = self.validation_text(400)
        source = "the run's validation text"
        if not passage:
            passage = "".join(piece["token"] for piece in
                              self.sample("\n", 400, 1.0, 0, 1.0, 0, seed=0))
            source = "a sample of the model (the corpus is not here)"
        saturation, histograms = [], []
        with self._lock:
            for layer in range(self.config.model.layers):
                trace = text_diagnostics.trace(self.model, self.tokenizer, passage, layer)
                stats = text_diagnostics.saturation(trace)
                saturation.append(stats)
                # the distribution of each gate's values over all units and steps, 20 bins
                histograms.append({name: np.histogram(trace.gates[name], bins=HISTOGRAM_BINS,
                                                      range=(0.0, 1.0))[0].tolist()
                                   for name in stats})
            flow = passage_gradient_flow(self.model, self.tokenizer, passage, self.name) \
                if len(self.encode(passage)) > 2 else None
        return {"curves": curves, "saturation": saturation, "histograms": histograms,
                "source": source,
                "gradient_flow": None if flow is None else finite(flow.to_dict())}


def finite(value):
    """``value`` with every infinite or NaN float replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
