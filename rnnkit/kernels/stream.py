"""The streaming operators' Python half (``csrc/stream.cpp``): their fakes, and the step
functions a layer's streaming fast path calls.

``rnnkit::lstm_step``, ``gru_step`` and ``rnn_step`` run one time step (T=1) of a whole stack
of layers and directions in one call: ``(output, h_n[, c_n])`` from ``x`` ``[1, N, I]``
(``[N, 1, I]`` batch first, ``[1, I]`` unbatched), the state (None: zeros) and the weights as
torch.nn's flat list (then each layer's layer-norm and peephole parameters), with the eval-mode
step of the variants (layer norm, peepholes, coupled gates, zoneout's expectation). They keep
nothing for a backward and have no autograd formula: a layer calls them only when no gradient
can be asked for (:mod:`rnnkit.streaming` says when). Their fakes let torch.compile and
torch.export trace a direct call.

Each family names its step maker as ``stream`` (``rnnkit.families``): a layer makes its caller
once per configuration (``lstm_stepper`` and the others) and calls it with ``(x, state,
weights)``, getting back exactly what its forward returns.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from rnnkit.kernels import ops
from rnnkit.variants import Variants


def _shapes(x: Tensor, weights, num_layers: int, bidirectional: bool, gates: int,
            projected: bool):
    """(output shape, h_n shape, c_n shape) of a step operator, from its arguments."""
    directions = 2 if bidirectional else 1
    hidden = weights[0].shape[0] // gates
    per = len(weights) // (num_layers * directions)
    out_size = weights[per - 1].shape[0] if projected else hidden
    slots = num_layers * directions
    if x.dim() == 3:
        batch = x.shape[0] * x.shape[1]  # one of the two is the single step
        states = (slots, batch, out_size), (slots, batch, hidden)
    else:
        states = (slots, out_size), (slots, hidden)
    return (*x.shape[:-1], directions * out_size), *states


def _fake_lstm_step(x, h0, c0, weights, num_layers, bidirectional, has_bias, layer_norm=False,
                    peephole=False, coupled=False, zoneout_h=0.0, zoneout_c=0.0):
    variants = layer_norm or peephole or coupled or zoneout_h or zoneout_c
    per = len(weights) // (num_layers * (2 if bidirectional else 1))
    output, h_shape, c_shape = _shapes(x, weights, num_layers, bidirectional, 4,
                                       not variants and per == (4 if has_bias else 2) + 1)
    return x.new_empty(output), x.new_empty(h_shape), x.new_empty(c_shape)


def _fake_single_state(gates: int):
    def fake(x, h0, weights, num_layers, bidirectional, has_bias, *_options):
        output, h_shape, _ = _shapes(x, weights, num_layers, bidirectional, gates, False)
        return x.new_empty(output), x.new_empty(h_shape)

    return fake


for _name, _fake in (("lstm_step", _fake_lstm_step), ("gru_step", _fake_single_state(3)),
                     ("rnn_step", _fake_single_state(1))):
    ops.define_fake(_name, _fake)


def lstm_stepper(num_layers: int, bidirectional: bool, has_bias: bool, nonlinearity: str,
                 variants: Variants) -> Callable:
    """``step(x, (h0, c0) or None, weights) -> (output, (h_n, c_n))`` on ``rnnkit::lstm_step``."""
    options = (variants.layer_norm, variants.peephole, variants.coupled_gates,
               float(variants.zoneout_hidden), float(variants.zoneout_cell))

    def step(x, state, weights):
        h0, c0 = (None, None) if state is None else state
        output, h_n, c_n = ops.kernels.lstm_step(x, h0, c0, weights, num_layers, bidirectional,
                                                 has_bias, *options)
        return output, (h_n, c_n)

    return step


def gru_stepper(num_layers: int, bidirectional: bool, has_bias: bool, nonlinearity: str,
                variants: Variants) -> Callable:
    """``step(x, h0 or None, weights) -> (output, h_n)`` on ``rnnkit::gru_step``."""
    layer_norm, zoneout = variants.layer_norm, float(variants.zoneout_hidden)

    def step(x, state, weights):
        return ops.kernels.gru_step(x, state, weights, num_layers, bidirectional, has_bias,
                                    layer_norm, zoneout)

    return step


def rnn_stepper(num_layers: int, bidirectional: bool, has_bias: bool, nonlinearity: str,
                variants: Variants) -> Callable:
    """``step(x, h0 or None, weights) -> (output, h_n)`` on ``rnnkit::rnn_step``."""
    relu, zoneout = nonlinearity == "relu", float(variants.zoneout_hidden)

    def step(x, state, weights):
        return ops.kernels.rnn_step(x, state, weights, num_layers, bidirectional, has_bias, relu,
                                    zoneout)

    return step
