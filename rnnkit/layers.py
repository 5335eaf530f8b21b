"""The layers users import: RNN, GRU and LSTM, drop-in for their torch.nn twins.

Same constructor arguments, parameter names, shapes and gate order as torch.nn, so a
state_dict loads both ways; the forward runs the hand-written backward through time (or the
fused kernel) and, on request, returns every state and gate over time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit import _validation as check
from rnnkit import backends, families, precision, streaming
from rnnkit import init as gate_init
from rnnkit._sequences import Padded, repack, reverse_index, reverse_time, unpack
from rnnkit.bptt.common import GradientRecorder
from rnnkit.cells.rnn import NONLINEARITIES
from rnnkit.internals import DirectionInternals, Internals
from rnnkit.onnx import ops as onnx_ops
from rnnkit.variants import (
    Variants,
    check_gate_init,
    parse_variants,
    variant_parameters,
)

_LAYER_CLASSES: dict[str, type[nn.Module]] = {}


def layer_class(family: str | families.Family) -> type[nn.Module]:
    """The layer class of a family ("LSTM" -> :class:`LSTM`); an unknown family raises."""
    name = family.name if isinstance(family, families.Family) else families.get(family).name
    return _LAYER_CLASSES[name]


def app_cells() -> dict[str, type[nn.Module]]:
    """The apps' ``--cell`` names with their layer classes (``{"lstm": LSTM, ...}``), read from
    the families' declarations (the names that need no special init)."""
    return {cell: layer_class(family) for cell, (family, init) in families.cli_cells().items()
            if init is None}


