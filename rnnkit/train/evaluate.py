"""Loss of a language model on a token stream, with the state carried across batches."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from rnnkit.data.batching import StreamBatches
from rnnkit.models.language_model import LanguageModel


@torch.no_grad()
def evaluate(model: LanguageModel, tokens, batch_size: int, seq_len: int) -> tuple[float, int]:
    """Mean cross-entropy in nats per token over ``tokens`` and the number of tokens scored.

    The stream is cut into ``batch_size`` streams (fewer if the text is short); each stream
    is read once, in order, with its state carried from window to window.
    """
    batch_size = max(1, min(batch_size, len(tokens) // 2))
    batches = StreamBatches(tokens, batch_size, seq_len, what="evaluation text")
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
    return total / count, count
