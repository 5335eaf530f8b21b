"""Long-range dependency tasks (adding, delayed recall, copy memory, temporal order) and the
loop that trains a cell on them."""

from rnnkit.errors import UserError
from rnnkit.tasks.base import Metric, Task
from rnnkit.tasks.generators import TASKS, Adding, CopyMemory, DelayedRecall, TemporalOrder
from rnnkit.tasks.models import CELLS, DEFAULT_CELLS, TaskModel, parse_cells


def make_task(name: str, length: int) -> Task:
    """The task called ``name`` at dependency length ``length``; unknown names list the valid."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    return TASKS[name](length)


__all__ = [
    "CELLS",
    "DEFAULT_CELLS",
    "TASKS",
    "Adding",
    "CopyMemory",
    "DelayedRecall",
    "Metric",
    "Task",
    "TaskModel",
    "TemporalOrder",
    "make_task",
    "parse_cells",
]