class _RecurrentLayer(nn.Module):
    """Shared machinery of every family's layer: parameters, validation, layers, directions.

    What differs between families is read from their declaration (:mod:`rnnkit.families`).
    A subclass named as a registered family is that family's layer (:func:`layer_class`)."""

    # the streaming fast path's plan (rnnkit.streaming): None until the next call makes one,
    # False when the layer has none; dropped whenever an attribute of the layer is set
    _stream: streaming.StreamPlan | bool | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if _RecurrentLayer in cls.__bases__:
            _LAYER_CLASSES[families.get(cls.__name__).name] = cls

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
        backend: str = "auto",
        layer_norm: bool = False,
        zoneout=0.0,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        peephole: bool = False,
        coupled_gates: bool = False,
        forget_bias: float | None = None,
        init: str | None = None,
        chrono_max_len: int | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.family = families.get(mode)  # an unknown family raises here
        self.mode = self.family.name
        self.input_size = check.positive_int(name, "input_size", input_size)
        self.hidden_size = check.positive_int(name, "hidden_size", hidden_size)
        self.num_layers = check.positive_int(name, "num_layers", num_layers)
        self.dropout = check.dropout_probability(name, "dropout", dropout)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(
                f"{name}: `proj_size` must be a non-negative integer, got {proj_size!r}"
            )
        if proj_size and not self.family.projection:
            raise ValueError(f"{name}: `proj_size` is only supported by LSTM, got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(
                f"{name}: `proj_size` must be smaller than hidden_size={hidden_size}, "
                f"got {proj_size}"
            )
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"{name}: `nonlinearity` must be one of {', '.join(NONLINEARITIES)}, "
                f"got {nonlinearity!r}"
            )
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = proj_size
        self.nonlinearity = nonlinearity
        self.backend = backends.check_backend(backend)
        # load (or build) the kernels and the family's functions now, outside any trace:
        # torch.compile(fullgraph=True) cannot follow the loader's first call (a lock, a build,
        # an import that registers a family's operators), only its cached answer
        if (backends.implementation(families.get(mode), self.backend).name == "fused"
                and self.family.stream is not None):
            families.load(self.family.stream)  # the step operators' fakes, registered
        self.variants = parse_variants(
            name, self.family, proj_size, layer_norm, zoneout, recurrent_dropout, weight_drop,
            peephole, coupled_gates,
        )
        self.forget_bias, self.init, self.chrono_max_len = check_gate_init(
            name, self.family, bias, forget_bias, init, chrono_max_len
        )
        self._run = self.family.runner()
        factory = {"device": device, "dtype": dtype}
        gate_size = self.family.gate_rows(hidden_size)
        out_size = proj_size or hidden_size
        directions = 2 if bidirectional else 1
        # registered in torch's order, so a seeded init draws the same numbers as torch.nn
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * directions
            for suffix in self._suffixes():
                shapes = {
                    f"weight_ih_l{layer}{suffix}": (gate_size, layer_input),
                    f"weight_hh_l{layer}{suffix}": self.family.recurrent_shape(gate_size, out_size),
                }
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gate_size,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gate_size,)
                if proj_size:
                    shapes[f"weight_hr_l{layer}{suffix}"] = (proj_size, hidden_size)
                for param_name, shape in shapes.items():
                    self.register_parameter(param_name, nn.Parameter(torch.empty(shape, **factory)))
        # the variants' parameters come after torch's, so torch's still draw torch's numbers
        self._variant_init = {}
        for layer in range(num_layers):
            for suffix in self._suffixes():
                extra = variant_parameters(self.variants, self.family, hidden_size,
                                           f"l{layer}{suffix}")
                for param_name, (shape, value) in extra.items():
                    self.register_parameter(param_name, nn.Parameter(torch.empty(shape, **factory)))
                    self._variant_init[param_name] = value
        self.reset_parameters()

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        self.__dict__["_stream"] = None  # train()/eval(), an option, a parameter: plan again

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        self.__dict__["_stream"] = None

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_stream", None)  # a copy makes its own plan (this one holds a closure)
        return state

    def _stream_plan(self) -> streaming.StreamPlan | bool:
        plan = streaming.plan_for(self, _RecurrentLayer) or False
        self.__dict__["_stream"] = plan
        return plan

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as torch.nn does; layer-norm
        gains 1 and biases 0; then the forget-gate bias or chrono init when asked for."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, weight in self.named_parameters():
            value = self._variant_init.get(name)
            if value is None:
                nn.init.uniform_(weight, -bound, bound)
            else:
                nn.init.constant_(weight, value)
        if self.forget_bias is not None:
            gate_init.forget_bias(self, self.forget_bias)
        if self.init == "chrono":
            gate_init.chrono_init(self, self.chrono_max_len)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        default = self.family.nonlinearity
        if default is not None and self.nonlinearity != default:
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        if self.backend != "auto":
            text += f", backend={self.backend!r}"
        variants = self.variants
        if variants.zoneout_hidden or variants.zoneout_cell:  # as the constructor takes it
            both = (variants.zoneout_hidden, variants.zoneout_cell)
            single = variants.zoneout_cell == (variants.zoneout_hidden if self.family.has_cell
                                               else 0.0)
            text += f", zoneout={variants.zoneout_hidden if single else both!r}"
        for field, default in ((f, getattr(Variants(), f)) for f in Variants.__dataclass_fields__):
            if field.startswith("zoneout_"):
                continue
            if getattr(variants, field) != default:
                text += f", {field}={getattr(variants, field)!r}"
        for field in ("forget_bias", "init", "chrono_max_len"):
            if getattr(self, field) is not None:
                text += f", {field}={getattr(self, field)!r}"
        return text

    @property
    def _name(self) -> str:
        return type(self).__name__

    def flatten_parameters(self) -> None:
        """Does nothing, as ``torch.nn.RNNBase.flatten_parameters`` does off cuDNN: rnnkit's
        kernels read the parameters where they are. Kept so code written for torch.nn runs."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """torch.nn's parameters per layer and direction, in torch's order: ``weight_ih``,
        ``weight_hh``, ``bias_ih``, ``bias_hh`` (with bias) and ``weight_hr`` (projection)."""
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return [
            [getattr(self, f"{kind}_l{layer}{suffix}") for kind in kinds
             if hasattr(self, f"{kind}_l{layer}{suffix}")]
            for layer in range(self.num_layers) for suffix in self._suffixes()
        ]

    def _like(self) -> Tensor:
        """The tensor inputs and states must match in dtype and device (int8 layers: a scale)."""
        weight = self._parameters.get("weight_ih_l0")  # no nn.Module.__getattr__ call
        return weight if weight is not None else self.weight_ih_l0

    _WEIGHT_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr",
                     "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
                     "ln_cell_weight", "ln_cell_bias", "peephole_weight")

    def _weight_names(self, layer: int, suffix: str) -> dict[str, str | None]:
        """{kind: attribute name, or None where the layer has no such weight}, worked out once
        per layer and direction: looking up an absent attribute costs nn.Module an exception,
        seven a call for a plain LSTM (what a streaming call at T=1 feels)."""
        names = self.__dict__.setdefault("_weight_name_cache", {})
        found = names.get((layer, suffix))
        if found is None:
            found = {}
            for kind in self._WEIGHT_KINDS:
                name = f"{kind}_l{layer}{suffix}"
                found[kind] = name if hasattr(self, name) else None
            names[(layer, suffix)] = found
        return found

    def _weights(self, layer: int, suffix: str) -> dict[str, Tensor | None]:
        names = self._weight_names(layer, suffix)
        # a parameter straight from the dict (nn.Module.__getattr__ is a Python call per lookup);
        # a buffer or a parametrization's property as an attribute
        parameters = self._parameters
        try:
            weights = {kind: None if name is None else
                       parameters[name] if name in parameters else getattr(self, name)
                       for kind, name in names.items()}
        except AttributeError:  # a weight removed since: look again
            self.__dict__["_weight_name_cache"].clear()
            names = self._weight_names(layer, suffix)
            weights = {kind: None if name is None else getattr(self, name)
                       for kind, name in names.items()}
        if self.variants.weight_drop and self.training:
            # DropConnect on the recurrent weights, once per forward (arXiv 1708.02182)
            weights["weight_hh"] = F.dropout(weights["weight_hh"], self.variants.weight_drop)
        return weights

    # -- input handling -------------------------------------------------------------------

    def _prepare_input(self, input) -> tuple[Padded, bool, PackedSequence | None]:
        """Any accepted input -> time-major padded batch in run order: (padded, batched, packed)."""
        if isinstance(input, PackedSequence):
            check.input_dims(self._name, input.data, (2,), "packed data: (sum of lengths, H_in)")
            check.feature_size(self._name, input.data, self.input_size)
            check.matching_tensor(self._name, "input", input.data, self._like())
            return unpack(input), True, input
        layout = "(L, H_in) unbatched or " + (
            "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        )
        check.input_dims(self._name, input, (2, 3), layout)
        check.feature_size(self._name, input, self.input_size)
        check.matching_tensor(self._name, "input", input, self._like())
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        if input.shape[0] == 0:
            raise ValueError(
                f"{self._name}: `input` has no timesteps (shape {check.shape_text(input.shape)})"
            )
        return Padded(input, None, None), batched, None

    def _prepare_state(
        self, hx, batch: int, batched: bool, packed: PackedSequence | None, like: Tensor
    ):
        """The initial state(s) as ``(D * num_layers, N, ·)`` in run order; zeros when None."""
        directions = 2 if self.bidirectional else 1
        out_size = self.proj_size or self.hidden_size
        shapes = [("h_0", out_size, "hidden_size" if not self.proj_size else "proj_size")]
        if self.family.has_cell:
            shapes.append(("c_0", self.hidden_size, "hidden_size"))
        if hx is None:
            return [
                like.new_zeros(directions * self.num_layers, batch, size) for _, size, _ in shapes
            ]
        if self.family.has_cell:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError(
                    f"{self._name}: `hx` must be a tuple (h_0, c_0), got {type(hx).__name__}"
                )
            states = list(hx)
        else:
            states = [hx]
        prepared = []
        for state, (name, size, size_name) in zip(states, shapes):
            if batched:
                expected = (directions * self.num_layers, batch, size)
                meaning = f"(num_layers * num_directions, batch, {size_name})"
            else:
                expected = (directions * self.num_layers, size)
                meaning = f"(num_layers * num_directions, {size_name}) for unbatched input"
            check.state_shape(self._name, name, state, expected, meaning)
            check.matching_tensor(self._name, name, state, self._like())
            if not batched:
                state = state.unsqueeze(1)
            if packed is not None and packed.sorted_indices is not None:
                state = state.index_select(1, packed.sorted_indices)
            prepared.append(state)
        return prepared

    # -- the recurrence ---------------------------------------------------------------------

    def forward(self, input, hx=None, *, return_internals: bool = False):
        # a streaming call (one step, no gradient): one operator for the whole stack, when the
        # layer's plan covers it (rnnkit.streaming); anything else takes the general path
        stream = self._stream
        if stream is None and not torch.compiler.is_compiling():
            stream = self._stream_plan()
        if (stream and not return_internals and type(input) is Tensor
                and not torch.is_grad_enabled() and not torch.compiler.is_compiling()):
            result = stream(self, input, hx)
            if result is not None:
                return result
        if not return_internals and (torch.onnx.is_in_onnx_export() or onnx_ops._capturing):
            # one standard ONNX node per stacked layer (or a Scan): see rnnkit.onnx
            if torch.onnx.is_in_onnx_export():
                from rnnkit.onnx import register

                register()  # the translations, read by torch.onnx.export after tracing
            return onnx_ops.export_forward(self, input, hx)
        if precision.autocast_bf16():  # torch.nn takes any floating input under autocast
            dtype = self._like().dtype  # int8 layers: their float32 scales
            input, hx = precision.matched(input, dtype), precision.matched(hx, dtype)
        padded, batched, packed = self._prepare_input(input)
        x, mask, lengths = padded.data, padded.mask, padded.lengths
        steps, batch = x.shape[0], x.shape[1]
        states = self._prepare_state(hx, batch, batched, packed, x)
        functions = backends.implementation(self.family, self.backend)
        plan = precision.plan(self, x, functions)  # bf16 on the fused kernels: rnnkit.precision
        if plan is not None:
            x, mask = precision.widened(x), precision.widened(mask)
            states = [precision.widened(state) for state in states]
        directions = len(self._suffixes())
        index = reverse_index(lengths, steps, batch, x.device) if self.bidirectional else None
        layout = self._internals_layout(batched, packed, mask)
        finals: list[list[Tensor]] = [[] for _ in states]
        internals = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs, layer_internals = [], []
            for direction, suffix in enumerate(self._suffixes()):
                slot = layer * directions + direction
                run_input = layer_input if direction == 0 else reverse_time(layer_input, index)
                recorder = GradientRecorder() if return_internals else None
                result = self._run_direction(
                    functions,
                    run_input,
                    [s[slot] for s in states],
                    self._weights(layer, suffix),
                    mask,
                    recorder,
                    plan,
                )
                output, final_states, extras = result
                if direction == 1:
                    output = reverse_time(output, index)
                outputs.append(output)
                for collected, final in zip(finals, final_states):
                    collected.append(final)
                if return_internals:
                    layer_internals.append(
                        self._direction_internals(
                            output, extras, recorder, layout, direction, index
                        )
                    )
            layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            internals.append(layer_internals)
        final = [_stacked(collected) for collected in finals]  # (D * num_layers, N, ·)
        if plan is not None:  # torch.nn's result dtype (rnnkit.precision)
            layer_input = layer_input.to(plan.result)
            final = [state.to(plan.result) for state in final]
        output = self._restore_output(layer_input, batched, packed)
        if packed is not None and packed.unsorted_indices is not None:
            final = [state.index_select(1, packed.unsorted_indices) for state in final]
        if not batched:
            final = [state.squeeze(1) for state in final]
        state_out = tuple(final) if self.family.has_cell else final[0]
        if return_internals:
            return output, state_out, Internals(internals)
        return output, state_out

    def step(self, x_t: Tensor, state=None):
        """One time step of a stream: ``(y_t, state)`` from ``x_t`` and the state the previous
        call returned (None at the start: zeros).

        ``x_t`` is ``(N, H_in)`` (one step of a batch) or, in the layer's own layout, a
        sequence of one step (``(1, N, H_in)``, or ``(N, 1, H_in)`` with batch_first);
        ``y_t`` has the same layout with ``D * H_out`` features, and ``state`` is what
        :meth:`forward` returns (``h_n``, or ``(h_n, c_n)``). Under ``torch.no_grad()`` (or
        with weights that need no gradient) each call takes the inference operators and keeps
        nothing for a backward. Feeding T steps one at a time gives the numbers of one call on
        the whole sequence (in eval mode; in training zoneout and dropout draw new masks)::

            state = None
            with torch.no_grad():
                for x_t in stream:  # (N, H_in) each
                    y_t, state = layer.step(x_t, state)
        """
        if self.bidirectional:
            raise ValueError(
                f"{self._name}.step: a bidirectional layer cannot stream (its second direction "
                "reads the sequence from the end); call the layer on the whole sequence"
            )
        if x_t.dim() == 2:
            time_axis = 1 if self.batch_first else 0
            output, state = self(x_t.unsqueeze(time_axis), state)
            return output.squeeze(time_axis), state
        if x_t.dim() == 3 and x_t.shape[1 if self.batch_first else 0] == 1:
            return self(x_t, state)
        raise ValueError(
            f"{self._name}.step: `x_t` must be one step, (N, H_in) or "
            f"{'(N, 1, H_in)' if self.batch_first else '(1, N, H_in)'}, got shape "
            f"{check.shape_text(x_t.shape)}"
        )

    def _run_direction(self, functions, x, states, weights, mask, recorder, plan=None):
        """One layer, one direction: (output, final states, extra tensors for internals)."""
        if plan is None:
            return self._run(functions, x, states, weights, self.variants, self.training,
                             self.nonlinearity, mask, recorder)
        with plan.scope():  # bf16 on the fused kernels: rnnkit.precision
            return self._run(functions, x, states, plan.weights(weights), self.variants,
                             self.training, self.nonlinearity, mask, recorder)

    def _restore_output(self, output: Tensor, batched: bool, packed: PackedSequence | None):
        if packed is not None:
            return repack(output, packed)
        if not batched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output

    def _internals_layout(self, batched, packed, mask):
        """Time-major run order -> the caller's layout and batch order, padded steps zero."""
        unsorted = None if packed is None else packed.unsorted_indices

        def layout(tensor: Tensor) -> Tensor:
            if tensor.dim() == 2:  # one row per sequence (N, ·), e.g. a recurrent-dropout mask
                if unsorted is not None:
                    tensor = tensor.index_select(0, unsorted)
                return tensor if batched else tensor.squeeze(0)
            if mask is not None:
                tensor = tensor * mask
            if unsorted is not None:
                tensor = tensor.index_select(1, unsorted)
            if not batched:
                return tensor.squeeze(1)
            return tensor.transpose(0, 1) if self.batch_first else tensor

        return layout

    def _direction_internals(self, output, extras, recorder, layout, direction, index):
        def in_time_order(tensor: Tensor) -> Tensor:
            return reverse_time(tensor, index) if direction == 1 else tensor

        def arrange(tensor: Tensor) -> Tensor:
            return layout(in_time_order(tensor))

        gates = {}
        if "gates" in extras:
            names = self.family.gates
            for name, gate in zip(names, extras["gates"].detach().chunk(len(names), dim=2)):
                gates[name] = arrange(gate)
        cell = arrange(extras["cells"].detach()) if "cells" in extras else None
        more = {}
        for name, tensor in extras.items():
            if name in ("cells", "gates") or tensor is None:
                continue
            more[name] = layout(tensor) if tensor.dim() == 2 else arrange(tensor.detach())
        hidden = output.detach()
        if torch.compiler.is_compiling():
            # a detached view returned beside the view it detaches: AOT autograd replays it
            # from the wrong base (torch 2.13: "incorrect out shape after application of
            # ViewMeta sequence"); a copy, under compile only, with return_internals only
            hidden = hidden.clone()
        return DirectionInternals(
            hidden=layout(hidden),
            cell=cell,
            gates=gates,
            extras=more,
            _recorder=recorder,
            _layout=arrange,
        )


