"""Holds any rnnkit layer against a step-by-step loop over its cell functions, in float64.

``cell_loop(layer, input, hx, masks)`` recomputes an ``rnnkit.LSTM`` / ``GRU`` / ``RNN`` /
``IndRNN`` forward from ``rnnkit.cells`` alone: every sequence of the batch on its own, one
cell step at a time, layer by layer and direction by direction, with the weights copied to
float64. It uses nothing of the layer's machinery (no masks, sorting or time reversal from
``rnnkit._sequences``): a packed sequence is unpacked with torch's own utilities, a sequence's
reverse direction simply starts at its own last step, its state after its last step is its
final state, and the steps past its end stay zero in the padded output.

``compare_with_cell_loop(layer, input, hx)`` runs both, then the backward of both with the
same random cotangents, and returns the largest difference of every output, final state and
gradient (input, initial state, each parameter).

The random variants (zoneout, recurrent dropout) in training take the masks the layer drew
from its internals (``return_internals=True``); in eval zoneout is its expectation p and
recurrent dropout is off. Training-mode dropout between layers and weight drop draw masks the
internals do not show, so the loop refuses them (in eval both are the identity).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnkit import families

DTYPE = torch.float64


def _family_step(family):
    """``step(x_t, states, weights, masks, layer) -> (states, gates)`` over the family's cell
    (``family.step``, from ``rnnkit.families``), with the layer's own options."""

    def step(x, states, weights, masks, layer):
        options = dict(masks)
        if family.nonlinearity is not None:
            options["nonlinearity"] = layer.nonlinearity
        if "coupled_gates" in family.options:
            options["coupled_gates"] = layer.variants.coupled_gates
        bound = getattr(layer, "recurrent_max", None)
        if bound is not None:  # the IndRNN's bound on |u|, applied in every forward
            weights = {**weights, "weight_hh": weights["weight_hh"].clamp(-bound, bound)}
        return family.cell_step(x, states, weights, **options)

    return step


@dataclass(frozen=True)
class CellFamily:
    """What the loop needs of a family: its states (h first) and one step over them.

    ``step(x_t, states, weights, masks, layer) -> (states, gates)``: the new states and the
    cell's dict of gates (and normalised pre-activations); ``weights`` maps the layer's
    parameter kinds (``weight_ih``, ``ln_ih_weight``, ``peephole_weight``, ...) of one layer
    and direction to tensors; ``masks`` maps the cell's mask arguments to this step's values.
    """

    states: tuple[str, ...]
    step: Callable
    zoneout: tuple[str, ...]  # the zoneout masks the cell takes, named as in internals' extras


def _cell_family(family) -> CellFamily:
    zoneout = tuple(name for option, name in (("zoneout", "zoneout_hidden"),
                                              ("zoneout_cell", "zoneout_cell"))
                    if option in family.options)
    return CellFamily(("h", "c") if family.has_cell else ("h",), _family_step(family), zoneout)


# every registered family, read from its declaration
FAMILIES = {family.name: _cell_family(family) for family in families.families()}

_PARAMETER_NAME = re.compile(r"^(?P<kind>.+)_l(?P<layer>\d+)(?P<reverse>_reverse)?$")


def float64_parameters(layer) -> dict[str, Tensor]:
    """The layer's parameters, copied to float64 and detached (leaves for a backward)."""
    return {
        name: parameter.detach().to(DTYPE).requires_grad_(parameter.requires_grad)
        for name, parameter in layer.named_parameters()
    }


