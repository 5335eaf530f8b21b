"""Loss of a language model on a token stream, with the state carried across batches."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from rnnkit.data.batching import StreamBatches
from rnnkit.models.language_model import LanguageModel


def evaluation_streams(tokens, batch_size: int) -> int:
    """How many streams evaluation cuts ``tokens`` into (fewer than asked if it is short)."""
    return max(1, min(batch_size, len(tokens) // 2))


def evaluate(model: LanguageModel, tokens, batch_size: int, seq_len: int) -> tuple[float, int]:
    """Mean cross-entropy in nats per token over ``tokens`` and the number of tokens scored.

    The stream is cut into ``batch_size`` streams (fewer if the text is short); each stream
    is read once, in order, with its state carried from window to window.
    """
    total, count = evaluate_sums(model, tokens, batch_size, seq_len)
    return total / count, count


@torch.no_grad()
def evaluate_sums(model: LanguageModel, tokens, batch_size: int, seq_len: int,
                  streams: range | None = None) -> tuple[float, int]:
    """Summed cross-entropy (nats) and tokens scored, over ``streams`` of the evaluation
    streams only when given (one rank's share; the sums of all ranks give the whole)."""
    batch_size = evaluation_streams(tokens, batch_size)
    if streams is not None and not len(streams):
        return 0.0, 0
    batches = StreamBatches(tokens, batch_size, seq_len, what="evaluation text", streams=streams)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for inputs, targets in batches:
            logits, state = model(inputs, state)  # (L, N, V)
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            total += loss.item()
            count += targets.numel()
    finally:
        model.train(was_training)
    return total, count