def _stacked(states: list[Tensor]) -> Tensor:
    """The final states of every layer and direction as one tensor: a view of the only one
    when that one is a tensor of its own (the inference operators' h_n and c_n), so a
    streaming call copies nothing; else a copy, as torch.stack makes (a state that is a view
    of the output must not change with it)."""
    if (len(states) == 1 and states[0]._base is None and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()):
        return states[0].unsqueeze(0)
    return torch.stack(states)


RecurrentLayer = _RecurrentLayer  # what every family's layer is (isinstance checks)

_SHARED_DOC = """
    Arguments:
        input_size: features of x_t (H_in).
        hidden_size: features of h_t (H).
        num_layers: stacked layers; layer k > 0 reads layer k-1's output. Default 1.
        bias: if False, no b_ih and b_hh. Default True.
        batch_first: input and output as (N, L, ·) instead of (L, N, ·); states keep
            (D * num_layers, N, ·). Default False.
        dropout: dropout on the output of every layer but the last, in training. Default 0.
        bidirectional: run a second direction from the end; outputs concatenated. Default False.
        device, dtype: where and how the parameters are created.

    Keyword-only options (rnnkit's own; the defaults give torch.nn's layer exactly):
        backend: "auto" (fused kernel when built, else reference), "fused" or "reference".
        zoneout: p_h, or (p_h, p_c) for the LSTM: each unit keeps its previous state with
            probability p at each step in training, and the share p of it in eval
            (arXiv 1606.01305).
        recurrent_dropout: dropout on h_{t-1} in the recurrent product, one mask per sequence
            (variational, arXiv 1512.05287).
        weight_drop: DropConnect on W_hh, once per forward in training (arXiv 1708.02182).
        LSTM and GRU: layer_norm (arXiv 1607.06450), forget_bias (the LSTM forget / GRU update
            gate bias), init="chrono" with chrono_max_len (arXiv 1804.11188).
        LSTM only: peephole (i, f see c_{t-1}, o sees c_t), coupled_gates (i = 1 - f).

    Inputs: input, hx
        input: (L, H_in) unbatched, (L, N, H_in) or (N, L, H_in) with batch_first, or a
            PackedSequence (sorted or not).
        hx: initial state(s), (D * num_layers, N, H_out); zeros when omitted.
        return_internals (keyword): also return an :class:`rnnkit.Internals` with every h_t,
            c_t and gate over time, per layer and direction (and variant masks and
            normalised pre-activations in ``extras``). Under torch.compile and torch.export
            too; the recorded gradients (``hidden_grad``, ``cell_grad``) are eager-only and
            stay None in a compiled or exported run.

    Outputs: output, h_n (and internals when asked)
        output: (L, N, D * H_out) (or batch_first, unbatched, or packed like the input).
        h_n: (D * num_layers, N, H_out), the state after each sequence's last real step.
"""


