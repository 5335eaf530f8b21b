"""The fused fast path: C++ kernels for the RNN, GRU and LSTM, forward and backward.

The same loop and the same names as :mod:`rnnkit.bptt`, in C++ (``csrc/``), prebuilt in a wheel
or built once into a user cache directory, and loaded by :func:`load_functions`, which
:mod:`rnnkit.backends` calls.
It returns ``None`` (after one warning) where the kernels cannot be built.
"""

from rnnkit.kernels.loader import (
    KernelBuildError,
    Library,
    build,
    cache_directory,
    failure,
    load_functions,
    loaded_library,
    packaged_library,
)

__all__ = [
    "KernelBuildError",
    "Library",
    "build",
    "cache_directory",
    "failure",
    "load_functions",
    "loaded_library",
    "packaged_library",
]
