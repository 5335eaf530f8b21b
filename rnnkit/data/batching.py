"""Contiguous streams for truncated backpropagation through time.

The token sequence is cut into ``batch_size`` equal streams laid side by side, as in
char-rnn and pytorch/examples word_language_model: batch ``i`` holds, for every stream, the
``seq_len`` tokens after the ``i``-th window, so the state at the end of one batch is the
right state to start the next. Batches are read from the (memmapped) token array on demand.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.errors import UserError


class StreamBatches:
    """Batches ``(inputs, targets)`` of shape ``(L, N)`` over ``N = batch_size`` streams.

    Arguments:
        tokens: a 1-D array of token ids (a numpy memmap is read lazily).
        batch_size: the number of streams ``N``.
        seq_len: the truncation length ``L``; the last batch of a pass may be shorter.
        what: names the data in error messages.
        streams: read only these of the ``batch_size`` streams (one rank's block under
            distributed training); the batches are then ``(L, len(streams))``.
    """

    def __init__(self, tokens, batch_size: int, seq_len: int, what: str = "training data",
                 streams: range | None = None):
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.streams = range(batch_size) if streams is None else streams
        self.stream_length = len(tokens) // batch_size
        if self.stream_length < 2:
            raise UserError(
                f"the {what} has {len(tokens)} tokens, too few for {batch_size} streams "
                f"(at least {2 * batch_size} needed); lower --batch-size or give more text"
            )

    def __len__(self) -> int:
        # each stream yields stream_length - 1 (input, target) pairs
        return -(-(self.stream_length - 1) // self.seq_len)

    @property
    def tokens_per_pass(self) -> int:
        return (self.stream_length - 1) * self.batch_size

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``index``-th batch: inputs and next-token targets, both ``(L, N)`` int64."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        start = index * self.seq_len
        stop = min(start + self.seq_len + 1, self.stream_length)
        offsets = [stream * self.stream_length for stream in self.streams]
        rows = [np.asarray(self.tokens[offset + start : offset + stop]) for offset in offsets]
        window = torch.from_numpy(np.stack(rows).astype(np.int64)).t().contiguous()  # (L+1, N)
        return window[:-1], window[1:]

    def __iter__(self):
        for index in range(len(self)):
            yield self.batch(index)


def check_one_batch(tokens, batch_size: int, seq_len: int) -> None:
    """Refuse a training stream too short for one full batch of ``batch_size x seq_len``."""
    needed = batch_size * (seq_len + 1)
    if len(tokens) < needed:
        raise UserError(
            f"the training text has {len(tokens)} tokens, shorter than one batch "
            f"(--batch-size {batch_size} x (--seq-len {seq_len} + 1) = {needed}); give more "
            f"text or lower --batch-size / --seq-len"
        )
