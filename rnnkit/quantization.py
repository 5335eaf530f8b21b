"""int8 weights for inference: :func:`quantize` a model's rnnkit layers, save and load them.

``quantize(model)`` replaces ``weight_ih_l{k}`` and ``weight_hh_l{k}`` (every layer and
direction) of each rnnkit LSTM, GRU and RNN in ``model`` by int8 rows with a float32 scale per
row (symmetric: ``scale = max|row| / 127``, ``q = round(w / scale)``), stored as buffers of the
same names plus ``..._scale``, so the state dict holds int8 weights and their scales. A forward
then quantizes x_t and h_{t-1} per row on the fly and runs the products on an AVX512-VNNI
kernel (``rnnkit::int8_forward``, :mod:`rnnkit.kernels.int8`); the state, the biases, the gate
math (and the LSTM's projection ``weight_hr``) stay float32. A quantized layer is for
inference only: ``.train()`` and inputs that require a gradient are refused.

:func:`save` writes a quantized model's state dict as safetensors; :func:`load` reads one into
a model built as the float one was (it is quantized first, to take the int8 tensors). Without
the fused kernels (no compiler) the layers run the same integer arithmetic in torch ops
(:func:`reference_linear`), slower.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.errors import UserError
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer

logger = logging.getLogger(__name__)

QUANTIZED_KINDS = ("weight_ih", "weight_hh")


# ---- the numbers: weights once, activations per call --------------------------------------------
def quantize_weight(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric per-row int8: ``(q, scale)`` with ``weight[m] ~ q[m] * scale[m]``, q in
    [-127, 127] and ``scale[m] = max|weight[m]| / 127`` (0 for an all-zero row)."""
    w = weight.detach().to(torch.float32)
    amax = w.abs().amax(dim=1)
    scale = amax / 127.0
    inverse = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    q = torch.round(w * inverse[:, None]).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def row_sums(q: Tensor) -> Tensor:
    """``sum_k q[m, k]`` as int32: the VNNI kernel subtracts ``128 *`` it (it feeds the
    activations shifted to unsigned)."""
    return q.to(torch.int32).sum(dim=1, dtype=torch.int32).contiguous()


def quantize_activations(x: Tensor) -> tuple[Tensor, Tensor]:
    """What the kernels do to ``x [N, K]`` on every call: per row, ``scale = max|x| / 127``
    and ``q = round-half-even(x * 127 / max|x|)`` in [-127, 127] (float32 arithmetic)."""
    x = x.to(torch.float32)
    amax = x.abs().amax(dim=1)
    scale = amax / 127.0
    inverse = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    q = torch.round(x * inverse[:, None]).clamp(-127, 127)
    return q, scale


def reference_linear(x: Tensor, weight: Tensor, scale: Tensor) -> Tensor:
    """The kernels' product in torch ops: the integer dot products computed exactly (in float64,
    exact below 2**53), then ``float32(dot) * (x_scale * w_scale)``, as the C++ does."""
    q, x_scale = quantize_activations(x)
    dot = (q.to(torch.float64) @ weight.to(torch.float64).T).to(torch.float32)
    return dot * (x_scale[:, None] * scale[None, :])


