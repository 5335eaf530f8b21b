"""One step of the long short-term memory cell (Hochreiter & Schmidhuber 1997), torch's layout,
with rnnkit's variants: layer norm, peepholes, coupled gates, recurrent dropout and zoneout."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.common import layer_norm, uses_layer_norm, zoneout

LSTM_GATES = ("input", "forget", "cell", "output")


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    weight_hr: Tensor | None = None,
    *,
    ln_ih_weight: Tensor | None = None,
    ln_ih_bias: Tensor | None = None,
    ln_hh_weight: Tensor | None = None,
    ln_hh_bias: Tensor | None = None,
    ln_cell_weight: Tensor | None = None,
    ln_cell_bias: Tensor | None = None,
    peephole_weight: Tensor | None = None,
    coupled_gates: bool = False,
    recurrent_mask: Tensor | None = None,
    zoneout_hidden: Tensor | float | None = None,
    zoneout_cell: Tensor | float | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    r"""One LSTM step.

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t) \quad\text{or, with a projection,}\quad
        h_t = W_{hr} (o_t \odot \tanh(c_t))

    The forget gate decides how much of the old memory to keep, the input gate how much of
    the new candidate ``g_t`` to write, the output gate what of the memory to show.

    The variants (keyword-only; their defaults give the step above exactly):

    - recurrent dropout (Gal & Ghahramani 2016, arXiv 1512.05287): the recurrent product
      reads :math:`h'_{t-1} = h_{t-1} \odot m` with ``recurrent_mask`` m ``(N, H)``, one mask
      per sequence, already scaled by 1/(1-p); the peepholes and zoneout read the unmasked
      states.
    - layer norm (Ba et al. 2016, arXiv 1607.06450, haste's LayerNormLSTM form), with
      :math:`\mathrm{LN}` of :func:`rnnkit.cells.common.layer_norm` over all 4H
      pre-activations of each product, and over the H units of the cell:

      .. math::
          a_t &= \mathrm{LN}_{ih}(W_{ih} x_t) + \mathrm{LN}_{hh}(W_{hh} h'_{t-1})
                 + b_{ih} + b_{hh} \\
          h_t &= o_t \odot \tanh(\mathrm{LN}_{cell}(c_t))

    - peepholes (Gers & Schmidhuber 2000), ``peephole_weight`` :math:`(p_i, p_f, p_o)`
      ``(3H,)``: the input and forget gates see the previous cell, the output gate the new one:

      .. math::
          i_t = \sigma(a^{input}_t + p_i \odot c_{t-1}), \quad
          f_t = \sigma(a^{forget}_t + p_f \odot c_{t-1}), \quad
          o_t = \sigma(a^{output}_t + p_o \odot c_t)

    - coupled gates (CIFG, Greff et al. 2017, arXiv 1503.04069): :math:`i_t = 1 - f_t`; the
      input-gate block of the weights is read but unused.
    - zoneout (Krueger et al. 2016, arXiv 1606.01305), ``zoneout_hidden`` / ``zoneout_cell``
      :math:`k^h_t, k^c_t` (this step's 0/1 masks ``(N, H)`` in training, p in eval): after
      the step above, :math:`c_t \leftarrow k^c_t \odot c_{t-1} + (1 - k^c_t) \odot c_t` and
      likewise h_t with :math:`k^h_t`. h_t is read from the cell *before* zoneout.

    Arguments:
        x: ``(N, H_in)`` input at this step.
        h: ``(N, H_out)`` previous hidden state (``H_out = proj_size`` when projecting, else H).
        c: ``(N, H)`` previous cell state.
        weight_ih: ``(4H, H_in)``, gate blocks in the order input, forget, cell, output.
        weight_hh: ``(4H, H_out)``.
        bias_ih, bias_hh: ``(4H,)`` or None.
        weight_hr: ``(H_out, H)`` projection, or None (not combined with the variants).
        ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias: ``(4H,)`` layer-norm gains and
            biases; ln_cell_weight, ln_cell_bias: ``(H,)``. All six or none.
        peephole_weight: ``(3H,)``, blocks input, forget, output, or None.
        coupled_gates: input gate = 1 - forget gate. Default False.
        recurrent_mask: ``(N, H)`` or None; zoneout_hidden, zoneout_cell: ``(N, H)``, a
            number, or None.

    Returns:
        ``(h_t, c_t, gates)`` where gates maps "input", "forget", "cell", "output" to the
        post-activation ``(N, H)`` values; with layer norm also "normalized_ih",
        "normalized_hh" ``(N, 4H)`` and "normalized_cell" ``(N, H)``, the normalised values
        before gain and bias.
    """
    use_layer_norm = uses_layer_norm(
        ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias
    )
    in_step = (
        use_layer_norm or peephole_weight is not None or coupled_gates
        or recurrent_mask is not None or zoneout_hidden is not None or zoneout_cell is not None
    )  # fmt: skip
    if weight_hr is not None and in_step:
        raise ValueError("lstm_cell: a projection (weight_hr) is not combined with the variants")
    recurrent_input = h if recurrent_mask is None else h * recurrent_mask
    from_input = x @ weight_ih.T  # (N, 4H)
    from_hidden = recurrent_input @ weight_hh.T  # (N, 4H)
    normalized = {}
    if use_layer_norm:
        from_input, normalized["normalized_ih"] = layer_norm(from_input, ln_ih_weight, ln_ih_bias)
        from_hidden, normalized["normalized_hh"] = layer_norm(
            from_hidden, ln_hh_weight, ln_hh_bias
        )
    gates = from_input + from_hidden  # (N, 4H)
    if bias_ih is not None:
        gates = gates + bias_ih + bias_hh
    input, forget, cell, output = gates.chunk(4, dim=-1)  # pre-activations, (N, H) each
    if peephole_weight is not None:
        peephole_input, peephole_forget, peephole_output = peephole_weight.chunk(3)
        input = input + peephole_input * c
        forget = forget + peephole_forget * c
    forget = forget.sigmoid()
    input = 1 - forget if coupled_gates else input.sigmoid()
    cell = cell.tanh()
    c_new = forget * c + input * cell  # keep some of the old memory, add some new
    if peephole_weight is not None:
        output = output + peephole_output * c_new
    output = output.sigmoid()
    shown = c_new
    if use_layer_norm:
        shown, normalized["normalized_cell"] = layer_norm(c_new, ln_cell_weight, ln_cell_bias)
    h_new = output * shown.tanh()
    if weight_hr is not None:
        h_new = h_new @ weight_hr.T
    h_new = zoneout(h_new, h, zoneout_hidden)
    c_new = zoneout(c_new, c, zoneout_cell)
    return h_new, c_new, {
        "input": input, "forget": forget, "cell": cell, "output": output, **normalized
    }


def lstm_reference_loop(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None, weight_hr=None):
    """Run :func:`lstm_cell` over ``x`` of shape ``(T, N, H_in)``; autograd does the backward.

    Returns ``(outputs (T, N, H_out), h_T, c_T, cells (T, N, H), gates {name: (T, N, H)})``.
    """
    outputs, cells, gates = [], [], {name: [] for name in LSTM_GATES}
    for x_t in x:
        h, c, step_gates = lstm_cell(x_t, h, c, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr)
        outputs.append(h)
        cells.append(c)
        for name in LSTM_GATES:
            gates[name].append(step_gates[name])
    stacked = {name: torch.stack(values) for name, values in gates.items()}
    return torch.stack(outputs), h, c, torch.stack(cells), stacked
