"""Shared test helpers: twin torch.nn / rnnkit layers with copied weights, and comparisons."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
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


def _reference_functions() -> tuple:
    """Every autograd Function in the modules of every family's reference functions."""
    import importlib
    import inspect

    from rnnkit import families

    modules = {target.partition(":")[0] for family in families.families()
               for target in family.reference.values()}
    found = []
    for module in sorted(modules):
        for _, value in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if issubclass(value, torch.autograd.Function) and value.__module__ == module:
                found.append(value)
    return tuple(found)


def fused_functions():
    """The fused sequence functions by name (``lstm``, ``lstm_variant``, ``gru``, ...), read from
    the families' declarations, or None when the kernels are not built."""
    from types import SimpleNamespace

    from rnnkit import families
    from rnnkit.kernels import loader

    if loader.load_functions() is None:
        return None
    named = {}
    for family in families.families():
        for kind, target in family.fused.items():
            suffix = "" if kind == "plain" else f"_{kind}"
            named[f"{family.name.lower()}{suffix}"] = families.load(target)
    return SimpleNamespace(**named)


@contextmanager
def reference_forbidden():
    """Inside, every reference Function (``rnnkit.bptt``) raises, forward and backward: numbers
    obtained here came from the fused kernels, not from a quiet fallback."""

    def refuse(name):
        def raising(*args, **kwargs):
            raise AssertionError(f"the reference {name} ran where the fused kernel should")

        return staticmethod(raising)

    with pytest.MonkeyPatch.context() as patch:
        for function in _reference_functions():
            patch.setattr(function, "forward", refuse(f"{function.__name__}.forward"))
            patch.setattr(function, "backward", refuse(f"{function.__name__}.backward"))
        yield


def fused_twins(mode: str, dtype, seed: int = 0, **kwargs):
    """An rnnkit layer on the reference path and its twin on the fused path with the same
    weights, every parameter drawn at scale 0.4 (layer-norm gains away from 1, peepholes
    non-zero)."""
    torch.manual_seed(seed)
    reference = RNNKIT_CLASSES[mode](**kwargs, backend="reference").to(dtype)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.4)
    fused = RNNKIT_CLASSES[mode](**kwargs, backend="fused").to(dtype)
    fused.load_state_dict(reference.state_dict())
    return reference, fused


def layer_numbers(layer, packed, leaf, seed: int) -> dict:
    """Every number a layer gives for one input: output, final states, the gradients of a loss
    reaching them all, and the internals (h_t, c_t, gates, extras, dL/dh_t, dL/dc_t). The seed
    draws the zoneout / dropout masks, so twins given the same one see the same masks. A layer on
    ``backend="fused"`` runs with the reference Functions forbidden."""
    if getattr(layer, "backend", None) == "fused":
        with reference_forbidden():
            return _layer_numbers(layer, packed, leaf, seed)
    return _layer_numbers(layer, packed, leaf, seed)


def _layer_numbers(layer, packed, leaf, seed: int) -> dict:
    torch.manual_seed(seed)
    output, state, internals = layer(packed, return_internals=True)
    tensors = (output_tensor(output),) + states_of(state)
    generator = torch.Generator().manual_seed(7)
    loss = sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum()
               for t in tensors)
    leaves = [leaf, *layer.parameters()]
    grads = torch.autograd.grad(loss, leaves, retain_graph=True)  # the packing is shared
    seen = {f"tensor{i}": t for i, t in enumerate(tensors)}
    seen.update({f"grad{i}": g for i, g in enumerate(grads)})
    for k, directions in enumerate(internals):
        for d, record in enumerate(directions):
            where = f"layer{k}.dir{d}"
            seen[f"{where}.hidden"] = record.hidden
            seen[f"{where}.cell"] = record.cell
            seen[f"{where}.hidden_grad"] = record.hidden_grad
            seen[f"{where}.cell_grad"] = record.cell_grad
            seen.update({f"{where}.{name}": v for name, v in record.gates.items()})
            seen.update({f"{where}.extras.{name}": v for name, v in record.extras.items()})
    return seen


def assert_same_numbers(actual: dict, expected: dict, dtype) -> None:
    """Two ``layer_numbers`` alike: the same names, None where the other has None, and every
    tensor within the dtype's tolerance."""
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        if value is None:
            assert actual[name] is None, name
        else:
            assert_close(actual[name], value, dtype, name)


def autograd_node_names(tensor: torch.Tensor) -> set[str]:
    """The names of every node in ``tensor``'s autograd graph (e.g. to find the backward that
    torch.library.register_autograd gives an rnnkit operator)."""
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(node.name())
        stack.extend(child for child, _ in node.next_functions)
    return names


def runs_operator_backward(tensor: torch.Tensor, operator: str) -> bool:
    """Whether ``tensor``'s graph reaches the backward of the ``torch.ops.rnnkit`` forward
    operator: its registered autograd formula (traced), or, eager, the EagerFunction node that
    ran it (its ``operator``)."""
    stack, seen = [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node.name() == f"GeneratedBackwardFor_rnnkit_{operator}_defaultBackward":
            return True
        if node.name() == "EagerFunctionBackward" and getattr(node, "operator", None) == operator:
            return True
        stack.extend(child for child, _ in node.next_functions)
    return False


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``rnnkit.cli.main(args)`` as the ``rnnkit`` command runs it, its logging set up on the
    captured stderr (pytest's own log handlers set aside meanwhile, so nothing logged escapes):
    (exit status, stdout, stderr)."""
    from rnnkit.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        status = main([str(arg) for arg in args])
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capsys.readouterr()
    return status, captured.out, captured.err
