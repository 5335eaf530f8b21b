"""The seam between the layers and the paths that run them: one function picks the backend.

``reference`` is the hand-written backward in torch ops (``rnnkit.bptt``); ``fused`` is the
C++ kernel (``rnnkit.kernels``) when it is built; ``auto`` takes fused when it is there.
``RNNKIT_BACKEND`` in the environment overrides a layer's ``auto``.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

from rnnkit import bptt

try:  # the kernel package may be left out of a build: then only the reference path runs
    from rnnkit import kernels as _kernels
except ImportError:  # pragma: no cover - a trimmed install
    _kernels = None

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "fused", "reference")
_REFERENCE = SimpleNamespace(
    name="reference",
    lstm=bptt.lstm_sequence,
    gru=bptt.gru_sequence,
    rnn=bptt.rnn_sequence,
)
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
    """The namespace of ``lstm``/``gru``/``rnn`` sequence functions for ``backend``."""
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
