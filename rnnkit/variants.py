"""The variants users keep asking for, as options of the same layers (never forks of the code).

``layer_norm`` (LSTM, GRU), ``zoneout`` (h, and c for the LSTM), ``recurrent_dropout``,
``weight_drop`` (DropConnect on W_hh, AWD-LSTM), ``peephole`` and ``coupled_gates`` (LSTM).
This module checks the options, names their parameters and draws their masks; the step
equations are in the cells (:mod:`rnnkit.cells`); each family's ``run``
(:mod:`rnnkit.families`) hands them to the backend's variant function.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit import _validation as check


@dataclass(frozen=True)
class Variants:
    layer_norm: bool = False
    zoneout_hidden: float = 0.0
    zoneout_cell: float = 0.0
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    peephole: bool = False
    coupled_gates: bool = False

    @property
    def in_step(self) -> bool:
        """Whether the step equations change (weight drop only changes W_hh beforehand)."""
        return bool(
            self.layer_norm
            or self.zoneout_hidden
            or self.zoneout_cell
            or self.recurrent_dropout
            or self.peephole
            or self.coupled_gates
        )


def parse_variants(
    owner: str,
    family,
    proj_size: int,
    layer_norm,
    zoneout,
    recurrent_dropout,
    weight_drop,
    peephole,
    coupled_gates,
) -> Variants:
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise ValueError(f"{owner}: `zoneout` must be p or (p_h, p_c), got {zoneout!r}")
        zoneout_hidden, zoneout_cell = zoneout
    elif isinstance(zoneout, numbers.Real) and not isinstance(zoneout, bool):
        zoneout_hidden, zoneout_cell = zoneout, zoneout if family.has_cell else 0.0
    else:
        raise ValueError(f"{owner}: `zoneout` must be p or (p_h, p_c), got {zoneout!r}")
    variants = Variants(
        layer_norm=bool(layer_norm),
        zoneout_hidden=check.dropout_probability(owner, "zoneout (p_h)", zoneout_hidden),
        zoneout_cell=check.dropout_probability(owner, "zoneout (p_c)", zoneout_cell),
        recurrent_dropout=check.dropout_probability(owner, "recurrent_dropout", recurrent_dropout),
        weight_drop=check.dropout_probability(owner, "weight_drop", weight_drop),
        peephole=bool(peephole),
        coupled_gates=bool(coupled_gates),
    )
    taken = set(family.options)
    for name, used in (
        ("layer_norm", variants.layer_norm),
        ("peephole", variants.peephole),
        ("coupled_gates", variants.coupled_gates),
        ("recurrent_dropout", variants.recurrent_dropout),
        ("weight_drop", variants.weight_drop),
        ("zoneout", variants.zoneout_hidden),
    ):
        if used and name not in taken:
            raise ValueError(f"{owner}: {_not_offered(name, family)}")
    if variants.zoneout_cell and "zoneout_cell" not in taken:
        raise ValueError(
            f"{owner}: `zoneout` takes p_h alone for the {family.called} (it has no cell state), "
            f"got {zoneout!r}"
        )
    if proj_size and variants.in_step:
        raise ValueError(
            f"{owner}: `proj_size` cannot be combined with layer_norm, zoneout, "
            "recurrent_dropout, peephole or coupled_gates"
        )
    return variants


def _not_offered(option: str, family) -> str:
    """Why ``family`` refuses ``option``, naming the families that take it."""
    from rnnkit import families  # the registry imports this module

    offering = [other.name for other in sorted(families.families(), key=lambda f: -f.blocks)
                if option in other.options]
    if len(offering) == 1:
        return f"`{option}` is an {offering[0]} option; the {family.called} does not take it"
    if offering:
        listed = ", ".join(offering[:-1]) + " and " + offering[-1]
        return f"`{option}` is offered for {listed}, not the {family.called}"
    return f"`{option}` is not offered for the {family.called}"


def variant_parameters(variants: Variants, family, hidden: int, tag: str) -> dict:
    """Names -> (shape, initial value or None for the uniform init) of the extra parameters."""
    gate_size = family.gate_rows(hidden)
    parameters = {}
    if variants.layer_norm:
        parameters[f"ln_ih_weight_{tag}"] = ((gate_size,), 1.0)
        parameters[f"ln_ih_bias_{tag}"] = ((gate_size,), 0.0)
        parameters[f"ln_hh_weight_{tag}"] = ((gate_size,), 1.0)
        parameters[f"ln_hh_bias_{tag}"] = ((gate_size,), 0.0)
        if family.has_cell:
            parameters[f"ln_cell_weight_{tag}"] = ((hidden,), 1.0)
            parameters[f"ln_cell_bias_{tag}"] = ((hidden,), 0.0)
    if variants.peephole:
        parameters[f"peephole_weight_{tag}"] = ((3 * hidden,), None)  # input, forget, output
    return parameters


def bernoulli(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """0/1 of ``shape`` in ``like``'s dtype and device, 1 with probability ``p``, from the torch
    RNG: 31 random bits per element (two per 64-bit word of ``random_``) against
    ``round(p * 2**31)``. On CPU it takes 0.4x the time of ``Tensor.bernoulli_`` (measured 2.6 vs
    6.3 ms for 100 x 32 x 256), which was most of zoneout's cost, and resolves p finer than
    ``torch.rand``'s 24 bits."""
    count = math.prod(shape)
    words = torch.empty((count + 1) // 2, dtype=torch.int64, device=like.device).random_()
    halves = words.view(torch.int32)[:count].bitwise_and_(0x7FFFFFFF)  # uniform on [0, 2**31)
    return halves.lt(round(p * 2**31)).view(shape).to(like.dtype)


def draw_masks(variants: Variants, training: bool, steps: int, batch: int, like: Tensor):
    """Recurrent-dropout mask ``(N, H)`` (one per sequence) and zoneout ``(T, N, H)`` (one per
    step), drawn from the torch RNG so a seeded run repeats. In eval: no dropout, and zoneout
    keeps its expectation, the share p of the previous state."""
    hidden = like.shape[-1]
    recurrent = zone_h = zone_c = None
    if variants.recurrent_dropout and training:
        keep = 1 - variants.recurrent_dropout
        recurrent = bernoulli((batch, hidden), keep, like) / keep
    for p, name in ((variants.zoneout_hidden, "h"), (variants.zoneout_cell, "c")):
        if not p:
            continue
        if training:
            zone = bernoulli((steps, batch, hidden), p, like)
        else:
            zone = like.new_full((1, 1, 1), p).expand(steps, batch, hidden)
        if name == "h":
            zone_h = zone
        else:
            zone_c = zone
    return recurrent, zone_h, zone_c


def check_gate_init(owner: str, family, bias: bool, forget_bias, init, chrono_max_len):
    """Validated ``(forget_bias, init, chrono_max_len)``."""
    if init not in (None, "chrono"):
        raise ValueError(f"{owner}: `init` must be None or 'chrono', got {init!r}")
    if (forget_bias is not None or init) and family.keep_gate is None:
        raise ValueError(f"{owner}: the {family.called} has no forget gate to initialise")
    if (forget_bias is not None or init) and not bias:
        raise ValueError(f"{owner}: forget_bias and init='chrono' need bias=True")
    if forget_bias is not None and init == "chrono":
        raise ValueError(f"{owner}: give forget_bias or init='chrono', not both")
    if forget_bias is not None and (
        isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real)
    ):
        raise ValueError(f"{owner}: `forget_bias` must be a number, got {forget_bias!r}")
    if init == "chrono":
        if (
            chrono_max_len is None
            or isinstance(chrono_max_len, bool)
            or not isinstance(chrono_max_len, numbers.Integral)
            or chrono_max_len < 3
        ):
            raise ValueError(
                f"{owner}: init='chrono' needs `chrono_max_len`, the longest dependency to "
                f"expect in steps (an integer >= 3), got {chrono_max_len!r}"
            )
    elif chrono_max_len is not None:
        raise ValueError(f"{owner}: `chrono_max_len` is only used with init='chrono'")
    return (None if forget_bias is None else float(forget_bias)), init, chrono_max_len
