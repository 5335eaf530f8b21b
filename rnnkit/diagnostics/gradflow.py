"""Gradient flow over time: ||dL/dh_t|| (and ||dL/dc_t||) for every t, from the layers' internals.

The hand-written backward of every rnnkit layer records the total gradient reaching each
state (``internals[k][d].hidden_grad`` / ``.cell_grad``); here it is reduced to one norm per
step and summarised by its decay per step back in time. With the loss at the last step a
vanilla RNN's norm shrinks by a roughly constant factor per step (Bengio, Simard & Frasconi
1994; Pascanu, Mikolov & Bengio 2013, arXiv 1211.5063); the LSTM's cell state keeps it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from rnnkit.internals import DirectionInternals, Internals


@dataclass
class GradientFlow:
    """One model's gradient flow. Index ``k`` of a norm list is ``k`` steps back from the loss.

    Attributes:
        label: what was measured ("lstm-chrono at initialisation").
        hidden_norm: mean over the batch of ||dL/dh_{T-1-k}||_2, for k = 0..T-1.
        cell_norm: the same for the LSTM's c_t; None for other cells.
        hidden_decay, cell_decay: the factor the norm shrinks by per step back, 10 ** (slope
            of log10 norm against k), fitted where the norm is positive.
    """

    label: str
    hidden_norm: list[float]
    cell_norm: list[float] | None
    hidden_decay: float
    cell_decay: float | None

    def ratio(self, steps_back: int, which: str = "hidden") -> float:
        """norm(k = steps_back) / norm(k = 0): how much of the signal is left that far back."""
        norms = self.hidden_norm if which == "hidden" else self.cell_norm
        steps_back = min(steps_back, len(norms) - 1)
        return norms[steps_back] / norms[0] if norms[0] > 0 else 0.0

    def spread(self, which: str = "hidden") -> float:
        """max / min of the norm over all steps (inf when it reaches exactly zero)."""
        norms = self.hidden_norm if which == "hidden" else self.cell_norm
        low = min(norms)
        return max(norms) / low if low > 0 else math.inf

    def to_dict(self) -> dict:
        data = asdict(self)
        data["hidden_ratio_50"] = self.ratio(50)
        if self.cell_norm is not None:
            data["cell_ratio_50"] = self.ratio(50, "cell")
            data["cell_spread"] = self.spread("cell")
        data["hidden_spread"] = self.spread()
        return data


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat numbers below ~1e-38 as zero while inside.

    A vanishing gradient passes through the subnormal floats on its way to zero, and CPU
    arithmetic on those is tens of times slower; below 1e-38 the value means "gone" anyway.
    """
    already = (torch.tensor([1e-30]) * 1e-10).item() == 0.0  # set_flush_denormal tells no state
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not already:
            torch.set_flush_denormal(False)


def norms_over_time(grad: Tensor, batch_first: bool = False) -> Tensor:
    """``(T, N, H)`` (or ``(N, T, H)``, or unbatched ``(T, H)``) -> ``(T,)``: per-sequence L2
    norm over units, averaged over the batch."""
    if grad.dim() == 2:
        return grad.norm(dim=-1)
    if batch_first:
        grad = grad.transpose(0, 1)
    return grad.norm(dim=-1).mean(dim=1)


def decay_per_step(norms: Tensor) -> float:
    """10 ** slope of the least-squares line through (k, log10 norm_k), positive norms only."""
    steps_back = torch.arange(len(norms), dtype=torch.float64)
    keep = norms > 0
    if keep.sum() < 2:
        return 0.0
    x, y = steps_back[keep], norms[keep].double().log10()
    x_centered = x - x.mean()
    slope = (x_centered * (y - y.mean())).sum() / (x_centered * x_centered).sum()
    return float(10 ** slope)


def from_internals(direction: DirectionInternals, label: str, batch_first=False) -> GradientFlow:
    """Summarise the gradients a backward pass left in one layer-direction's internals."""
    if direction.hidden_grad is None:
        raise ValueError("no gradients recorded: run backward after forward(return_internals=True)")
    # flip so index k is k steps back from the last step, where the loss sits
    hidden = norms_over_time(direction.hidden_grad.detach(), batch_first).flip(0)
    cell = None
    if direction.cell_grad is not None:
        cell = norms_over_time(direction.cell_grad.detach(), batch_first).flip(0)
    return GradientFlow(
        label=label,
        hidden_norm=hidden.tolist(),
        cell_norm=None if cell is None else cell.tolist(),
        hidden_decay=decay_per_step(hidden),
        cell_decay=None if cell is None else decay_per_step(cell),
    )


def measure(
    forward: Callable[[], tuple[Tensor, Internals]],
    loss_of: Callable[[Tensor], Tensor],
    label: str,
    parameters=(),
    layer: int = -1,
    batch_first: bool = False,
) -> GradientFlow:
    """Run ``forward`` (returning ``(outputs, internals)``), backward from ``loss_of(outputs)``
    and read the gradient flow of ``layer``'s forward direction.

    The gradients this leaves on ``parameters`` are cleared again, so measuring in the middle
    of training changes nothing.
    """
    with torch.enable_grad(), flush_denormals():
        outputs, internals = forward()
        loss_of(outputs).backward()
    for parameter in parameters:
        parameter.grad = None
    return from_internals(internals[layer][0], label, batch_first)


def task_gradient_flow(model, task, inputs: Tensor, targets: Tensor, label: str) -> GradientFlow:
    """The gradient flow of a :class:`rnnkit.tasks.TaskModel` with the loss at the last step."""

    def loss_of(predictions):
        if task.every_step:
            return task.loss(predictions[-1:], targets[-1:])
        return task.loss(predictions, targets)

    return measure(
        lambda: model(inputs, return_internals=True), loss_of, label, list(model.parameters())
    )
