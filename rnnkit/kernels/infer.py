"""The inference operators' Python half (``csrc/infer.cpp``): when they run, their fakes, and
the combined bias they share with the training path, cached per weight version.

A forward takes the inference operators (``rnnkit::lstm_infer``, ``gru_infer``, ``rnn_infer``,
``indrnn_infer`` and the variants' ``*_variant_infer``) when no gradient can be asked of it:
grad mode off (``torch.no_grad()``, ``torch.inference_mode()``) or no input and no weight
requiring grad, and no recorder (``return_internals=True`` wants the gates and cells the
inference kernels do not keep). They return only (output, h_n[, c_n]): no gates, no per-step
cell states, nothing saved for a backward. Under torch.compile (which guards on grad mode and
retraces when it changes) and torch.export the same rule picks the operator, with the fake
implementations below. torch.jit.trace always records the training operators: its graph is
replayed whatever the grad mode (and its check retraces without grad), and the inference
operators have no backward.

Separate operators rather than a flag on the training forwards: their results differ (three
tensors, none of the backward's buffers), so their schemas, fakes and the training operators'
autograd formulas each stay simple, and a trace names the path it took.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from rnnkit.kernels import ops

INFER_OPERATORS = ("lstm_infer", "gru_infer", "rnn_infer", "indrnn_infer", "lstm_variant_infer",
                   "gru_variant_infer", "rnn_variant_infer")


def _fake_output(x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape[0], x.shape[1], h0.shape[1]), h0.new_empty(h0.shape)


def _fake_lstm(x, h0, c0, *_rest):
    return (*_fake_output(x, h0), c0.new_empty(c0.shape))


def _fake_single_state(x, h0, *_rest):
    return _fake_output(x, h0)


_FAKES = {
    "lstm_infer": _fake_lstm,
    "gru_infer": _fake_single_state,
    "rnn_infer": _fake_single_state,
    "indrnn_infer": _fake_single_state,
    "lstm_variant_infer": _fake_lstm,
    "gru_variant_infer": _fake_single_state,
    "rnn_variant_infer": _fake_single_state,
}
for _name, _fake in _FAKES.items():
    ops.define_fake(_name, _fake)


def wanted(recorder, tensors) -> bool:
    """Whether a forward takes the inference operators: no recorder, not in torch.jit.trace,
    and no gradient possible (grad mode off, or none of ``tensors`` requires grad)."""
    if recorder is not None or torch.jit.is_tracing():
        return False
    if not torch.is_grad_enabled():
        return True
    return not any(t is not None and t.requires_grad for t in tensors)


def call(name: str, *inputs):
    """The inference operator ``name``: the operator itself when traced, else its CPU kernel
    below the autograd key (no autograd node to build)."""
    if ops._traced():
        return getattr(ops.kernels, name)(*inputs)
    with ops.BELOW_AUTOGRAD():
        return getattr(ops.kernels, name)(*inputs)


# b_ih + b_hh, for the kernels that take one bias, kept per (b_ih, b_hh) pair and recomputed
# when either changes (an optimizer step, load_state_dict, `.data =`): a streaming call at T=1
# otherwise pays an add and an allocation for it every step.
_combined: dict[int, tuple] = {}  # id(b_ih) -> (ref(b_ih), ref(b_hh), key, b_ih + b_hh)


def combined_bias(bias_ih: Tensor | None, bias_hh: Tensor | None) -> Tensor | None:
    """b_ih + b_hh for an inference call (no autograd), cached by the two tensors' identity,
    storage and version counter."""
    if bias_ih is None:
        return None
    if ops._traced() or bias_ih.is_inference() or bias_hh.is_inference():
        with torch.no_grad():
            return bias_ih + bias_hh
    key = (bias_ih.data_ptr(), bias_hh.data_ptr(), bias_ih._version, bias_hh._version,
           bias_ih.dtype, bias_hh.dtype)
    entry = _combined.get(id(bias_ih))
    if (entry is not None and entry[0]() is bias_ih and entry[1]() is bias_hh
            and entry[2] == key):
        return entry[3]
    with torch.no_grad():
        total = bias_ih + bias_hh
    index = id(bias_ih)
    _combined[index] = (weakref.ref(bias_ih, lambda _ref: _combined.pop(index, None)),
                        weakref.ref(bias_hh), key, total)
    return total
