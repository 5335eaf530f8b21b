"""The recurrent families, each declared once in its own module (see :mod:`.base`).

Adding a family: a module here that registers its :class:`Family`, its name in
:data:`MODULES`, its cell (``rnnkit.cells``), its reference (``rnnkit.bptt``), optionally its
kernel (``rnnkit.kernels``), and its layer class.
"""

import importlib

from rnnkit.families.base import Family, cli_cells, families, get, load, register

# the registry, in the order the apps list the families; each module registers its family
MODULES = ("rnn", "gru", "lstm", "indrnn")
for _module in MODULES:
    importlib.import_module(f"rnnkit.families.{_module}")

__all__ = ["MODULES", "Family", "cli_cells", "families", "get", "load", "register"]
