"""Shared test helpers: twin torch.nn / rnnkit layers with copied weights, and comparisons."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit

TORCH_CLASSES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
RNNKIT_CLASSES = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "RNN": rnnkit.RNN}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def twin_layers(mode: str, dtype=torch.float64, seed: int = 0, backend="reference", **kwargs):
    """A torch.nn layer and an rnnkit layer with the same weights (copied via state_dict)."""
    torch.manual_seed(seed)
    reference = TORCH_CLASSES[mode](**kwargs).to(dtype)
    ours = RNNKIT_CLASSES[mode](**kwargs, backend=backend).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def states_of(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def output_tensor(output):
    return output.data if isinstance(output, PackedSequence) else output


def weighted_loss(output, state, weights) -> torch.Tensor:
    """A loss that reaches every output and every final state with distinct weights."""
    tensors = (output_tensor(output),) + states_of(state)
    return sum((t * w).sum() for t, w in zip(tensors, weights))


def assert_close(actual, expected, dtype, what: str) -> None:
    tolerance = TOLERANCE[dtype]
    torch.testing.assert_close(
        actual, expected, rtol=tolerance, atol=tolerance, msg=lambda m: f"{what}: {m}"
    )


def make_input(steps, batch, features, dtype, batch_first, packing, generator):
    """(input for the layers, leaf tensor to differentiate against)."""
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    leaf = torch.randn(shape, dtype=dtype, generator=generator).requires_grad_(True)
    if packing == "padded":
        return leaf, leaf
    if packing == "sorted":
        lengths = torch.sort(
            torch.randint(1, steps + 1, (batch,), generator=generator), descending=True
        ).values
        lengths[0] = steps
        return pack_padded_sequence(leaf, lengths, batch_first=batch_first), leaf
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[int(torch.randint(batch, (1,), generator=generator))] = steps
    return pack_padded_sequence(leaf, lengths, batch_first=batch_first, enforce_sorted=False), leaf
