"""A layer's streaming fast path: one time step through the whole stack in one operator call.

A model fed one step at a time (``out, state = layer(x_t, state)`` under ``torch.no_grad()``,
or :meth:`~rnnkit.layers.RecurrentLayer.step`) spends a call's time at small sizes on fixed
cost: argument checks, state unpacking and packing, weight lookups, one operator per layer and
direction, output building. torch.nn's ``GRU`` spends about 60 us there; rnnkit's general
forward spent 80 to 120. The fast path takes such a call straight to the family's step
operator (``rnnkit::lstm_step``, ``gru_step``, ``rnn_step``: :mod:`rnnkit.kernels.stream`),
which runs every layer and direction and returns the output and the new state in the shapes the
forward returns.

What is fixed for a layer's configuration is worked out once, in a :class:`StreamPlan` kept on
the layer (``layer._stream``): the step caller, the parameter names in torch.nn's order, the
expected sizes. Any attribute set on the layer (``train()``/``eval()``, ``batch_first``, a
replaced parameter, a changed option) drops the plan, and the next call makes a new one. The
parameters themselves are read from the layer on every call, and the first one's dtype and
device checked against the input's (the operator checks the others), so an in-place update,
``load_state_dict``, ``.to(dtype)`` or ``.to(device)`` is seen at once. ``RNNKIT_BACKEND`` is
read when a plan is made.

A layer has a plan (:func:`plan_for`) when its family has a step operator, its backend runs the
fused kernels, it is one of the families' own classes (not a subclass changing how the weights
or a direction are computed, as the int8 layers and the IndRNN do), and its step draws no
random mask: every variant in eval (layer norm, peepholes, coupled gates; zoneout keeps its
expectation; recurrent dropout and weight drop do nothing), and in training mode none of
zoneout, recurrent dropout, weight drop or dropout between layers (under no_grad these still
draw their masks in training: the general path). A call then takes the plan when
everything holds that the general path would check or change (:meth:`StreamPlan.__call__`):
grad mode off, no internals asked for, a plain CPU float32/float64 tensor of one step in the
layer's layout with its input size, the weights of the same dtype on the CPU, a state of the
expected shapes (or None), no autocast, no torch.compile, torch.jit.trace or ONNX export. Any
other call, an invalid one included, takes the general path, which raises the same errors as
before.
"""

from __future__ import annotations

import operator

import torch
from torch import Tensor

from rnnkit import backends, families
from rnnkit.onnx import ops as onnx_ops


class StreamPlan:
    """What one streaming call of a layer needs, fixed for the layer's configuration."""

    __slots__ = ("step", "weights", "time_axis", "features", "slots", "out_size", "hidden",
                 "has_cell")

    def __init__(self, step, names, time_axis, features, slots, out_size, hidden, has_cell):
        self.step = step  # (x, state, weights) -> (output, state), the family's operator
        self.weights = operator.itemgetter(*names)  # layer._parameters -> weights, torch's order
        self.time_axis = time_axis  # of a batched input
        self.features = features
        self.slots = slots  # num_layers * directions
        self.out_size = out_size  # h's size (proj_size or hidden_size)
        self.hidden = hidden  # c's size
        self.has_cell = has_cell

    def __call__(self, layer, input: Tensor, hx):
        """The forward's result for ``input`` and ``hx`` from the step operator, or None when
        this call is not one the plan covers (the caller then runs the general forward).
        The caller has checked grad mode, torch.compile, ``return_internals`` and that
        ``input`` is a plain tensor."""
        shape = input.shape
        if len(shape) == 3:
            if shape[self.time_axis] != 1:
                return None
            state_shape = (self.slots, shape[1 - self.time_axis], self.out_size)
        elif len(shape) == 2 and shape[0] == 1:
            state_shape = (self.slots, self.out_size)
        else:
            return None
        if shape[-1] != self.features:
            return None
        try:
            weights = self.weights(layer._parameters)
        except KeyError:  # a parameter removed or moved (a parametrization): the general path
            return None
        dtype, like = input.dtype, weights[0]
        if (dtype is not like.dtype or not (dtype is torch.float32 or dtype is torch.float64)
                or not input.is_cpu or not like.is_cpu):
            return None
        if hx is not None:
            if self.has_cell:
                if type(hx) is not tuple or len(hx) != 2:
                    return None
                h, c = hx
                cell_shape = (*state_shape[:-1], self.hidden)
                if (type(c) is not Tensor or c.shape != cell_shape or c.dtype is not dtype
                        or not c.is_cpu):
                    return None
            else:
                h = hx
            if (type(h) is not Tensor or h.shape != state_shape or h.dtype is not dtype
                    or not h.is_cpu):
                return None
        if torch.is_autocast_enabled("cpu") or torch._C._is_tracing() or onnx_ops._capturing:
            return None
        return self.step(input, hx, weights)


def streamable_step(layer) -> bool:
    """Whether ``layer``'s step in its current mode is one the step operators compute: in eval
    every variant (zoneout keeps its expectation, recurrent dropout and weight drop do
    nothing), in training none that draws a random mask (zoneout, recurrent dropout, weight
    drop, dropout between layers)."""
    if not layer.training:
        return True
    variants = layer.variants
    return not (variants.zoneout_hidden or variants.zoneout_cell or variants.recurrent_dropout
                or variants.weight_drop or (layer.dropout and layer.num_layers > 1))


def plan_for(layer, base: type) -> StreamPlan | None:
    """``layer``'s plan, or None when it has no streaming fast path (see the module doc);
    ``base`` is the layers' shared class, whose weights and direction runs the plan stands for."""
    family = layer.family
    kind = type(layer)
    if (family.stream is None or kind._weights is not base._weights
            or kind._run_direction is not base._run_direction or not streamable_step(layer)):
        return None
    if backends.implementation(family, layer.backend).name != "fused":
        return None
    # every weight of each layer and direction, in the order the step operators take them
    # (the layers' _WEIGHT_KINDS: W_ih, W_hh, biases, W_hr, layer norm, peepholes)
    names = [name for index in range(layer.num_layers) for suffix in layer._suffixes()
             for name in layer._weight_names(index, suffix).values() if name is not None]
    if any(layer._parameters.get(name) is None for name in names):
        return None  # one removed, or moved (a parametrization): the general path reads it
    step = families.load(family.stream)(layer.num_layers, layer.bidirectional, layer.bias,
                                        layer.nonlinearity, layer.variants)
    hidden = layer.hidden_size
    return StreamPlan(step, names, 1 if layer.batch_first else 0, layer.input_size,
                      layer.num_layers * (2 if layer.bidirectional else 1),
                      layer.proj_size or hidden, hidden, family.has_cell)