class RNN(_RecurrentLayer):
    __doc__ = (
        r"""Vanilla (Elman) recurrent network, one tanh or relu per step.

    :math:`h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    Equivalent to ``h = cells.rnn_cell(x_t, h, W_ih, W_hh, b_ih, b_hh)`` for each t, per
    layer and direction; drop-in for ``torch.nn.RNN``. Parameters ``weight_ih_l{k}``
    ``(H, H_in)``, ``weight_hh_l{k}`` ``(H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(H,)``,
    plus ``_reverse`` for the second direction; all drawn from U(-1/sqrt(H), 1/sqrt(H)).
    ``nonlinearity`` is "tanh" or "relu".
"""
        + _SHARED_DOC
    )

    def __init__(
        self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
        batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
        *, backend="auto", zoneout=0.0, recurrent_dropout=0.0, weight_drop=0.0,
        **gated_only,
    ):  # fmt: skip
        # gated_only: LSTM/GRU options, accepted here only to be refused with a clear message
        super().__init__(
            "RNN", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, nonlinearity, device, dtype, backend, zoneout=zoneout,
            recurrent_dropout=recurrent_dropout, weight_drop=weight_drop, **gated_only,
        )  # fmt: skip


class GRU(_RecurrentLayer):
    __doc__ = (
        r"""Gated recurrent unit, torch's variant (reset gate after the recurrent product).

    Equivalent to ``h, gates = cells.gru_cell(x_t, h, W_ih, W_hh, b_ih, b_hh)`` for each t;
    drop-in for ``torch.nn.GRU``. Parameters ``weight_ih_l{k}`` ``(3H, H_in)`` and
    ``weight_hh_l{k}`` ``(3H, H)`` with blocks reset, update, new; biases ``(3H,)``. With
    layer_norm also ``ln_ih_weight_l{k}``, ``ln_ih_bias_l{k}``, ``ln_hh_weight_l{k}``,
    ``ln_hh_bias_l{k}`` ``(3H,)``.
"""
        + _SHARED_DOC
    )

    def __init__(
        self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
        dropout=0.0, bidirectional=False, device=None, dtype=None, *, backend="auto",
        layer_norm=False, zoneout=0.0, recurrent_dropout=0.0, weight_drop=0.0,
        forget_bias=None, init=None, chrono_max_len=None, **lstm_only,
    ):  # fmt: skip
        # lstm_only: peephole / coupled_gates, accepted only to be refused with a clear message
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, "tanh", device, dtype, backend, layer_norm=layer_norm,
            zoneout=zoneout, recurrent_dropout=recurrent_dropout, weight_drop=weight_drop,
            forget_bias=forget_bias, init=init, chrono_max_len=chrono_max_len, **lstm_only,
        )  # fmt: skip


