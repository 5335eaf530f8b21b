"""The one seam between the layers and the paths that run them.

``reference`` is the hand-written backward in torch ops (``rnnkit.bptt``); ``fused`` is the
C++ kernel (``rnnkit.kernels``) when it is built; ``auto`` takes fused when it is there.
``RNNKIT_BACKEND`` in the environment overrides a layer's ``auto``. :func:`implementation`
hands a layer a family's functions for its backend, chosen per function: a family (or a
variant path) without a fused kernel runs its reference function, never an AttributeError.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

from rnnkit import families

try:  # the kernel package may be left out of a build: then only the reference path runs
    from rnnkit import kernels as _kernels
except ImportError:  # pragma: no cover - a trimmed install
    _kernels = None

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "fused", "reference")
_REFERENCE = SimpleNamespace(name="reference")
_IMPLEMENTATIONS: dict[tuple[str, str], SimpleNamespace] = {}
_warned_unavailable = False


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


def _fused():
    """The fused functions, or None when the kernel package is absent or could not be built.

    Once loaded this is a read of the loader's cached namespace (no lock, no import), so
    torch.compile traces through it."""
    if _kernels is None:
        return None
    return _kernels.load_functions()


def select(backend: str):
    """The backend that runs for ``backend`` here: a namespace whose ``name`` is "fused" (the
    operators are loaded) or "reference"."""
    global _warned_unavailable
    if backend == "auto":
        backend = check_backend(os.environ.get("RNNKIT_BACKEND", "auto"))
    if backend == "reference":
        return _REFERENCE
    fused = _fused()
    if fused is not None:
        return fused
    if backend == "fused" and not _warned_unavailable:
        logger.warning("rnnkit: the fused kernel is not available; running the reference path")
        _warned_unavailable = True
    return _REFERENCE


def implementation(family: families.Family, backend: str) -> SimpleNamespace:
    """``family``'s sequence functions for ``backend``: ``plain`` and ``variant`` (each a
    callable), and ``name``, the backend that runs the plain path. Per function, a fused
    function the family does not declare falls back to its reference function."""
    chosen = select(backend).name
    key = (family.name, chosen)
    found = _IMPLEMENTATIONS.get(key)
    if found is None:
        functions = {kind: families.load(target) for kind, target in family.reference.items()}
        fused_kinds = set()
        if chosen == "fused":
            for kind, target in family.fused.items():
                functions[kind] = families.load(target)
                fused_kinds.add(kind)
        name = "fused" if "plain" in fused_kinds else "reference"
        found = SimpleNamespace(name=name, fused=frozenset(fused_kinds), **functions)
        _IMPLEMENTATIONS[key] = found
    return found