def cell_loop(
    layer,
    input,
    hx=None,
    masks=None,
    parameters: dict[str, Tensor] | None = None,
    *,
    trace: bool = False,
):
    """The layer's forward, recomputed step by step from ``rnnkit.cells`` in float64.

    Arguments:
        layer: an ``rnnkit.LSTM``, ``GRU``, ``RNN`` or ``IndRNN`` (any options, multi-layer,
            bidirectional, batch_first).
        input: as the layer takes it: ``(L, H_in)`` unbatched, ``(L, N, H_in)`` or
            ``(N, L, H_in)`` with batch_first, or a PackedSequence (sorted or not).
        hx: the initial state(s) as the layer takes them, or None for zeros.
        masks: the layer's :class:`rnnkit.Internals` from the forward being checked (its
            ``extras`` hold the zoneout and recurrent-dropout masks it drew); needed in
            training when the layer has zoneout or recurrent dropout.
        parameters: name -> tensor for the weights (default: float64 copies of the layer's).
        trace: also return every step's states and gates, per layer and direction.

    Returns:
        ``(output, h_n)`` or, for the LSTM, ``(output, (h_n, c_n))``, in float64 and in the
        layer's own layout: a PackedSequence with the input's batch sizes and orders for
        packed input. With ``trace``, a third item: ``traces[layer][direction]`` maps
        "hidden", "cell" (the LSTM's c_t), "gates[<gate name>]" and, with layer norm,
        "extras[normalized_ih]", "extras[normalized_hh]" ("extras[normalized_cell]") to a
        tensor laid out as :class:`rnnkit.internals.DirectionInternals` lays out its own
        (the caller's layout and batch order, zeros past each sequence's end, the input's
        time order).
    """
    result, traces, _ = _loop(layer, input, hx, masks, parameters)
    return (*result, traces) if trace else result


def _loop(layer, input, hx, masks, parameters):
    """cell_loop's result, its traces, and every step's state tensors
    ``[layer][direction][sequence] -> {"hidden", "cell": [(1, ·) per step]}``."""
    if layer.mode not in FAMILIES:
        raise ValueError(f"cell_loop: no cell family {layer.mode!r}; known: {sorted(FAMILIES)}")
    family = FAMILIES[layer.mode]
    _refuse_hidden_randomness(layer)
    parameters = float64_parameters(layer) if parameters is None else parameters
    weights = _weights_by_layer_and_direction(parameters)
    sequences, batched = _sequences(layer, input)
    directions = 2 if layer.bidirectional else 1
    initial = _initial_states(layer, hx, family, batched, len(sequences))
    outputs, finals = [], {name: [] for name in family.states}
    traces = [[[] for _ in range(directions)] for _ in range(layer.num_layers)]
    raw_states = [[[] for _ in range(directions)] for _ in range(layer.num_layers)]
    for b, sequence in enumerate(sequences):
        layer_input = sequence  # (L_b, H_in)
        for k in range(layer.num_layers):
            per_direction = []
            for direction in range(directions):
                slot = k * directions + direction
                states = tuple(state[slot][b : b + 1] for state in initial)  # (1, ·) each
                masks_at = _sequence_masks(layer, family, masks, k, direction, b, batched)
                run = _run_direction(
                    layer, family, layer_input, states, weights[k, direction], masks_at,
                    reverse=direction == 1,
                )  # fmt: skip
                per_direction.append(run[0])
                for name, final in zip(family.states, run[1]):
                    finals[name].append((slot, b, final[0]))
                traces[k][direction].append(run[2])
                raw_states[k][direction].append(run[3])
            layer_input = torch.cat(per_direction, dim=1)  # (L_b, D * H_out)
        outputs.append(layer_input)
    output = _restore_output(layer, input, outputs, batched)
    state_out = tuple(
        _stack_finals(finals[name], layer.num_layers * directions, len(sequences), batched)
        for name in family.states
    )
    result = output, (state_out if len(state_out) > 1 else state_out[0])
    laid_out = [
        [_lay_out_trace(layer, per_sequence, batched) for per_sequence in per_layer]
        for per_layer in traces
    ]
    return result, laid_out, raw_states


def _lay_out_trace(layer, per_sequence: list[dict], batched: bool) -> dict[str, Tensor]:
    """[{name: (L_b, ·)} per sequence] -> {name: tensor in the internals' layout}."""
    laid_out = {}
    for name in per_sequence[0]:
        if not batched:
            laid_out[name] = per_sequence[0][name]  # (L, ·)
            continue
        padded = torch.nn.utils.rnn.pad_sequence([seq[name] for seq in per_sequence])
        laid_out[name] = padded.transpose(0, 1) if layer.batch_first else padded
    return laid_out