def _reference_forward(x, h0, c0, weights, cell: str, mask):
    """The int8 forward in torch ops (no kernels): the integer products of
    :func:`reference_linear` and the float32 gate math. (hiddens, c_T or None)."""
    steps, batch = x.shape[0], x.shape[1]
    gates_in = reference_linear(x.reshape(steps * batch, -1), weights["weight_ih"],
                                weights["weight_ih_scale"]).view(steps, batch, -1)
    b_ih, b_hh = weights["bias_ih"], weights["bias_hh"]
    if b_ih is not None:
        gates_in = gates_in + b_ih + (0 if cell == "GRU" else b_hh)
    h, c = h0, c0
    hiddens = [h0]
    for t in range(steps):
        rec = reference_linear(h, weights["weight_hh"], weights["weight_hh_scale"])
        if cell == "GRU":
            if b_hh is not None:
                rec = rec + b_hh
            i_r, i_z, i_n = gates_in[t].chunk(3, 1)
            h_r, h_z, h_n = rec.chunk(3, 1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            new_h, new_c = (1 - z) * torch.tanh(i_n + r * h_n) + z * h, None
        elif cell == "LSTM":
            i, f, g, o = (gates_in[t] + rec).chunk(4, 1)
            new_c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            new_h = torch.sigmoid(o) * torch.tanh(new_c)
            if weights["weight_hr"] is not None:
                new_h = new_h @ weights["weight_hr"].T
        else:
            a = gates_in[t] + rec
            new_h, new_c = (torch.relu(a) if cell == "RNN_RELU" else torch.tanh(a)), None
        if mask is not None:
            keep = mask[t]
            new_h = keep * new_h + (1 - keep) * h
            if new_c is not None:
                new_c = keep * new_c + (1 - keep) * c
        h, c = new_h, new_c
        hiddens.append(h)
    return torch.stack(hiddens), c


# ---- the quantized layers ---------------------------------------------------------------------
class _Int8Layer:
    """What a quantized layer changes: its weights are int8 buffers, its forward runs the int8
    kernel, and it refuses to train. Mixed in before the float layer's class."""

    quantized = True

    def _like(self) -> Tensor:  # inputs match the float32 scales (the weights are int8)
        return self.weight_ih_l0_scale

    def train(self, mode: bool = True):
        if mode:
            raise UserError(
                f"{type(self).__name__} has int8 weights (rnnkit.quantize) and runs inference "
                "only; train the float32 model, then quantize it"
            )
        return super().train(False)

    def forward(self, input, hx=None, *, return_internals: bool = False):
        if return_internals:
            raise UserError(f"{type(self).__name__}: return_internals is not available on an "
                            "int8 layer; run the float32 model to look inside")
        if torch.onnx.is_in_onnx_export():
            raise UserError(f"{type(self).__name__}: an int8 layer has no ONNX export; export "
                            "the float32 model")
        tensors = [input.data if hasattr(input, "batch_sizes") else input]
        tensors += list(hx) if isinstance(hx, (tuple, list)) else [hx]
        if torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad
                                           for t in tensors):
            raise UserError(f"{type(self).__name__} has int8 weights and no backward: run it "
                            "under torch.no_grad() or torch.inference_mode()")
        return super().forward(input, hx)

    def _weights(self, layer: int, suffix: str) -> dict[str, Tensor | None]:
        weights = super()._weights(layer, suffix)
        for kind in QUANTIZED_KINDS:
            weights[f"{kind}_scale"] = getattr(self, f"{kind}_l{layer}{suffix}_scale")
            weights[f"{kind}_rowsum"] = getattr(self, f"{kind}_l{layer}{suffix}_rowsum")
        return weights

    def _cell(self) -> str:
        if self.mode == "RNN":
            return "RNN_RELU" if self.nonlinearity == "relu" else "RNN_TANH"
        return self.mode

    def _run_direction(self, functions, x, states, weights, mask, recorder, plan=None):
        # plan: always None here (rnnkit.precision leaves int8 layers to these kernels)
        from rnnkit.kernels import int8

        h0 = states[0]
        c0 = states[1] if self.family.has_cell else None
        cell = self._cell()
        if x.device.type == "cpu" and x.dtype == torch.float32 and int8.available():
            hiddens, c_n = int8.forward(
                x, h0, c0, weights["weight_ih"], weights["weight_ih_scale"],
                weights["weight_ih_rowsum"], weights["weight_hh"], weights["weight_hh_scale"],
                weights["weight_hh_rowsum"], weights["bias_ih"], weights["bias_hh"],
                weights["weight_hr"], cell, mask,
            )
        else:
            hiddens, c_n = _reference_forward(x, h0, c0, weights, cell, mask)
        output = hiddens[1:] if mask is None else hiddens[1:] * mask
        final = (hiddens[x.shape[0]], c_n) if self.family.has_cell else (hiddens[x.shape[0]],)
        return output, final, {}

    def extra_repr(self) -> str:
        return super().extra_repr() + ", int8"


class Int8LSTM(_Int8Layer, LSTM):
    """An :class:`rnnkit.LSTM` with int8 ``weight_ih`` / ``weight_hh`` (:func:`quantize`)."""


class Int8GRU(_Int8Layer, GRU):
    """An :class:`rnnkit.GRU` with int8 ``weight_ih`` / ``weight_hh`` (:func:`quantize`)."""


class Int8RNN(_Int8Layer, RNN):
    """An :class:`rnnkit.RNN` with int8 ``weight_ih`` / ``weight_hh`` (:func:`quantize`)."""


_INT8_CLASSES = {"LSTM": Int8LSTM, "GRU": Int8GRU, "RNN": Int8RNN}


def _refresh_row_sums(module: nn.Module, _incompatible=None) -> None:
    """Recompute the (not saved) row sums from the int8 weights, after a load."""
    for name in [name for name in module._buffers if name.endswith("_rowsum")]:
        module._buffers[name] = row_sums(module._buffers[name[: -len("_rowsum")]])


