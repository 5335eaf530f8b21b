"""``rnnkit explore`` for classifier and forecaster runs.

A classifier (``rnnkit classify train``): a text's class probabilities and each token's
contribution to the predicted class, gradient times input (the gradient of the predicted
class's logit with respect to the token's embedding, dotted with that embedding; Simonyan,
Vedaldi & Zisserman 2014, Shrikumar et al. 2017), and the recurrent layer's internals over it.

A forecaster (``rnnkit forecast train``): for one forecast origin of the run's series, the
history the model reads, its forecast with the quantile band, what really came, and the
encoder's gates over the lookback window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnkit.errors import UserError
from rnnkit.explore.analysis import (
    GATE_NAMES,
    ExploreBase,
    RequestError,
    rows_of,
    training_curves,
)


def internals_dict(direction, batch_first: bool) -> dict:
    cell = direction.cell
    return {"gates": {name: rows_of(value, batch_first).tolist()
                      for name, value in direction.gates.items()},
            "cell": None if cell is None else rows_of(cell, batch_first).tolist(),
            "hidden": rows_of(direction.hidden, batch_first).tolist()}


class ClassifierExplore(ExploreBase):
    kind = "classifier"

    def __init__(self, path: Path, run, *, max_chars: int = 5000) -> None:
        self.path, self.name = Path(path), Path(path).name
        self.run, self.model, self.encoder = run, run.model.eval(), run.encoder
        model = run.config.model
        self.layers, self.hidden, self.max_chars = model.layers, model.hidden, max_chars
        self.cell = model.cell
        pieces = self.encoder.tokens()
        self._pieces = pieces

    @classmethod
    def load(cls, path, *, max_chars: int = 5000) -> ClassifierExplore:
        from rnnkit.classify.run import load_classifier

        return cls(Path(path), load_classifier(path), max_chars=max_chars)

    def summary(self) -> dict:
        model = self.run.config.model
        return {"name": self.name, "kind": self.kind, "cell": self.cell, "layers": self.layers,
                "hidden": self.hidden, "directions": 2 if model.bidirectional else 1,
                "level": self.encoder.tokenizer.level, "vocab_size": self.encoder.vocab_size,
                "gates": GATE_NAMES[self.cell], "has_cell": self.cell == "lstm",
                "classes": self.run.classes, "max_chars": self.max_chars,
                "config": self.run.config.to_dict()}

    def ids(self, text) -> list[int]:
        return self.encoder.encode(self.check_text(text))

    def tokens(self, ids: list[int]) -> list[str]:
        return [self._pieces[token] for token in ids]

    def trace(self, text, layer) -> dict:
        """The recurrent layer's internals over ``text`` (forward direction), exactly."""
        layer = self.check_layer(layer)
        ids = self.ids(text)
        with torch.no_grad():
            first = self.model.singles()[0]  # an ensemble's first member
            embedded = first.embedding(torch.tensor([ids]))  # (1, T, E)
            _, _, internals = first.rnn(embedded, return_internals=True)
        return {"tokens": self.tokens(ids), **internals_dict(internals[layer][0], True)}

    def classify(self, text) -> dict:
        """Class probabilities and each token's contribution to the predicted class.

        A contribution is gradient x input of the token's embedding; with the bag of
        n-grams, each n-gram's row adds its own gradient x input, shared evenly among the
        tokens it spans.
        """
        ids = self.ids(text)
        tokens, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
        leaves = {}

        def make_leaf(name):
            def hook(module, inputs, output):
                leaves[name] = output.detach().requires_grad_(True)
                return leaves[name]
            return hook

        singles = self.model.singles()
        tables = []  # (member, which table, module): an ensemble's members all contribute
        for index, single in enumerate(singles):
            tables.append((index, "tokens", single.embedding))
            if single.config.ngrams:
                tables.append((index, "ngrams", single.ngram_embedding))
        handles = [module.register_forward_hook(make_leaf((index, name)))
                   for index, name, module in tables]
        try:
            with torch.enable_grad():
                logits = self.model(tokens, lengths)[0]
                predicted = int(logits.argmax())
                grads = torch.autograd.grad(logits[predicted],
                                            [leaves[(index, name)] for index, name, _ in tables])
        finally:
            for handle in handles:
                handle.remove()
        steps = len(ids)
        contributions = torch.zeros(steps)
        for (index, name, _), grad in zip(tables, grads):
            share = (grad[0] * leaves[(index, name)][0]).sum(dim=-1)
            if name == "tokens":
                contributions += share
                continue
            single = singles[index]
            share = share * single.ngram_ids(tokens, lengths)[1][0]  # real n-grams only
            for order in range(1, single.config.ngrams + 1):
                block = share[(order - 1) * steps:order * steps] / order
                for offset in range(min(order, steps)):  # token t + offset of the n-gram at t
                    contributions[offset:] += block[:steps - offset]
        probabilities = logits.detach().softmax(-1)
        return {"tokens": self.tokens(ids), "classes": self.run.classes,
                "probabilities": probabilities.tolist(),
                "predicted": self.run.classes[predicted],
                "contributions": contributions.tolist()}

    def health(self) -> dict:
        return {"curves": training_curves(self.path), "saturation": [], "gradient_flow": None,
                "source": ""}


