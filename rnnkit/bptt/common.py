"""Pieces shared by the three backward-through-time Functions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class GradientRecorder:
    """Receives, during backward, the total gradient reaching every state.

    ``hidden_grad[t]`` is dL/dh_t (``(T, N, H_out)``): what reaches h_t from the output at t
    and from every later step through the recurrence. ``cell_grad[t]`` is dL/dc_t for the LSTM.
    This is what a gradient-flow plot draws; it is filled in by the backward already running,
    so it costs one copy.
    """

    hidden_grad: Tensor | None = None
    cell_grad: Tensor | None = None

    def store(self, hidden_grad: Tensor, cell_grad: Tensor | None, mask: Tensor | None) -> None:
        """Keep the per-step gradients; padded steps of a shorter sequence record zero, as its
        internals do."""
        if mask is not None:
            hidden_grad = hidden_grad * mask
            cell_grad = None if cell_grad is None else cell_grad * mask
        self.hidden_grad, self.cell_grad = hidden_grad, cell_grad


def input_projection(x: Tensor, weight_ih: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight_ih.T + bias`` for all timesteps in one GEMM: ``(T, N, I) -> (T, N, G)``."""
    steps, batch, features = x.shape
    flat = x.reshape(steps * batch, features)
    if bias is None:
        projected = flat @ weight_ih.T
    else:
        projected = torch.addmm(bias, flat, weight_ih.T)
    return projected.view(steps, batch, -1)


def weight_gradients(grad_gates: Tensor, inputs: Tensor, needs: bool) -> Tensor | None:
    """Time-batched ``sum_t grad_gates_t^T @ inputs_t``: ``(T, N, G), (T, N, I) -> (G, I)``."""
    if not needs:
        return None
    steps, batch, gates = grad_gates.shape
    return grad_gates.reshape(steps * batch, gates).T @ inputs.reshape(steps * batch, -1)


def split_by_mask(grad: Tensor, mask_t: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Split a state gradient into the part for the step that ran and the part held past the end.

    With variable lengths a finished sequence's state passes through a step unchanged:
    ``state_t = m_t * step(state_{t-1}) + (1 - m_t) * state_{t-1}``.
    """
    if mask_t is None:
        return grad, None
    return grad * mask_t, grad * (1 - mask_t)


def hold_finished(new: Tensor, old: Tensor, mask_t: Tensor | None) -> Tensor:
    """Keep ``old`` where the sequence has ended (mask 0), take ``new`` where it runs."""
    if mask_t is None:
        return new
    return torch.where(mask_t.bool(), new, old)