def _check_quantizable(name: str, layer: RecurrentLayer) -> None:
    what = f"{name or 'the model'} ({type(layer).__name__})"
    if layer.mode not in _INT8_CLASSES:
        raise UserError(f"{what}: int8 weights cover the LSTM, GRU and RNN, not {layer.mode}")
    variants = layer.variants
    changed = [option for option, on in (
        ("layer_norm", variants.layer_norm), ("zoneout", variants.zoneout_hidden
                                              or variants.zoneout_cell),
        ("peephole", variants.peephole), ("coupled_gates", variants.coupled_gates)) if on]
    if changed:
        hint = ("; `rnnkit train` turns layer norm on unless given --no-layer-norm"
                if "layer_norm" in changed else "")
        raise UserError(f"{what}: int8 weights cover the plain step; this layer has "
                        f"{', '.join(changed)}{hint}")
    dtype = layer.weight_ih_l0.dtype
    if dtype != torch.float32:
        raise UserError(f"{what}: quantize a float32 layer, this one is {dtype}")


def _quantize_layer(layer: RecurrentLayer) -> RecurrentLayer:
    directions = ("", "_reverse") if layer.bidirectional else ("",)
    for index in range(layer.num_layers):
        for suffix in directions:
            for kind in QUANTIZED_KINDS:
                name = f"{kind}_l{index}{suffix}"
                q, scale = quantize_weight(getattr(layer, name))
                del layer._parameters[name]
                layer.register_buffer(name, q)
                layer.register_buffer(f"{name}_scale", scale)
                layer.register_buffer(f"{name}_rowsum", row_sums(q), persistent=False)
    layer.__class__ = _INT8_CLASSES[layer.mode]
    from rnnkit.kernels import int8

    int8.available()  # loads the operators and registers their fakes, outside any trace
    layer.register_load_state_dict_post_hook(_refresh_row_sums)
    layer.eval()
    return layer


def quantize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` with every rnnkit LSTM, GRU and RNN layer in it (the model itself, or any
    submodule) holding int8 weights; a copy unless ``inplace``. The model is put in eval mode.

    Raises:
        UserError: a layer the int8 kernel does not cover (IndRNN, layer norm, zoneout,
            peephole, coupled gates, a dtype other than float32), or none at all.
    """
    if not inplace:
        model = copy.deepcopy(model)
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, RecurrentLayer) and not isinstance(module, _Int8Layer)]
    already = any(isinstance(module, _Int8Layer) for module in model.modules())
    if not found and not already:
        raise UserError(f"{type(model).__name__} holds no rnnkit LSTM, GRU or RNN layer to "
                        "quantize")
    for name, layer in found:
        _check_quantizable(name, layer)
    for name, layer in found:
        _quantize_layer(layer)
        logger.debug("rnnkit: %s quantized to int8 weights", name or type(layer).__name__)
    model.eval()
    return model


def is_quantized(model: nn.Module) -> bool:
    """Whether any layer in ``model`` holds int8 weights."""
    return any(isinstance(module, _Int8Layer) for module in model.modules())


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the recurrent layers' weights and scales (int8 weights count one byte each)."""
    total = 0
    for module in model.modules():
        if isinstance(module, RecurrentLayer):
            for tensor in list(module.parameters(recurse=False)) + [
                    b for n, b in module.named_buffers(recurse=False)
                    if not n.endswith("_rowsum")]:
                total += tensor.numel() * tensor.element_size()
    return total


def save(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s state dict (int8 weights and their scales included) as safetensors."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    info = {"rnnkit": "int8" if is_quantized(model) else "float32", **(metadata or {})}
    save_file(state, str(path), metadata=info)
    return path


def load(model: nn.Module, path: str | Path) -> nn.Module:
    """Read a safetensors file written by :func:`save` into ``model`` (built as the saved model
    was, float or already quantized): a file of int8 weights quantizes ``model`` in place
    first. Returns ``model``.

    Raises:
        UserError: the file is missing or unreadable, or its tensors do not fit ``model``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            kind = (handle.metadata() or {}).get("rnnkit")
        state = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise UserError(f"cannot read {path} as safetensors: {error}") from error
    int8_file = kind == "int8" or any(t.dtype == torch.int8 for t in state.values())
    if int8_file and not is_quantized(model):
        quantize(model, inplace=True)
    elif not int8_file and is_quantized(model):
        raise UserError(f"{path} holds float32 weights and {type(model).__name__} int8 ones: "
                        "load the file into the float model, then quantize it")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"{path} does not fit {type(model).__name__}: {error}") from error
    return model