class ForecasterExplore(ExploreBase):
    kind = "forecaster"

    def __init__(self, path: Path, run, *, max_chars: int = 5000) -> None:
        from rnnkit.forecast.run import ForecastData

        self.path, self.name = Path(path), Path(path).name
        self.run, self.model = run, run.model.eval()
        model = run.config.model
        self.layers, self.hidden, self.max_chars = model.layers, model.hidden, max_chars
        self.cell = model.cell
        try:
            self.data = ForecastData(run.config, scaler=run.scaler)
        except (UserError, OSError) as error:  # the series moved: the run still loads
            self.data, self.missing = None, str(error).splitlines()[0]

    @classmethod
    def load(cls, path, *, max_chars: int = 5000) -> ForecasterExplore:
        from rnnkit.forecast.run import load_forecast

        return cls(Path(path), load_forecast(path), max_chars=max_chars)

    def summary(self) -> dict:
        model = self.run.config.model
        origins = self.data.origins if self.data is not None else {}
        return {"name": self.name, "kind": self.kind, "cell": self.cell, "layers": self.layers,
                "hidden": self.hidden, "directions": 1, "gates": GATE_NAMES[self.cell],
                "has_cell": self.cell == "lstm", "lookback": model.lookback,
                "horizon": model.horizon, "quantiles": model.quantiles,
                "target": self.run.config.data.target, "max_chars": self.max_chars,
                "origins": {part: [values[0], values[-1]] if values else None
                            for part, values in origins.items()},
                "series_length": None if self.data is None else len(self.data.series),
                "config": self.run.config.to_dict()}

    def _window(self, origin) -> tuple[int, torch.Tensor]:
        if self.data is None:
            raise RequestError(f"the run's series is not here: {self.missing}", status=404)
        lookback, length = self.run.config.model.lookback, len(self.data.series)
        if isinstance(origin, bool) or not isinstance(origin, int) \
                or not lookback <= origin <= length:
            raise RequestError(f"'origin' must be a step from {lookback} (the lookback) to "
                               f"{length} (the end of the series)")
        window = self.data.scaled[origin - lookback: origin].astype(np.float32)
        return origin, torch.from_numpy(window).unsqueeze(0)  # (1, L, C)

    def _encoder_internals(self, inputs: torch.Tensor):
        """The encoder's internals on exactly the input the model gives it (window norm
        applied), caught with a pre-hook rather than recomputed here."""
        seen = {}
        handle = self.model.encoder.register_forward_pre_hook(
            lambda module, args: seen.setdefault("x", args[0]))
        try:
            with torch.no_grad():
                output = self.model(inputs)
                _, _, internals = self.model.encoder(seen["x"], return_internals=True)
        finally:
            handle.remove()
        return output, internals

    def trace(self, origin, layer) -> dict:
        layer = self.check_layer(layer)
        origin, inputs = self._window(origin)
        _, internals = self._encoder_internals(inputs)
        lookback = inputs.shape[1]
        return {"tokens": [str(step) for step in range(origin - lookback, origin)],
                **internals_dict(internals[layer][0], True)}

    def forecast(self, origin, layer) -> dict:
        layer = self.check_layer(layer)
        origin, inputs = self._window(origin)
        output, internals = self._encoder_internals(inputs)
        model, scaler = self.run.config.model, self.run.scaler
        band = scaler.inverse_target(output[0].numpy())  # (H, Q)
        target = self.data.series.target
        horizon, lookback = model.horizon, model.lookback
        gates = {name: rows_of(value, True).mean(axis=1).tolist()
                 for name, value in internals[layer][0].gates.items()}
        return {"origin": origin, "history": target[origin - lookback: origin].tolist(),
                "actual": target[origin: origin + horizon].tolist(),
                "point": band[:, model.median_index].tolist(),
                "quantiles": {str(q): band[:, i].tolist() for i, q in enumerate(model.quantiles)},
                "gates": gates}

    def health(self) -> dict:
        return {"curves": training_curves(self.path), "saturation": [], "gradient_flow": None,
                "source": ""}
