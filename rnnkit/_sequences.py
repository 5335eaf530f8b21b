"""Packed and variable-length sequences, turned into a padded time-major batch and a mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


@dataclass
class Padded:
    """A padded time-major batch, in the order the recurrence runs (sorted, for packed input).

    ``mask`` is ``(T, N, 1)`` of 0/1 in the input's dtype, or None when every sequence has
    the full length; ``lengths`` is ``(N,)`` on the CPU or None likewise.
    """

    data: Tensor  # (T, N, I)
    mask: Tensor | None
    lengths: Tensor | None


def unpack(packed: PackedSequence) -> Padded:
    """PackedSequence -> padded ``(T, N, I)`` in its sorted order, with a mask."""
    batch_sizes = packed.batch_sizes  # (T,), decreasing, on the CPU
    steps, batch = len(batch_sizes), int(batch_sizes[0])
    valid = torch.arange(batch).unsqueeze(0) < batch_sizes.unsqueeze(1)  # (T, N) bool
    data = packed.data.new_zeros(steps, batch, packed.data.shape[-1])
    data = data.index_put((valid.to(data.device),), packed.data)  # differentiable scatter
    lengths = valid.sum(dim=0)
    if bool((lengths == steps).all()):
        return Padded(data, None, None)
    mask = valid.to(device=data.device, dtype=data.dtype).unsqueeze(-1)
    return Padded(data, mask, lengths)


def repack(output: Tensor, like: PackedSequence) -> PackedSequence:
    """Padded sorted ``(T, N, F)`` -> a PackedSequence with the same layout as ``like``."""
    batch_sizes = like.batch_sizes
    valid = torch.arange(output.shape[1]).unsqueeze(0) < batch_sizes.unsqueeze(1)  # (T, N)
    data = output[valid.to(output.device)]  # time-major then batch: the packed order
    return PackedSequence(data, batch_sizes, like.sorted_indices, like.unsorted_indices)


def reverse_index(lengths: Tensor | None, steps: int, batch: int, device) -> Tensor | None:
    """Per sequence, index ``t -> L_b - 1 - t`` inside its length and ``t -> t`` past it.

    None when all sequences are full length (then a plain flip reverses them). The map is its
    own inverse, so the same gather puts a reversed result back in time order.
    """
    if lengths is None:
        return None
    time = torch.arange(steps).unsqueeze(1)  # (T, 1)
    flipped = lengths.unsqueeze(0) - 1 - time  # (T, N)
    index = torch.where(time < lengths.unsqueeze(0), flipped, time.expand(steps, batch))
    return index.to(device)


def reverse_time(x: Tensor, index: Tensor | None) -> Tensor:
    """Reverse each sequence of a time-major ``(T, N, F)`` tensor inside its own length."""
    if index is None:
        return x.flip(0)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))