class LSTM(_RecurrentLayer):
    __doc__ = (
        r"""Long short-term memory: a cell state written through input, forget and output gates.

    Equivalent to ``h, c, gates = cells.lstm_cell(x_t, h, c, W_ih, W_hh, b_ih, b_hh, W_hr)``
    for each t; drop-in for ``torch.nn.LSTM``. Parameters ``weight_ih_l{k}`` ``(4H, H_in)``,
    ``weight_hh_l{k}`` ``(4H, H_out)`` with blocks input, forget, cell, output; biases
    ``(4H,)``; with ``proj_size`` > 0 also ``weight_hr_l{k}`` ``(proj_size, H)`` and
    H_out = proj_size. hx is the tuple (h_0, c_0); the output's second item (h_n, c_n).
    With layer_norm also ``ln_ih_weight_l{k}``, ``ln_ih_bias_l{k}``, ``ln_hh_weight_l{k}``,
    ``ln_hh_bias_l{k}`` ``(4H,)`` and ``ln_cell_weight_l{k}``, ``ln_cell_bias_l{k}`` ``(H,)``;
    with peephole ``peephole_weight_l{k}`` ``(3H,)`` (input, forget, output). With
    coupled_gates the input-gate block of the weights is unused (its gradient is zero).
"""
        + _SHARED_DOC
    )

    def __init__(
        self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
        dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, *,
        backend="auto", layer_norm=False, zoneout=0.0, recurrent_dropout=0.0, weight_drop=0.0,
        peephole=False, coupled_gates=False, forget_bias=None, init=None, chrono_max_len=None,
    ):  # fmt: skip
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size, "tanh", device, dtype, backend, layer_norm=layer_norm,
            zoneout=zoneout, recurrent_dropout=recurrent_dropout, weight_drop=weight_drop,
            peephole=peephole, coupled_gates=coupled_gates, forget_bias=forget_bias,
            init=init, chrono_max_len=chrono_max_len,
        )  # fmt: skip


