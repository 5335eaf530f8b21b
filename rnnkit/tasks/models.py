"""The model every task trains: one rnnkit recurrent layer and a linear read-out.

Cells are named as on the command line: ``rnn``, ``gru``, ``lstm`` (torch's default init,
whose forget/update gates start half open) and ``lstm-chrono`` / ``gru-chrono`` (chrono
initialisation, Tallec & Ollivier 2018, arXiv 1804.11188, with the task's length as T_max).
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit import GRU, LSTM, RNN
from rnnkit import init as gate_init
from rnnkit.errors import UserError
from rnnkit.tasks.base import Task

CELLS = {
    "rnn": (RNN, None),
    "gru": (GRU, None),
    "lstm": (LSTM, None),
    "lstm-chrono": (LSTM, "chrono"),
    "gru-chrono": (GRU, "chrono"),
}
DEFAULT_CELLS = ("rnn", "gru", "lstm", "lstm-chrono")
# which layer variants (rnnkit.variants) each family takes; others are left out for it
VARIANTS_FOR = {
    RNN: ("zoneout", "recurrent_dropout", "weight_drop"),
    GRU: ("layer_norm", "zoneout", "recurrent_dropout", "weight_drop"),
    LSTM: ("layer_norm", "zoneout", "zoneout_cell", "recurrent_dropout", "weight_drop",
           "peephole", "coupled_gates"),
}


def variant_options(cell: str, variants: dict) -> dict:
    """The layer options of ``variants`` (flag names -> values) that ``cell`` takes."""
    layer_type = CELLS[cell][0]
    chosen = {k: v for k, v in variants.items() if v and k in VARIANTS_FOR[layer_type]}
    zoneout_cell = chosen.pop("zoneout_cell", 0.0)
    if zoneout_cell or "zoneout" in chosen:
        zoneout_hidden = chosen.pop("zoneout", 0.0)
        chosen["zoneout"] = (zoneout_hidden, zoneout_cell) if layer_type is LSTM else zoneout_hidden
    return chosen


def parse_cells(text: str) -> list[str]:
    """``"rnn,gru"`` -> ``["rnn", "gru"]``; unknown names list the valid ones."""
    cells = [name.strip() for name in text.split(",") if name.strip()]
    if not cells:
        raise UserError(f"--cells needs at least one of {', '.join(CELLS)}, got {text!r}")
    unknown = [name for name in cells if name not in CELLS]
    if unknown:
        raise UserError(
            f"--cells: unknown cell {', '.join(map(repr, unknown))}; valid: {', '.join(CELLS)}"
        )
    return list(dict.fromkeys(cells))


def build_layer(cell: str, input_size: int, hidden: int, chrono_max_len: int, backend="auto",
                variants: dict | None = None):
    """The rnnkit layer for ``cell``, initialised as its name says, with the variants it takes."""
    if cell not in CELLS:
        raise UserError(f"unknown cell {cell!r}; valid: {', '.join(CELLS)}")
    layer_type, init = CELLS[cell]
    try:
        layer = layer_type(input_size, hidden, backend=backend,
                           **variant_options(cell, variants or {}))
    except ValueError as error:
        raise UserError(f"cell {cell}: {str(error).split(': ', 1)[-1]}") from None
    if init == "chrono":
        gate_init.chrono_init(layer, max(3, chrono_max_len))
    return layer


class TaskModel(nn.Module):
    """``inputs (L, N, input_size)`` -> recurrent layer -> linear head.

    Returns predictions ``(N, output_size)`` from the last step, or ``(L, N, output_size)``
    for tasks scored at every step (``(N,)``-shaped regression targets get ``(N, 1)``).
    """

    def __init__(self, task: Task, cell: str, hidden: int = 64, backend: str = "auto",
                 variants: dict | None = None) -> None:
        super().__init__()
        self.cell = cell
        self.every_step = task.every_step
        self.rnn = build_layer(cell, task.input_size, hidden, task.sequence_length, backend,
                               variants)
        self.head = nn.Linear(hidden, task.output_size)

    def forward(self, inputs: Tensor, return_internals: bool = False):
        output, _, *internals = self.rnn(inputs, return_internals=return_internals)  # (L, N, H)
        predictions = self.head(output if self.every_step else output[-1])
        if return_internals:
            return predictions, internals[0]
        return predictions
