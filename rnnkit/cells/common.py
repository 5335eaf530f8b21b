"""What the variants share across families: layer normalisation and zoneout, as plain functions."""

from __future__ import annotations

from torch import Tensor

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, as rnnkit.bptt.layer_norm and the kernels


def layer_norm(z: Tensor, gain: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    r"""Layer normalisation over the last dimension (Ba, Kiros & Hinton 2016, arXiv 1607.06450).

    .. math::
        \hat z = \frac{z - \mathrm{mean}(z)}{\sqrt{\mathrm{var}(z) + \epsilon}}, \qquad
        \mathrm{LN}(z) = \hat z \odot \text{gain} + \text{bias}

    with the biased variance (the mean of squared deviations) and :math:`\epsilon = 10^{-5}`,
    as ``torch.nn.LayerNorm`` computes it.

    Returns:
        ``(LN(z), normalized)``: the result and :math:`\hat z`, the normalised value before
        gain and bias (what ``internals[...].extras["normalized_*"]`` shows).
    """
    centered = z - z.mean(dim=-1, keepdim=True)
    variance = (centered * centered).mean(dim=-1, keepdim=True)
    normalized = centered / (variance + LAYER_NORM_EPS).sqrt()
    return normalized * gain + bias, normalized


def uses_layer_norm(*gains_and_biases: Tensor | None) -> bool:
    """Whether layer norm is on: all of its parameters given (True) or none (False)."""
    given = [tensor is not None for tensor in gains_and_biases]
    if any(given) and not all(given):
        raise ValueError("layer norm needs every one of its gains and biases, or none of them")
    return all(given)


def zoneout(new: Tensor, previous: Tensor, keep: Tensor | float | None) -> Tensor:
    r"""Zoneout (Krueger et al. 2016, arXiv 1606.01305): each unit keeps its previous value.

    .. math:: s_t = k_t \odot s_{t-1} + (1 - k_t) \odot \tilde s_t

    ``keep`` is the share of the previous state kept: a 0/1 mask drawn per step in training
    (1 = keep with probability p), the number p in eval (the mask's expectation), or None for
    no zoneout (``new`` is returned as it is).
    """
    if keep is None:
        return new
    return keep * previous + (1 - keep) * new