class IndRNN(_RecurrentLayer):
    r"""Independently recurrent network (Li et al. 2018, arXiv 1803.04831).

    :math:`h_t = \phi(W_{ih} x_t + b_{ih} + u \odot h_{t-1} + b_{hh})`, with one recurrent
    weight per unit (the vector ``u``), ``phi`` relu (default) or tanh. A unit's state feeds only
    itself, so the gradient through T steps is a product of scalars ``u_n phi'``: bounded, it
    neither vanishes nor explodes. ``recurrent_max_len=T`` applies the paper's constraint for
    a relu network to keep memories T steps long: ``|u| <= 2 ** (1 / T)`` (u is clipped to it
    in every forward) and the paper's initialisation (its authors' code): u drawn from
    U(0, 2 ** (1 / T)), except the last layer's from U(2 ** (-1 / T), 2 ** (1 / T)) so that
    it starts keeping what it is given for T steps, and the biases zero. Without it, u is
    drawn from U(0, 1) and the biases as torch.nn draws them.

    Equivalent to ``h = cells.indrnn_cell(x_t, h, W_ih, u, b_ih, b_hh)`` for each t, per layer
    and direction. Parameters ``weight_ih_l{k}`` ``(H, H_in)``, ``weight_hh_l{k}`` ``(H,)``
    (u), ``bias_ih_l{k}``, ``bias_hh_l{k}`` ``(H,)``, plus ``_reverse`` for the second
    direction. No torch.nn twin; no in-step variants.
"""
    __doc__ += _SHARED_DOC

    def __init__(
        self, input_size, hidden_size, num_layers=1, nonlinearity="relu", bias=True,
        batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
        *, backend="auto", recurrent_max_len=None, **others,
    ):  # fmt: skip
        if recurrent_max_len is not None and (
            isinstance(recurrent_max_len, bool) or not isinstance(recurrent_max_len, int)
            or recurrent_max_len < 1
        ):
            raise ValueError(
                "IndRNN: `recurrent_max_len` must be a positive integer (the longest memory "
                f"to keep, in steps), got {recurrent_max_len!r}"
            )
        self.recurrent_max_len = recurrent_max_len
        super().__init__(
            "IndRNN", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, nonlinearity, device, dtype, backend, **others,
        )  # fmt: skip

    @property
    def recurrent_max(self) -> float | None:
        """The bound on |u|, ``2 ** (1 / recurrent_max_len)``, or None."""
        return None if self.recurrent_max_len is None else 2.0 ** (1.0 / self.recurrent_max_len)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        bound = self.recurrent_max
        last = f"weight_hh_l{self.num_layers - 1}"
        with torch.no_grad():
            for name, weight in self.named_parameters():
                if bound is None:
                    if name.startswith("weight_hh"):
                        weight.uniform_(0.0, 1.0)
                elif name.startswith(last):  # the top layer keeps its memories T steps
                    weight.uniform_(1.0 / bound, bound)
                elif name.startswith("weight_hh"):
                    weight.uniform_(0.0, bound)
                elif name.startswith("bias"):
                    weight.zero_()

    def _weights(self, layer: int, suffix: str) -> dict[str, Tensor | None]:
        weights = super()._weights(layer, suffix)
        if self.recurrent_max is not None:
            weights["weight_hh"] = weights["weight_hh"].clamp(-self.recurrent_max,
                                                              self.recurrent_max)
        return weights

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.recurrent_max_len is not None:
            text += f", recurrent_max_len={self.recurrent_max_len}"
        return text
