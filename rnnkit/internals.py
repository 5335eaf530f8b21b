"""What ``forward(..., return_internals=True)`` returns: every state and gate over time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from torch import Tensor

from rnnkit.bptt.common import GradientRecorder


@dataclass
class DirectionInternals:
    """One layer, one direction.

    All tensors are laid out like the layer's output: ``(N, L, ·)`` when ``batch_first``,
    else ``(L, N, ·)``, and ``(L, ·)`` for unbatched input. For packed or variable-length
    input the batch is in the caller's order and the steps past a sequence's end are zero.
    The reverse direction is in the original time order (step t is the state after reading
    x_t from the right).

    Attributes:
        hidden: every h_t, ``(…, H_out)`` (``H_out = proj_size`` for a projected LSTM).
        cell: every c_t, ``(…, H)``, for the LSTM; None otherwise.
        gates: post-activation gates, ``(…, H)`` each: "input", "forget", "cell", "output"
            for the LSTM; "reset", "update", "new" for the GRU; empty for the vanilla RNN.
        extras: what the variants add: "recurrent_mask" ``(N, H)`` (recurrent dropout, scaled
            by 1/(1-p)), "zoneout_hidden" / "zoneout_cell" (share of the previous state kept
            at each step), "normalized_ih" / "normalized_hh" / "normalized_cell" (layer norm's
            normalised pre-activations, before gain and bias).
    """

    hidden: Tensor
    cell: Tensor | None
    gates: dict[str, Tensor]
    extras: dict[str, Tensor] = field(default_factory=dict)
    _recorder: GradientRecorder | None = field(default=None, repr=False)
    _layout: Callable[[Tensor], Tensor] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        def shape(tensor: Tensor | None) -> str:
            return "None" if tensor is None else "(" + ", ".join(map(str, tensor.shape)) + ")"

        gates = ", ".join(f"{name}: {shape(value)}" for name, value in self.gates.items())
        extras = ", ".join(f"{name}: {shape(value)}" for name, value in self.extras.items()
                           if value is not None)
        return (f"DirectionInternals(hidden={shape(self.hidden)}, cell={shape(self.cell)}, "
                f"gates={{{gates}}}, extras={{{extras}}})")

    @property
    def hidden_grad(self) -> Tensor | None:
        """dL/dh_t for every t (total, through the recurrence), once backward has run; recorded
        in eager mode only (None after a torch.compile'd or torch.export'ed run)."""
        if self._recorder is None or self._recorder.hidden_grad is None:
            return None
        return self._layout(self._recorder.hidden_grad)

    @property
    def cell_grad(self) -> Tensor | None:
        """dL/dc_t for every t (LSTM), once backward has run; eager mode only, as hidden_grad."""
        if self._recorder is None or self._recorder.cell_grad is None:
            return None
        return self._layout(self._recorder.cell_grad)


@dataclass
class Internals:
    """Per layer, per direction: ``internals[layer][direction]`` is a DirectionInternals.

    ``internals.last`` is the forward direction of the top layer; ``internals.gate("forget")``
    is that gate of it.
    """

    layers: list[list[DirectionInternals]]

    def __repr__(self) -> str:
        directions = len(self.layers[0]) if self.layers else 0
        return (f"Internals({len(self.layers)} layer(s) x {directions} direction(s); "
                f"last={self.last!r})" if self.layers else "Internals(no layers)")

    def __getitem__(self, layer: int) -> list[DirectionInternals]:
        return self.layers[layer]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[list[DirectionInternals]]:
        return iter(self.layers)

    @property
    def last(self) -> DirectionInternals:
        return self.layers[-1][0]

    def gate(self, name: str, layer: int = -1, direction: int = 0) -> Tensor:
        gates = self.layers[layer][direction].gates
        if name not in gates:
            raise KeyError(f"no gate {name!r}; this layer has {sorted(gates) or 'no gates'}")
        return gates[name]