def _refuse_hidden_randomness(layer) -> None:
    if not layer.training:
        return
    if layer.dropout and layer.num_layers > 1:
        raise ValueError(
            "cell_loop: dropout between layers in training draws masks the internals do not "
            "show; check it in eval, or with dropout=0"
        )
    if layer.variants.weight_drop:
        raise ValueError(
            "cell_loop: weight_drop in training draws a W_hh mask the internals do not show; "
            "check it in eval (where it is the identity)"
        )


def _weights_by_layer_and_direction(parameters: dict[str, Tensor]) -> dict:
    """(layer, direction) -> {kind: tensor}, e.g. (0, 1) -> {"weight_ih": weight_ih_l0_reverse}."""
    weights: dict[tuple[int, int], dict[str, Tensor]] = {}
    for name, tensor in parameters.items():
        match = _PARAMETER_NAME.match(name)
        if match is None:
            raise ValueError(f"cell_loop: unexpected parameter name {name!r}")
        key = (int(match["layer"]), 1 if match["reverse"] else 0)
        weights.setdefault(key, {})[match["kind"]] = tensor
    return weights


def _sequences(layer, input) -> tuple[list[Tensor], bool]:
    """The input as one float64 ``(L_b, H_in)`` tensor per sequence, in the caller's order."""
    if isinstance(input, PackedSequence):
        padded, lengths = pad_packed_sequence(input)  # (T, N, H_in), the caller's order
        padded = padded.to(DTYPE)
        return [padded[:length, b] for b, length in enumerate(lengths.tolist())], True
    x = input.to(DTYPE)
    if x.dim() == 2:
        return [x], False
    if layer.batch_first:
        x = x.transpose(0, 1)  # (L, N, H_in)
    return list(x.unbind(1)), True


def _initial_states(layer, hx, family: CellFamily, batched: bool, batch: int) -> list[Tensor]:
    """Each state as float64 ``(D * num_layers, N, ·)`` in the caller's batch order."""
    directions = 2 if layer.bidirectional else 1
    sizes = {"h": layer.proj_size or layer.hidden_size, "c": layer.hidden_size}
    if hx is None:
        return [
            torch.zeros(directions * layer.num_layers, batch, sizes[name], dtype=DTYPE)
            for name in family.states
        ]
    given = hx if isinstance(hx, (tuple, list)) else (hx,)
    return [state.to(DTYPE) if batched else state.to(DTYPE).unsqueeze(1) for state in given]


def _sequence_masks(layer, family, masks, k, direction, b, batched) -> Callable[[int], dict]:
    """For sequence b of layer k, one direction: t -> the cell's mask arguments at the step
    that reads x_t (t in the input's time order, for either direction)."""
    variants = layer.variants
    probabilities = {
        "zoneout_hidden": variants.zoneout_hidden,
        "zoneout_cell": variants.zoneout_cell,
    }
    wanted = [name for name in family.zoneout if probabilities[name]]
    recurrent_dropout = variants.recurrent_dropout and layer.training
    if layer.training and (wanted or recurrent_dropout) and masks is None:
        raise ValueError(
            "cell_loop: the layer draws zoneout / recurrent-dropout masks in training; pass "
            "its internals (forward(..., return_internals=True)) as `masks`"
        )
    extras = masks[k][direction].extras if masks is not None else {}
    fixed = {}
    if recurrent_dropout:
        mask = extras["recurrent_mask"].to(DTYPE)  # (N, H), or (H,) unbatched
        fixed["recurrent_mask"] = mask[b : b + 1] if batched else mask.unsqueeze(0)
    per_step = {}
    for name in wanted:
        if not layer.training:
            fixed[name] = probabilities[name]  # eval: the expectation, share p kept
            continue
        zone = extras[name].to(DTYPE)  # the caller's layout, the input's time order
        if not batched:
            per_step[name] = zone  # (L, H)
        elif layer.batch_first:
            per_step[name] = zone[b]  # (L, H)
        else:
            per_step[name] = zone[:, b]

    def at(t: int) -> dict:
        return {**fixed, **{name: zone[t : t + 1] for name, zone in per_step.items()}}

    return at


