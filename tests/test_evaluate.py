"""``evaluate()``, the source of every validation loss and perplexity, against a hand count.

The hand count reads each of the N contiguous streams (the text cut in N equal parts, the
remainder dropped) one token at a time, carrying the state from token to token as a user
would, and sums -log_softmax(logits)[next token] over every token but each stream's first;
evaluate()'s mean loss and token count must be exactly that sum over that count.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.models.language_model import LanguageModel, ModelConfig
from rnnkit.train.evaluate import evaluate

VOCAB = 13


def model_for(cell: str, **options) -> LanguageModel:
    config = ModelConfig(vocab_size=VOCAB, cell=cell, layers=2, hidden=10, embedding=6,
                         dropout=0.3, backend="reference", **options)
    torch.manual_seed(0)
    model = LanguageModel(config).double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # weights large enough that the state matters to the loss
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model


@torch.no_grad()
def hand_loss(model: LanguageModel, tokens: np.ndarray, streams: int) -> tuple[float, int]:
    model.eval()
    length = len(tokens) // streams
    total, count = 0.0, 0
    for stream in range(streams):
        text = [int(token) for token in tokens[stream * length:(stream + 1) * length]]
        state = None
        for current, following in zip(text, text[1:]):
            logits, state = model(torch.tensor([[current]]), state)  # one token: (1, 1, V)
            total -= logits[0, 0].log_softmax(-1)[following].item()
            count += 1
    return total / count, count


@pytest.mark.parametrize("cell, length, batch_size, seq_len, streams", [
    ("lstm", 61, 1, 7, 1),  # one stream, the last window shorter (60 targets = 8 x 7 + 4)
    ("lstm", 103, 4, 6, 4),  # 4 streams of 25, 3 tokens left over and not scored
    ("gru", 90, 3, 29, 3),  # windows exactly as long as the stream
    ("rnn", 50, 5, 1, 5),  # one token per window: the state carries everything
    ("lstm", 9, 8, 3, 4),  # more streams asked than the text allows: 9 // 2 = 4 streams
])
def test_evaluate_equals_the_token_by_token_cross_entropy(cell, length, batch_size, seq_len,
                                                          streams):
    model = model_for(cell)
    tokens = np.random.default_rng(length).integers(0, VOCAB, length).astype(np.uint16)
    model.train()
    loss, count = evaluate(model, tokens, batch_size, seq_len)
    assert model.training  # evaluate scores in eval mode and hands the model back as it was
    expected, expected_count = hand_loss(model, tokens, streams)
    assert count == expected_count == streams * (length // streams - 1)
    assert loss == pytest.approx(expected, rel=1e-12, abs=0)


def test_evaluate_is_eval_mode_with_the_variants_as_their_expectation():
    """Zoneout and dropout active in training must not touch the loss: the same number
    whether the model came in training or eval mode, and the hand count's."""
    model = model_for("lstm", zoneout=0.3, zoneout_cell=0.2, recurrent_dropout=0.25,
                      weight_drop=0.4)
    tokens = np.random.default_rng(0).integers(0, VOCAB, 80)
    torch.manual_seed(3)
    from_training = evaluate(model.train(), tokens, 2, 9)
    torch.manual_seed(4)
    from_eval = evaluate(model.eval(), tokens, 2, 9)
    assert from_training == from_eval
    expected, count = hand_loss(model, tokens, 2)
    assert from_eval[1] == count
    assert from_eval[0] == pytest.approx(expected, rel=1e-12, abs=0)


def test_the_state_carried_across_windows_matters():
    """The hand count with the state reset at every window differs: a evaluate() that lost
    its state between windows would fail the test above."""
    model = model_for("gru")
    tokens = np.random.default_rng(1).integers(0, VOCAB, 40)
    loss, _ = evaluate(model, tokens, 1, 4)
    with torch.no_grad():
        model.eval()
        total, count = 0.0, 0
        for start in range(0, 39, 4):
            window = torch.as_tensor(tokens[start:min(start + 5, 40)], dtype=torch.long)
            logits, _ = model(window[:-1, None])  # a fresh state in every window
            total -= logits[:, 0].log_softmax(-1).gather(1, window[1:, None]).sum().item()
            count += len(window) - 1
    assert count == 39
    assert abs(total / count - loss) > 1e-3
