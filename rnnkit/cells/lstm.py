"""One step of the long short-term memory cell (Hochreiter & Schmidhuber 1997), torch's layout."""

from __future__ import annotations

import torch
from torch import Tensor

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

    Arguments:
        x: ``(N, H_in)`` input at this step.
        h: ``(N, H_out)`` previous hidden state (``H_out = proj_size`` when projecting, else H).
        c: ``(N, H)`` previous cell state.
        weight_ih: ``(4H, H_in)``, gate blocks in the order input, forget, cell, output.
        weight_hh: ``(4H, H_out)``.
        bias_ih, bias_hh: ``(4H,)`` or None.
        weight_hr: ``(H_out, H)`` projection, or None.

    Returns:
        ``(h_t, c_t, gates)`` where gates maps "input", "forget", "cell", "output" to the
        post-activation ``(N, H)`` values.
    """
    gates = x @ weight_ih.T + h @ weight_hh.T  # (N, 4H)
    if bias_ih is not None:
        gates = gates + bias_ih + bias_hh
    input, forget, cell, output = gates.chunk(4, dim=1)
    input, forget, output = input.sigmoid(), forget.sigmoid(), output.sigmoid()
    cell = cell.tanh()
    c = forget * c + input * cell  # keep some of the old memory, add some new
    h = output * c.tanh()
    if weight_hr is not None:
        h = h @ weight_hr.T
    return h, c, {"input": input, "forget": forget, "cell": cell, "output": output}


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