def _run_direction(layer, family, inputs, states, weights, masks_at, reverse):
    """One sequence through one layer and direction, in time order: (outputs (L_b, H_out),
    final states (1, ·) each, trace {"hidden", "cell", "gates[<name>]",
    "extras[normalized_*]": (L_b, ·)}, the same states' tensors {"hidden", "cell": [(1, ·)]
    per step})."""
    steps = inputs.shape[0]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    trace: dict[str, list] = {}
    raw_states: dict[str, list] = {}  # the (1, ·) tensors themselves, for dL/dh_t and dL/dc_t
    for t in order:
        states, gates = family.step(inputs[t : t + 1], states, weights, masks_at(t), layer)
        step_trace = dict(zip(("hidden", "cell"), states))  # the LSTM's c_t is "cell"
        for name, state in step_trace.items():
            raw_states.setdefault(name, [None] * steps)[t] = state
        for name, value in gates.items():  # ... and its candidate gate g_t "gates[cell]"
            kind = "extras" if name.startswith("normalized_") else "gates"
            step_trace[f"{kind}[{name}]"] = value
        for name, value in step_trace.items():
            trace.setdefault(name, [None] * steps)[t] = value[0]
    trace = {name: torch.stack(values) for name, values in trace.items()}
    return trace["hidden"], states, trace, raw_states


def _restore_output(layer, input, outputs: list[Tensor], batched: bool):
    if not batched:
        return outputs[0]
    padded = torch.nn.utils.rnn.pad_sequence(outputs)  # (T, N, F), zeros past each end
    if isinstance(input, PackedSequence):
        if input.sorted_indices is not None:
            padded = padded.index_select(1, input.sorted_indices.to(padded.device))
        data = torch.cat(
            [padded[t, :size] for t, size in enumerate(input.batch_sizes.tolist())]
        )  # time-major, then batch in the run order: the packed layout
        return PackedSequence(
            data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
        )
    return padded.transpose(0, 1) if layer.batch_first else padded


def _stack_finals(finals, slots: int, batch: int, batched: bool) -> Tensor:
    """[(slot, b, (·,))] -> ``(D * num_layers, N, ·)``, or ``(D * num_layers, ·)`` unbatched."""
    by_slot = [[None] * batch for _ in range(slots)]
    for slot, b, state in finals:
        by_slot[slot][b] = state
    stacked = torch.stack([torch.stack(row) for row in by_slot])
    return stacked if batched else stacked[:, 0]


# -- comparing a layer with its cell loop ------------------------------------------------------


def _flat(result) -> dict[str, Tensor]:
    """(output, state(s)) -> {"output": ..., "h_n": ..., "c_n": ...}, packed data for packed."""
    output, state = result
    states = state if isinstance(state, tuple) else (state,)
    flat = {"output": output.data if isinstance(output, PackedSequence) else output}
    for name, tensor in zip(("h_n", "c_n"), states):
        flat[name] = tensor
    return flat


