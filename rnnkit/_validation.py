"""Checks on constructor arguments and forward inputs, with messages that say what to do."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor


def shape_text(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: `{name}` must be a positive integer, got {value!r}")
    return int(value)


def dropout_probability(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{owner}: `{name}` must be a probability in [0, 1), got {value!r}")
    return float(value)


def matching_tensor(owner: str, name: str, tensor: Tensor, reference: Tensor) -> None:
    """``tensor`` must have the parameters' dtype and device."""
    if tensor.dtype != reference.dtype:
        raise ValueError(
            f"{owner}: `{name}` has dtype {tensor.dtype} but the parameters are "
            f"{reference.dtype}; convert one of them (e.g. `{name}.to({reference.dtype})` "
            f"or `module.to({tensor.dtype})`)"
        )
    if tensor.device != reference.device:
        raise ValueError(
            f"{owner}: `{name}` is on device {tensor.device} but the parameters are on "
            f"{reference.device}; move one of them (`.to({str(reference.device)!r})`)"
        )


def state_shape(owner: str, name: str, state, expected: tuple, meaning: str) -> None:
    if not isinstance(state, Tensor):
        raise ValueError(f"{owner}: `{name}` must be a Tensor, got {type(state).__name__}")
    if tuple(state.shape) != tuple(expected):
        raise ValueError(
            f"{owner}: `{name}` has shape {shape_text(state.shape)}, expected "
            f"{shape_text(expected)} = {meaning}"
        )


def input_dims(owner: str, input: Tensor, allowed: tuple[int, ...], layout: str) -> None:
    if not isinstance(input, Tensor):
        raise ValueError(f"{owner}: `input` must be a Tensor, got {type(input).__name__}")
    if input.dim() not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise ValueError(
            f"{owner}: expected `input` with {wanted} dimensions ({layout}), got "
            f"{input.dim()} dimensions with shape {shape_text(input.shape)}"
        )
    if not torch.is_floating_point(input):
        raise ValueError(
            f"{owner}: `input` must be a floating-point tensor, got dtype {input.dtype}"
        )


def feature_size(owner: str, input: Tensor, expected: int) -> None:
    if input.shape[-1] != expected:
        expected_shape = tuple(input.shape[:-1]) + (expected,)
        raise ValueError(
            f"{owner}: `input` has {input.shape[-1]} features in its last dimension "
            f"(shape {shape_text(input.shape)}), expected input_size={expected} "
            f"(shape {shape_text(expected_shape)})"
        )
