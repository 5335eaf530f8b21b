"""Layer normalisation over the last dimension, forward and hand-written backward.

Ba, Kiros & Hinton 2016 (arXiv 1607.06450): ``y = (z - mean(z)) / sqrt(var(z) + eps) * gain
+ bias``, with the biased variance, as torch.nn.LayerNorm computes it.
"""

from __future__ import annotations

from torch import Tensor

EPS = 1e-5


def layer_norm_forward(z: Tensor, gain: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Returns ``(y, normalized, rstd)``; the last two are what the backward needs."""
    centered = z - z.mean(dim=-1, keepdim=True)
    rstd = ((centered * centered).mean(dim=-1, keepdim=True) + EPS).rsqrt()
    normalized = centered * rstd
    return normalized * gain + bias, normalized, rstd


def layer_norm_backward(grad_y: Tensor, normalized: Tensor, rstd: Tensor, gain: Tensor) -> Tensor:
    """dL/dz from dL/dy: ``rstd * (g - mean(g) - normalized * mean(g * normalized))``.

    Here ``g = dL/dy * gain``.
    """
    g = grad_y * gain
    mean_g = g.mean(dim=-1, keepdim=True)
    mean_gn = (g * normalized).mean(dim=-1, keepdim=True)
    return rstd * (g - mean_g - normalized * mean_gn)


def layer_norm_parameter_grads(grad_y: Tensor, normalized: Tensor) -> tuple[Tensor, Tensor]:
    """(dL/dgain, dL/dbias), summed over every leading dimension (time and batch)."""
    features = grad_y.shape[-1]
    flat_grad = grad_y.reshape(-1, features)
    return (flat_grad * normalized.reshape(-1, features)).sum(0), flat_grad.sum(0)
