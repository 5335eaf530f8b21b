"""The three apps' networks as exportable modules, and their exported files run in onnxruntime.

Each wrapper has plain tensor inputs and outputs with named, dynamic batch (and length)
dimensions: the language model ``tokens (L, N)`` and its state in, ``logits`` and the new
state out; the classifier ``tokens (N, T)`` and ``lengths (N,)`` in (the lengths become the
recurrent node's ``sequence_lens``), ``logits (N, classes)`` out; the forecaster ``x (N, L, C)``
scaled, in, ``forecast (N, H, Q)`` out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class LanguageModelGraph(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.lstm = model.config.family.has_cell  # the state is (h, c)

    def forward(self, tokens: Tensor, h0: Tensor, c0: Tensor | None = None):
        state = (h0, c0) if self.lstm else h0
        logits, state = self.model(tokens, state)
        return (logits, *state) if self.lstm else (logits, state)

    def names(self):
        inputs = ["tokens", "h0"] + (["c0"] if self.lstm else [])
        outputs = ["logits", "h_n"] + (["c_n"] if self.lstm else [])
        return inputs, outputs

    def sample_inputs(self, tokens: Tensor):
        config = self.model.config
        h0 = torch.zeros(config.layers, tokens.shape[1], config.hidden)
        return (tokens, h0, torch.zeros_like(h0)) if self.lstm else (tokens, h0)

    def dynamic_shapes(self):
        time, batch = torch.export.Dim("time", min=1), torch.export.Dim("batch", min=1)
        shapes = ({0: time, 1: batch}, {1: batch})
        return (*shapes, {1: batch}) if self.lstm else shapes


class ClassifierGraph(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, lengths: Tensor):
        return self.model(tokens, lengths)

    def names(self):
        return ["tokens", "lengths"], ["logits"]

    def dynamic_shapes(self):
        batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=2)
        return ({0: batch, 1: time}, {0: batch})


class ForecasterGraph(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor):
        return self.model(x)

    def names(self):
        return ["x"], ["forecast"]

    def dynamic_shapes(self):
        return ({0: torch.export.Dim("batch", min=1)},)


class OnnxLanguageModel:
    """An exported language model that :func:`rnnkit.models.language_model.generate` and
    ``beam_search`` drive like the torch one: ``model(tokens, state) -> (logits, state)``."""

    def __init__(self, path, config) -> None:
        from rnnkit.onnx import session

        self.session = session(path)
        self.config = config
        self.lstm = config.family.has_cell

    def eval(self):
        return self

    def __call__(self, tokens: Tensor, state=None):
        if state is None:
            h0 = torch.zeros(self.config.layers, tokens.shape[1], self.config.hidden)
            state = (h0, torch.zeros_like(h0)) if self.lstm else h0
        feed = {"tokens": tokens.numpy().astype(np.int64)}
        if self.lstm:
            feed["h0"], feed["c0"] = state[0].numpy(), state[1].numpy()
        else:
            feed["h0"] = state.numpy()
        outputs = [torch.from_numpy(array) for array in self.session.run(None, feed)]
        return outputs[0], (tuple(outputs[1:]) if self.lstm else outputs[1])


class OnnxClassifier:
    """An exported classifier called like the torch one: ``model(tokens, lengths) -> logits``."""

    def __init__(self, path, config) -> None:
        from rnnkit.onnx import session

        self.session = session(path)
        self.config = config

    def eval(self):
        return self

    def __call__(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        feed = {"tokens": tokens.numpy().astype(np.int64),
                "lengths": lengths.numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run(None, feed)[0])