def _zero_if_none(gradient: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if gradient is None else gradient


def _max_difference(actual: Tensor | None, expected: Tensor | None, like: Tensor) -> float:
    actual = torch.zeros_like(like) if actual is None else actual
    expected = torch.zeros_like(like) if expected is None else expected
    if actual.shape != expected.shape:
        raise AssertionError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    return (actual.to(DTYPE) - expected.to(DTYPE)).abs().max().item()


def _internals_differences(internals, traces) -> dict[str, float]:
    """Every h_t, c_t, gate and normalised pre-activation the layer showed, against the loop."""
    differences = {}
    for k, per_layer in enumerate(traces):
        for d, trace in enumerate(per_layer):
            shown = internals[k][d]
            for key, expected in trace.items():
                if key in ("hidden", "cell"):
                    actual = getattr(shown, key)
                else:
                    kind, name = key[:-1].split("[")
                    actual = getattr(shown, kind).get(name)
                if actual is None:
                    raise AssertionError(f"internals[{k}][{d}] has no {key}")
                differences[f"internals[{k}][{d}].{key}"] = _max_difference(
                    actual, expected, expected
                )
    return differences


def compare_with_cell_loop(layer, input, hx=None, *, seed: int = 0) -> dict[str, float]:
    """The largest absolute difference between the layer and its cell loop, per quantity.

    Runs the layer (the torch RNG seeded with ``seed``, internals on, so its masks can be
    read), the cell loop on float64 copies of the weights and the same input and initial
    state, then one backward through each with the same random cotangents on every output
    and final state. Keys: "output", "h_n" ("c_n"), "grad input", "grad h_0" ("grad c_0")
    when ``hx`` is given, "grad <parameter name>" for every parameter, and for the internals
    "internals[k][d].hidden" (".cell", ".gates[name]", ".extras[normalized_*]") and the
    recorded gradients "internals[k][d].hidden_grad" (".cell_grad"), dL/dh_t and dL/dc_t
    from autograd through the loop.
    """
    if isinstance(input, PackedSequence):
        data = input.data.detach().clone().requires_grad_(True)
        input = PackedSequence(data, input.batch_sizes, input.sorted_indices,
                               input.unsorted_indices)
        input_leaf = data
    else:
        input = input_leaf = input.detach().clone().requires_grad_(True)
    if hx is not None:
        given = hx if isinstance(hx, (tuple, list)) else (hx,)
        state_leaves = [state.detach().clone().requires_grad_(True) for state in given]
        hx = tuple(state_leaves) if isinstance(hx, (tuple, list)) else state_leaves[0]
    else:
        state_leaves = []
    torch.manual_seed(seed)
    output, state, internals = layer(input, hx, return_internals=True)
    actual = _flat((output, state))
    parameters = float64_parameters(layer)
    result, traces, raw_states = _loop(layer, input, hx, internals, parameters)
    expected = _flat(result)
    differences = {name: _max_difference(actual[name], expected[name], expected[name])
                   for name in expected}
    differences.update(_internals_differences(internals, traces))
    generator = torch.Generator().manual_seed(seed + 1)
    cotangents = {name: torch.randn(tensor.shape, dtype=DTYPE, generator=generator)
                  for name, tensor in expected.items()}

    def gradients(results, leaves):
        total = sum((results[name].to(DTYPE) * cotangents[name]).sum() for name in results)
        return torch.autograd.grad(total, leaves, allow_unused=True)

    layer_parameters = dict(layer.named_parameters())
    actual_grads = gradients(actual, [input_leaf, *state_leaves, *layer_parameters.values()])
    step_states = [(k, d, b, name, tensors)
                   for k, per_layer in enumerate(raw_states)
                   for d, per_direction in enumerate(per_layer)
                   for b, per_sequence in enumerate(per_direction)
                   for name, tensors in per_sequence.items()]
    leaves = [input_leaf, *state_leaves, *parameters.values()]
    expected_grads = gradients(
        expected, leaves + [tensor for *_, tensors in step_states for tensor in tensors]
    )
    state_grads = iter(expected_grads[len(leaves):])
    expected_grads = expected_grads[: len(leaves)]
    batched = isinstance(input, PackedSequence) or input.dim() == 3
    per_sequence_grads = {}  # (k, d) -> [{"hidden_grad": (L_b, ·), "cell_grad": ...} per b]
    for k, d, b, name, tensors in step_states:
        grads = [_zero_if_none(next(state_grads), tensor)[0] for tensor in tensors]
        sequences = per_sequence_grads.setdefault((k, d), [])
        if len(sequences) <= b:
            sequences.append({})
        sequences[b][f"{name}_grad"] = torch.stack(grads)
    for (k, d), per_sequence in per_sequence_grads.items():
        for name, wanted in _lay_out_trace(layer, per_sequence, batched).items():
            got = getattr(internals[k][d], name)
            if got is None:
                raise AssertionError(f"internals[{k}][{d}].{name} was not recorded")
            differences[f"internals[{k}][{d}].{name}"] = _max_difference(got, wanted, wanted)
    names = ["grad input", *[f"grad {n}_0" for n in ("h", "c")][: len(state_leaves)],
             *[f"grad {name}" for name in layer_parameters]]
    for name, leaf, got, wanted in zip(names, leaves, actual_grads, expected_grads):
        differences[name] = _max_difference(got, wanted, leaf)
    return differences
