"""Gate traces on text, text features, cell-feature correlations and saturation, on a tiny
character model built here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit import GRU, LSTM
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.diagnostics import text

PASSAGE = 'He said "go (now)" and\nleft, "fast".\nThen (quiet) sleep.\n'


class TinyCharModel(nn.Module):
    """The generic interface: an embedding and an rnnkit layer somewhere inside."""

    def __init__(self, vocab: int, layer: nn.Module) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 6)
        self.body = nn.Sequential(layer)


@pytest.fixture
def tokenizer():
    return CharTokenizer.train([PASSAGE])


def test_trace_matches_the_layer_run_directly(tokenizer):
    torch.manual_seed(0)
    model = TinyCharModel(tokenizer.vocab_size, LSTM(6, 8, num_layers=2, backend="reference"))
    traced = text.trace(model, tokenizer, PASSAGE, layer=0)
    assert traced.tokens == list(PASSAGE)
    ids = torch.tensor(tokenizer.encode(PASSAGE)).unsqueeze(1)
    with torch.no_grad():
        _, _, internals = model.body[0](model.embedding(ids), return_internals=True)
    np.testing.assert_allclose(traced.cell, internals[0][0].cell[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(traced.gates["forget"], internals[0][0].gates["forget"][:, 0])
    np.testing.assert_allclose(traced.activations, np.tanh(traced.cell))
    top = text.trace(model, tokenizer, PASSAGE)  # default: the last layer
    np.testing.assert_allclose(top.hidden, internals[1][0].hidden[:, 0].numpy(), rtol=1e-6)


def test_text_features_by_hand():
    features = text.text_features(list('a "b" (c)\nde'))
    #                                  a _ " b " _ ( c ) \n d e
    assert features["inside quotes"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert features["inside brackets"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert features["position in line"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert features["start of word"].tolist() == [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0]


def test_correlations_equal_numpy_and_find_a_planted_cell(tokenizer):
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(50, 4))
    feature = rng.normal(size=50)
    expected = [np.corrcoef(activations[:, unit], feature)[0, 1] for unit in range(4)]
    np.testing.assert_allclose(text.correlations(activations, feature), expected, rtol=1e-10)
    constant = np.ones((50, 1))
    assert text.correlations(constant, feature)[0] == 0.0

    tokens = list(PASSAGE)
    quotes = text.text_features(tokens)["inside quotes"]
    hidden = rng.normal(scale=0.3, size=(len(tokens), 5))
    hidden[:, 3] = 2 * quotes - 1 + rng.normal(scale=0.05, size=len(tokens))  # a quote cell
    trace = text.TextTrace(tokens=tokens, hidden=hidden, cell=None, gates={})
    best = text.best_cells(trace, count=2)
    assert best["inside quotes"][0][0] == 3 and best["inside quotes"][0][1] > 0.95


def test_saturation_shares(tokenizer):
    forget = np.array([[0.05, 0.5], [0.95, 0.95], [0.5, 0.02], [0.91, 0.5]])
    trace = text.TextTrace(tokens=list("abcd"), hidden=np.zeros((4, 2)), cell=np.zeros((4, 2)),
                           gates={"forget": forget, "cell": forget})
    stats = text.saturation(trace)
    assert set(stats) == {"forget"}  # the candidate is no gate
    assert stats["forget"]["below_0.1"] == pytest.approx(2 / 8)
    assert stats["forget"]["above_0.9"] == pytest.approx(3 / 8)
    assert stats["forget"]["left"] == [0.25, 0.25] and stats["forget"]["right"] == [0.5, 0.25]


def test_gru_trace_and_missing_layer(tokenizer):
    torch.manual_seed(0)
    model = TinyCharModel(tokenizer.vocab_size, GRU(6, 5, backend="reference"))
    traced = text.trace(model, tokenizer, "said")
    assert traced.cell is None and set(traced.gates) == {"reset", "update", "new"}
    assert traced.activations.shape == (4, 5)
    with pytest.raises(ValueError, match="holds no rnnkit recurrent layer"):
        text.recurrent_layer(nn.Linear(2, 2))
