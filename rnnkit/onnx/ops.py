"""What an rnnkit layer runs while ``torch.onnx.export`` traces it (pure torch, no onnx import).

The training operators return whole buffers (every h_t, c_t and gate) that no ONNX node gives.
In an ONNX export each layer instead calls one small operator per stacked layer,
``torch.ops.rnnkit_onnx.{lstm,gru,rnn}``, that returns what the standard ONNX node returns:
the output, h_n (and c_n), both directions at once. :mod:`rnnkit.onnx.translations` maps each
to exactly one ONNX ``LSTM`` / ``GRU`` / ``RNN`` node. Their CPU implementation here is a plain
loop (used only if one is called eagerly); the fake gives the shapes the exporter traces with.

Layers whose step has no standard node (layer norm, zoneout's eval form, coupled gates,
proj_size) run their step inside ``torch._higher_order_ops.scan``, which the exporter writes as
an ONNX ``Scan`` (one per layer and direction).
Dropout-type variants run their eval form: recurrent dropout and weight drop are then the
identity, zoneout keeps the share p of the previous state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from rnnkit.bptt.layer_norm import EPS
from rnnkit.errors import UserError

_capturing = False


class capturing:
    """While rnnkit.onnx.export captures the program itself (torch.export, non-strict, so a
    failure is an error, never the exporter's silent fallback to fixed shapes), the layers
    take their export path as under torch.onnx.export."""

    def __enter__(self):
        global _capturing
        self.before, _capturing = _capturing, True

    def __exit__(self, *exc):
        global _capturing
        _capturing = self.before


def exporting_onnx() -> bool:
    return _capturing or torch.onnx.is_in_onnx_export()


# ---- the operators ------------------------------------------------------------------------------


def _directions(x: Tensor, lengths: Tensor | None, bidirectional: bool):
    """(input as run by each direction, a function that puts a direction's output back)."""
    steps = x.shape[0]
    if lengths is None:
        index = torch.arange(steps - 1, -1, -1, device=x.device).view(steps, 1).expand(
            steps, x.shape[1]
        )
    else:  # reverse each sequence within its own length, padding stays at the end
        t = torch.arange(steps, device=x.device).view(steps, 1)
        length = lengths.to(x.device).view(1, -1)
        index = torch.where(t < length, length - 1 - t, t)
    gather = index.unsqueeze(-1)

    def reverse(tensor: Tensor) -> Tensor:
        return tensor.gather(0, gather.expand(-1, -1, tensor.shape[2]))

    runs = [(x, lambda y: y)]
    if bidirectional:
        runs.append((reverse(x), reverse))
    return runs


def _loop(step, x, states, lengths):
    """Run ``step(x_t, states) -> states`` over time, holding finished rows; (outputs, finals)."""
    outputs = []
    for t in range(x.shape[0]):
        new = step(x[t], states)
        if lengths is not None:
            keep = (lengths.to(x.device) > t).to(x.dtype).unsqueeze(1)
            new = [keep * n + (1 - keep) * s for n, s in zip(new, states)]
            outputs.append(new[0] * keep)
        else:
            outputs.append(new[0])
        states = new
    return torch.stack(outputs), states


def _reference(family, x, states, weights, lengths, bidirectional, step_for):
    outputs, finals = [], [[] for _ in states]
    for d, (run_x, back) in enumerate(_directions(x, lengths, bidirectional)):
        step = step_for(*[w[d] if w is not None else None for w in weights])
        out, last = _loop(step, run_x, [s[d] for s in states], lengths)
        outputs.append(back(out))
        for collected, final in zip(finals, last):
            collected.append(final)
    return (torch.cat(outputs, dim=2), *[torch.stack(f) for f in finals])


def _fake(x, h0, bidirectional, cell=False):
    directions = 2 if bidirectional else 1
    y = x.new_empty(x.shape[0], x.shape[1], directions * h0.shape[2])
    finals = (h0.new_empty(h0.shape),)
    return (y, *finals, h0.new_empty(h0.shape)) if cell else (y, *finals)


@torch.library.custom_op("rnnkit_onnx::lstm", mutates_args=())
def lstm(
    x: Tensor, h0: Tensor, c0: Tensor, weight_ih: Tensor, weight_hh: Tensor,
    bias_ih: Tensor | None, bias_hh: Tensor | None, peephole: Tensor | None,
    lengths: Tensor | None, bidirectional: bool,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """One stacked LSTM layer, every direction: x (T, N, I), states (D, N, H), weights stacked
    over directions (D, 4H, ·) in torch's gate order; -> output (T, N, D*H), h_n, c_n."""

    def step_for(w_ih, w_hh, b_ih, b_hh, peep):
        def step(x_t, states):
            h, c = states
            z = x_t @ w_ih.T + h @ w_hh.T
            if b_ih is not None:
                z = z + b_ih + b_hh
            i, f, g, o = z.chunk(4, 1)
            if peep is not None:
                p_i, p_f, p_o = peep.chunk(3)
                i, f = i + p_i * c, f + p_f * c
            f = f.sigmoid()
            c = f * c + i.sigmoid() * g.tanh()
            if peep is not None:
                o = o + p_o * c
            return [o.sigmoid() * c.tanh(), c]

        return step

    weights = (weight_ih, weight_hh, bias_ih, bias_hh, peephole)
    return _reference("lstm", x, [h0, c0], weights, lengths, bidirectional, step_for)


@lstm.register_fake
def _(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, peephole, lengths, bidirectional):
    return _fake(x, h0, bidirectional, cell=True)


@torch.library.custom_op("rnnkit_onnx::gru", mutates_args=())
def gru(
    x: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None,
    bias_hh: Tensor | None, lengths: Tensor | None, bidirectional: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One stacked GRU layer (torch's: reset after the recurrent product), every direction."""

    def step_for(w_ih, w_hh, b_ih, b_hh):
        def step(x_t, states):
            (h,) = states
            gi, gh = x_t @ w_ih.T, h @ w_hh.T
            if b_ih is not None:
                gi, gh = gi + b_ih, gh + b_hh
            i_r, i_z, i_n = gi.chunk(3, 1)
            h_r, h_z, h_n = gh.chunk(3, 1)
            r, z = (i_r + h_r).sigmoid(), (i_z + h_z).sigmoid()
            n = (i_n + r * h_n).tanh()
            return [torch.lerp(n, h, z)]

        return step

    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    return _reference("gru", x, [h0], weights, lengths, bidirectional, step_for)


@gru.register_fake
def _(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, lengths, bidirectional):
    return _fake(x, h0, bidirectional)


@torch.library.custom_op("rnnkit_onnx::rnn", mutates_args=())
def rnn(
    x: Tensor, h0: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None,
    bias_hh: Tensor | None, lengths: Tensor | None, bidirectional: bool, relu: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One stacked Elman RNN layer (tanh, or relu), every direction."""

    def step_for(w_ih, w_hh, b_ih, b_hh):
        def step(x_t, states):
            z = x_t @ w_ih.T + states[0] @ w_hh.T
            if b_ih is not None:
                z = z + b_ih + b_hh
            return [z.relu() if relu else z.tanh()]

        return step

    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    return _reference("rnn", x, [h0], weights, lengths, bidirectional, step_for)


@rnn.register_fake
def _(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, lengths, bidirectional, relu):
    return _fake(x, h0, bidirectional)


# ---- the layers' export path --------------------------------------------------------------------


def standard_node(layer) -> bool:
    """Whether the layer's eval-mode step is exactly a standard ONNX node's."""
    v = layer.variants
    # onnxruntime's LSTM with input_forget=1 does not compute i = 1 - f (checked against
    # onnxruntime 1.32: max error 0.16), so coupled gates run as a Scan too
    if layer.proj_size or v.layer_norm or v.zoneout_hidden or v.zoneout_cell or v.coupled_gates:
        return False
    return True  # recurrent dropout and weight drop are the identity in eval


def _stack(layer, kind: str, index: int):
    names = [f"{kind}_l{index}{suffix}" for suffix in layer._suffixes()]
    tensors = [getattr(layer, name, None) for name in names]
    return None if tensors[0] is None else torch.stack(tensors)


def export_forward(layer, input, hx=None, lengths: Tensor | None = None):
    """The layer's forward as the ONNX exporter should see it (eval form, no internals)."""
    if not layer.family.onnx:
        raise UserError(
            f"{layer._name}: the {layer.family.called} has no ONNX translation (ONNX has "
            "standard LSTM, GRU and RNN nodes); run it in PyTorch, or export an LSTM, GRU or RNN"
        )
    if isinstance(input, PackedSequence):
        raise UserError(
            f"{layer._name}: a PackedSequence cannot be exported to ONNX; pass the padded "
            "batch and its lengths to rnnkit.onnx.run_padded(layer, x, lengths) instead "
            "(they become the ONNX node's sequence_lens)"
        )
    if layer.training and (layer.dropout or layer.variants.in_step or layer.variants.weight_drop):
        raise UserError(
            f"{layer._name}: call .eval() before exporting: the ONNX graph holds the eval "
            "form of dropout, zoneout, recurrent dropout and weight drop"
        )
    if input.dim() == 2:
        raise UserError(f"{layer._name}: export a batched input (N, L, H_in) or (L, N, H_in)")
    x = input.transpose(0, 1) if layer.batch_first else input
    directions = 2 if layer.bidirectional else 1
    out_size = layer.proj_size or layer.hidden_size
    shape = (directions * layer.num_layers, x.shape[1])
    if hx is None:
        h0 = x.new_zeros(*shape, out_size)
        c0 = x.new_zeros(*shape, layer.hidden_size) if layer.family.has_cell else None
    elif layer.family.has_cell:
        h0, c0 = hx
    else:
        h0, c0 = hx, None
    finals_h, finals_c = [], []
    standard = standard_node(layer)
    if not standard and lengths is not None:
        raise UserError(
            f"{layer._name}: ragged batches (lengths) export for layers with a standard ONNX "
            "node only; this one (layer norm, zoneout or proj_size) runs as a Scan over padded "
            "steps: export it with equal-length sequences"
        )
    if lengths is not None:
        lengths = lengths.to(torch.int32)
    for index in range(layer.num_layers):
        rows = slice(index * directions, (index + 1) * directions)
        h, c = h0[rows], None if c0 is None else c0[rows]
        if standard:
            x, h_n, c_n = _standard_layer(layer, index, x, h, c, lengths)
        else:
            x, h_n, c_n = _scan_layer(layer, index, x, h, c)
        finals_h.append(h_n)
        if c_n is not None:
            finals_c.append(c_n)
    output = x.transpose(0, 1) if layer.batch_first else x
    h_n = torch.cat(finals_h)
    if layer.family.has_cell:
        return output, (h_n, torch.cat(finals_c))
    return output, h_n


def _standard_layer(layer, index, x, h, c, lengths):
    w = [_stack(layer, kind, index) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if layer.mode == "LSTM":
        peephole = _stack(layer, "peephole_weight", index)
        return torch.ops.rnnkit_onnx.lstm(
            x, h, c, *w, peephole, lengths, layer.bidirectional
        )
    if layer.mode == "GRU":
        y, h_n = torch.ops.rnnkit_onnx.gru(x, h, *w, lengths, layer.bidirectional)
    else:
        y, h_n = torch.ops.rnnkit_onnx.rnn(
            x, h, *w, lengths, layer.bidirectional, layer.nonlinearity == "relu"
        )
    return y, h_n, None


def _scan_layer(layer, index, x, h, c):
    """One stacked layer with a non-standard step, each direction a ``scan`` (ONNX Scan)."""
    from torch._higher_order_ops.scan import scan

    outputs, finals_h, finals_c = [], [], []
    for d, suffix in enumerate(layer._suffixes()):
        weights = {
            kind: getattr(layer, f"{kind}_l{index}{suffix}", None)
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr",
                         "ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
                         "ln_cell_weight", "ln_cell_bias", "peephole_weight")
        }  # fmt: skip
        # detached: the exported graph is for inference, and operands that require grad send
        # the scan through its autograd path in the exporter's type-promotion pass, which
        # fails for a stacked layer's scan in torch 2.13 (a SymInt among the outputs)
        weights = {kind: None if w is None else w.detach() for kind, w in weights.items()}
        step, from_input = _variant_step(layer, weights, x.detach())
        out_size = h.shape[-1]
        # the LSTM's (h, c) carried as one tensor [h | c] (h has proj_size columns if set)
        init = (h[d] if c is None else torch.cat([h[d], c[d]], dim=1)).detach()

        def combine(carry, z_t, step=step, out_size=out_size, cell=c is not None):
            if cell:
                state = [carry.narrow(1, 0, out_size),
                         carry.narrow(1, out_size, carry.shape[1] - out_size)]
            else:
                state = [carry]
            new = step(state, z_t)
            return (torch.cat(new, dim=1) if cell else new[0]), new[0].clone()

        if d == 1:
            from_input = from_input.flip(0)
        carry, ys = scan(combine, init, from_input)
        if d == 1:
            ys = ys.flip(0)
        outputs.append(ys)
        finals_h.append(carry.narrow(1, 0, out_size))
        if c is not None:
            finals_c.append(carry.narrow(1, out_size, carry.shape[1] - out_size))
    y = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
    return y, torch.stack(finals_h), torch.stack(finals_c) if finals_c else None


def layer_norm_forward(z, gain, bias):
    # F.layer_norm (ONNX LayerNormalization): rnnkit's mean/var form does not decompose inside
    # a scan body in torch 2.13 (a SymInt numel); the same function of z
    return (F.layer_norm(z, (z.shape[-1],), gain, bias, EPS),)


def _variant_step(layer, w, x):
    """(step(carry, z_t) -> carry, the input projections z over time) for one direction."""
    v = layer.variants
    z_h, z_c = v.zoneout_hidden, v.zoneout_cell
    from_input = x @ w["weight_ih"].T
    ln = v.layer_norm
    if ln:
        from_input = layer_norm_forward(from_input, w["ln_ih_weight"], w["ln_ih_bias"])[0]
    if layer.mode == "LSTM":
        if w["bias_ih"] is not None:
            from_input = from_input + (w["bias_ih"] + w["bias_hh"])
        peep = w["peephole_weight"]

        def lstm_step(carry, z_t):
            h, c = carry
            from_hidden = h @ w["weight_hh"].T
            if ln:
                from_hidden = layer_norm_forward(from_hidden, w["ln_hh_weight"],
                                                 w["ln_hh_bias"])[0]  # fmt: skip
            pre = z_t + from_hidden
            size = c.shape[-1]
            # narrow, not chunk: with coupled gates the input block is unused, and an unused
            # chunk output breaks the exporter's scan in torch 2.13 (a SymInt body output)
            f, g, o = (pre.narrow(1, k * size, size) for k in (1, 2, 3))
            if peep is not None:
                p_i, p_f, p_o = peep.chunk(3)
                f = f + p_f * c
            if v.coupled_gates:
                i = (f.clone() * -1.0).sigmoid()  # 1 - sigmoid(f)
            else:
                i = pre.narrow(1, 0, size)
                i = (i if peep is None else i + p_i * c).sigmoid()
            c_new = f.sigmoid() * c + i * g.tanh()
            if peep is not None:
                o = o + p_o * c_new
            shown = c_new
            if ln:
                shown = layer_norm_forward(c_new, w["ln_cell_weight"], w["ln_cell_bias"])[0]
            h_new = o.sigmoid() * shown.tanh()
            if w["weight_hr"] is not None:
                h_new = h_new @ w["weight_hr"].T
            if z_c:
                c_new = torch.lerp(c_new, c, z_c)
            if z_h:
                h_new = torch.lerp(h_new, h, z_h)
            return [h_new, c_new]

        return lstm_step, from_input
    if w["bias_ih"] is not None:
        from_input = from_input + w["bias_ih"]
    if layer.mode == "GRU":

        def gru_step(carry, z_t):
            (h,) = carry
            from_hidden = h @ w["weight_hh"].T
            if ln:
                from_hidden = layer_norm_forward(from_hidden, w["ln_hh_weight"],
                                                 w["ln_hh_bias"])[0]  # fmt: skip
            if w["bias_hh"] is not None:
                from_hidden = from_hidden + w["bias_hh"]
            i_r, i_z, i_n = z_t.chunk(3, 1)
            h_r, h_z, h_n = from_hidden.chunk(3, 1)
            r, z = (i_r + h_r).sigmoid(), (i_z + h_z).sigmoid()
            new = torch.lerp((i_n + r * h_n).tanh(), h, z)
            return [torch.lerp(new, h, z_h) if z_h else new]

        return gru_step, from_input
    relu = layer.nonlinearity == "relu"

    def rnn_step(carry, z_t):
        (h,) = carry
        pre = z_t + h @ w["weight_hh"].T
        if w["bias_hh"] is not None:
            pre = pre + w["bias_hh"]
        new = pre.relu() if relu else pre.tanh()
        return [torch.lerp(new, h, z_h) if z_h else new]

    return rnn_step, from_input
