"""The model every task trains: one rnnkit recurrent layer and a linear read-out.

Cells are named as on the command line: ``rnn``, ``gru``, ``lstm`` (torch's default init,
whose forget/update gates start half open) and ``lstm-chrono`` / ``gru-chrono`` (chrono
initialisation, Tallec & Ollivier 2018, arXiv 1804.11188, with the task's length as T_max).
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit import families
from rnnkit import init as gate_init
from rnnkit.errors import UserError
from rnnkit.layers import layer_class
from rnnkit.tasks.base import Task

# every family's --cell names (rnnkit.families): name -> (layer class, init)
CELLS = {cell: (layer_class(family), init) for cell, (family, init) in families.cli_cells().items()}
DEFAULT_CELLS = ("rnn", "gru", "lstm", "lstm-chrono")


def variant_options(cell: str, variants: dict) -> dict:
    """The layer options of ``variants`` (flag names -> values) that ``cell`` takes."""
    family = families.get(CELLS[cell][0].__name__)
    chosen = {k: v for k, v in variants.items() if v and k in family.options}
    zoneout_cell = chosen.pop("zoneout_cell", 0.0)
    if zoneout_cell or "zoneout" in chosen:
        zoneout_hidden = chosen.pop("zoneout", 0.0)
        chosen["zoneout"] = (zoneout_hidden, zoneout_cell) if family.has_cell else zoneout_hidden
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
    options = variant_options(cell, variants or {})
    family = families.get(layer_type.__name__)
    if family.memory_option is not None:  # e.g. the IndRNN's bound on |u| for this length
        options[family.memory_option] = max(1, chrono_max_len)
    try:
        layer = layer_type(input_size, hidden, num_layers=family.task_layers, backend=backend,
                           **options)
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
