"""What a recurrent family is, declared once: :class:`Family`, and the registry of them.

A family is a step equation with its parameters: the gates it computes (and the order of their
blocks in the weights), whether it carries a cell state, which gate keeps memory (for
``forget_bias`` and chrono initialisation), its ``torch.nn`` twin if it has one, the variant
options its step takes, its readable cell (``rnnkit.cells``), and the two implementations of a
whole sequence: the hand-written backward in torch ops (``rnnkit.bptt``) and, optionally, the
fused C++ operators (``rnnkit.kernels``). Layers, variants, backends, init, the apps' ``--cell``
choices, tasks, bench and diagnostics read the declaration instead of branching on names.

A family's implementations are named as ``"module:function"`` strings and imported on first
use, so declaring a family loads neither torch ops' backward nor the C++ library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class Family:
    """One recurrent family.

    Attributes:
        name: the layer's class name and ``layer.mode`` ("LSTM").
        gates: the gate activations the internals name, in the order of their weight blocks
            (empty when the step has no gates).
        blocks: rows of ``weight_ih`` per hidden unit (4 for the LSTM's i, f, g, o).
        has_cell: whether the state is (h, c), as the LSTM's, or h alone.
        keep_gate: the block of the gate that keeps memory (LSTM forget, GRU update), set by
            ``forget_bias`` and chrono init; None when there is none.
        chrono_write_gate: the block chrono init sets to ``-log(u)`` (the LSTM's input gate).
        torch_twin: the ``torch.nn`` class with the same parameters and numbers, or None.
        options: the variant options (``rnnkit.variants``) the step takes.
        projection: whether ``proj_size`` is offered.
        nonlinearity: the default of the ``nonlinearity`` argument, or None when the family has
            no choice of it.
        step: the readable one-step function (``rnnkit.cells``): the spec every path meets.
        run: ``"module:function"`` running one layer, one direction over a sequence, given an
            implementation (see :func:`rnnkit.backends.implementation`).
        reference: ``{"plain": "module:function", "variant": ...}`` in torch ops.
        fused: the same on the C++ operators, or empty when the family has no kernel.
        stream: ``"module:function"`` making a layer's streaming step on the fused operators
            (one call of one time step through every layer, :mod:`rnnkit.kernels.stream`):
            called as ``(num_layers, bidirectional, has_bias, nonlinearity, variants)``, it returns
            ``step(x, state, weights) -> (output, state)``; None when the family has none.
        recurrent_shape: ``weight_hh``'s shape from (gate rows, H_out): a matrix for most
            families, a vector for the IndRNN's per-unit weights.
        cli: the names the apps' ``--cell`` takes for this family, each with its init (None or
            "chrono").
        onnx: whether ``rnnkit.onnx`` translates the family to a standard ONNX node.
        title: how messages call it ("vanilla RNN"), when not its name.
        memory_option: the layer argument that takes the longest memory to keep, in steps
            (the IndRNN's ``recurrent_max_len``); a task that knows its length sets it.
        task_layers: the layers the long-dependency tasks stack (``rnnkit longdep``, ``demo``):
            one, except where a family's step cannot do the task's work in one layer.
    """

    name: str
    gates: tuple[str, ...]
    blocks: int
    has_cell: bool
    keep_gate: int | None
    torch_twin: type[nn.Module] | None
    options: tuple[str, ...]
    step: Callable
    run: str
    reference: dict[str, str]
    fused: dict[str, str] = field(default_factory=dict)
    stream: str | None = None
    chrono_write_gate: int | None = None
    projection: bool = False
    nonlinearity: str | None = None
    recurrent_shape: Callable[[int, int], tuple[int, ...]] = lambda rows, out: (rows, out)
    cli: dict[str, str | None] = field(default_factory=dict)
    onnx: bool = False
    title: str = ""  # how messages name it ("vanilla RNN"); the name when empty
    memory_option: str | None = None
    task_layers: int = 1

    @property
    def called(self) -> str:
        return self.title or self.name

    def gate_rows(self, hidden: int) -> int:
        return self.blocks * hidden

    def runner(self) -> Callable:
        return load(self.run)

    def cell_step(self, x, states, weights, **options):
        """One step of the readable cell: ``(new states (h,) or (h, c), gates dict)``, whatever
        the family's cell returns. Leading dimensions broadcast (the cells work on the last)."""
        result = self.step(x, *states, **weights, **options)
        result = result if isinstance(result, tuple) else (result,)
        count = 2 if self.has_cell else 1
        return result[:count], (result[count] if len(result) > count else {})


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to the registry (a family module calls this once, at import)."""
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def get(name: str) -> Family:
    """The family called ``name`` ("LSTM"); an unknown name raises, never a default."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown recurrent family {name!r}; known: {', '.join(_FAMILIES)}"
        ) from None


def families() -> tuple[Family, ...]:
    return tuple(_FAMILIES.values())


def cli_cells() -> dict[str, tuple[Family, str | None]]:
    """The apps' ``--cell`` names -> (family, init): the plain names in registration order,
    then the initialised ones (``lstm-chrono``)."""
    named = [(cell, (family, init)) for family in _FAMILIES.values()
             for cell, init in family.cli.items()]
    return dict(sorted(named, key=lambda item: item[1][1] is not None))


_LOADED: dict[str, Callable] = {}


def load(target: str) -> Callable:
    """``"package.module:function"`` (or ``"module:Class.apply"``) -> the function, once."""
    function = _LOADED.get(target)
    if function is None:
        module, _, path = target.partition(":")
        function = importlib.import_module(module)
        for name in path.split("."):  # "Class.apply" reaches an attribute of an attribute
            function = getattr(function, name)
        _LOADED[target] = function
    return function
