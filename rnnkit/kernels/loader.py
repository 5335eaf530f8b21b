"""Load the fused kernels: the library built into the wheel, else a build of our own, cached.

An installed wheel carries the operators prebuilt (``setup.py``: ``rnnkit/kernels/_ops*.so``
with portable flags, and ``_ops.json`` beside it naming the sources' digest and the torch it was
built with). :func:`packaged_library` takes it when it matches the sources beside it and the
torch release that runs, and the loader loads it when it loads; otherwise (an editable install,
another torch, ``RNNKIT_KERNELS=jit``) the kernels are built here, just in time, with
``-march=native``.

The build goes to ``$RNNKIT_CACHE`` (default ``~/.cache/rnnkit``) under
``kernels-<hash>``, the hash covering the sources, the compiler flags, torch's and Python's
versions and the CPU, so a changed source or another machine sharing the home directory never
loads a stale or foreign binary. The shared object holds no Python module: it registers the
``torch.ops.rnnkit`` operators (``csrc/ops.cpp``) when :func:`torch.ops.load_library` loads it,
and :mod:`rnnkit.kernels.ops` then adds their fake implementations and autograd formulas.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import importlib.machinery
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch

logger = logging.getLogger(__name__)

SOURCE_DIRECTORY = Path(__file__).parent / "csrc"
PACKAGE_DIRECTORY = Path(__file__).parent  # where a wheel puts _ops*.so and _ops.json
PACKAGED_NAME = "_ops"
NO_PACKAGED_LIBRARY = "no packaged library (an editable install builds its own)"
_MKL_SYMBOLS = (
    "sgemm_",
    "dgemm_",
    "cblas_sgemm_pack_get_size",
    "cblas_sgemm_pack",
    "cblas_sgemm_compute",
    "cblas_gemm_bf16bf16f32",
)
_lock = threading.Lock()
_functions: SimpleNamespace | None = None
_failure: str | None = None
_loaded: dict[str, Path] = {}  # library name -> the shared object this process loaded


class Library(NamedTuple):
    """The operator library this process loaded: ``kind`` is "packaged" or "jit"."""

    kind: str
    path: Path


class KernelBuildError(RuntimeError):
    """The fused kernels could not be built or loaded (no compiler, a failed build, ...)."""


def cache_directory() -> Path:
    """Where built kernels live: ``$RNNKIT_CACHE`` or ``$XDG_CACHE_HOME/rnnkit``."""
    root = os.environ.get("RNNKIT_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnkit"


def _with_mkl() -> bool:
    """Whether torch's CPU library exports MKL's BLAS (true for the x86 wheels)."""
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        handle = ctypes.CDLL(str(library))
    except OSError:
        return False
    return all(hasattr(handle, symbol) for symbol in _MKL_SYMBOLS)


def _cpu_signature() -> str:
    """The CPU's model and flags: -march=native code must not run on another CPU."""
    lines = []
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    lines.append(line.strip())
                if line.strip() == "":
                    break  # the first processor describes them all
    except OSError:
        pass
    return platform.machine() + "\n" + "\n".join(lines)


def _build_settings(portable: bool = False) -> tuple[list[str], list[str]]:
    """Compiler and linker flags: ``-march=native`` for a build here, none for a wheel."""
    # torch builds with the same two: they let the compiler vectorise floor and friends
    cflags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if not portable:
        cflags.insert(1, "-march=native")
    if _with_mkl():
        cflags.append("-DRNNKIT_WITH_MKL")
    return cflags, ["-fopenmp"]


def _sources() -> list[Path]:
    return sorted(SOURCE_DIRECTORY.glob("*.cpp")) + sorted(SOURCE_DIRECTORY.glob("*.h"))


def _digest_sources(digest) -> None:
    for path in _sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())


def source_digest() -> str:
    """The kernels' sources' digest: a wheel records it, the loader compares it."""
    digest = hashlib.sha256()
    _digest_sources(digest)
    return digest.hexdigest()


def _key(cflags: list[str]) -> str:
    digest = hashlib.sha256()
    _digest_sources(digest)
    for part in (torch.__version__, sys.version, " ".join(cflags), _cpu_signature()):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _release(version: str) -> tuple[str, ...]:
    """torch's major and minor release ("2.13.0+cpu" -> ("2", "13")): its C++ ABI."""
    return tuple(version.split("+")[0].split(".")[:2])


def build_info() -> dict:
    """What a wheel's ``_ops.json`` records about the library built into it."""
    cflags, _ = _build_settings(portable=True)
    return {"sources": source_digest(), "torch": torch.__version__, "cflags": cflags}


def packaged_library() -> tuple[Path | None, str]:
    """The operator library a wheel installed, and why it is or is not usable here.

    Returns ``(path, "")`` when ``_ops*.so`` is there and its ``_ops.json`` names these
    sources and this torch release, else ``(None, reason)``: an editable install has none, and
    a library built from other sources or for another torch must not be loaded.
    """
    library = None
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = PACKAGE_DIRECTORY / f"{PACKAGED_NAME}{suffix}"
        if candidate.exists():
            library = candidate
            break
    if library is None:
        return None, NO_PACKAGED_LIBRARY
    try:
        info = json.loads((PACKAGE_DIRECTORY / f"{PACKAGED_NAME}.json").read_text())
    except (OSError, ValueError) as error:
        return None, f"{library} has no readable build record: {error}"
    if info.get("sources") != source_digest():
        return None, f"{library} was built from other sources than those beside it"
    if _release(str(info.get("torch", ""))) != _release(torch.__version__):
        return None, f"{library} was built for torch {info.get('torch')}, not {torch.__version__}"
    return library, ""


def _load_packaged() -> Path | None:
    """Load the wheel's library if it is usable; None (the reason logged) when it is not."""
    if os.environ.get("RNNKIT_KERNELS", "").lower() == "jit":
        return None
    library, reason = packaged_library()
    if library is None:  # a wheel's library that does not fit deserves a word: a build follows
        level = logging.DEBUG if reason == NO_PACKAGED_LIBRARY else logging.WARNING
        logger.log(level, "rnnkit: %s; building the kernels here instead", reason)
        return None
    try:
        # dlopen fails (OSError) before any operator registers, so a build can still follow
        torch.ops.load_library(str(library))
    except OSError as error:
        logger.warning("rnnkit: the packaged kernels did not load (%s); building them here", error)
        return None
    except RuntimeError as error:
        raise KernelBuildError(f"loading {library} failed: {error}") from error
    _loaded[PACKAGED_NAME] = library
    return library


def _compile(name: str, target: Path, cflags: list[str], ldflags: list[str]) -> None:
    """Build into a fresh folder beside ``target`` and rename it into place (atomic); the
    library is loaded into this process (its operators registered) on the way."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        raise KernelBuildError("no C++ compiler found (set CXX or install g++/clang++)")
    from torch.utils import cpp_extension

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".building-", dir=target.parent))
    logger.warning("rnnkit: building the fused C++ kernels once (about a minute) into %s", target)
    try:
        cpp_extension.load(
            name=name,
            sources=[str(path) for path in _sources() if path.suffix == ".cpp"],
            extra_cflags=cflags,
            extra_ldflags=ldflags,
            build_directory=str(staging),
            is_python_module=False,  # a plain shared object: torch.ops.load_library loads it
            verbose=False,
        )
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / f"{name}.so").exists():  # not another process winning the race
                raise
    except Exception as error:
        raise KernelBuildError(f"building the fused kernels failed: {error}") from error
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _load_extension(allow_build: bool = True) -> Path:
    """Load the wheel's operator library, or build (once) and load ours; its path."""
    if PACKAGED_NAME in _loaded:
        return _loaded[PACKAGED_NAME]
    if not _loaded:  # never both: the two would register the same operators
        packaged = _load_packaged()
        if packaged is not None:
            return packaged
    cflags, ldflags = _build_settings()
    key = _key(cflags)
    name = f"rnnkit_kernels_{key}"
    target = cache_directory() / f"kernels-{key}"
    library = target / f"{name}.so"
    if name in _loaded:
        return _loaded[name]
    if not library.exists():
        if not allow_build:
            raise KernelBuildError(f"the fused kernels are not built (expected {library})")
        target.parent.mkdir(parents=True, exist_ok=True)
        # one build at a time across processes: the others wait, then load what it built
        with open(target.parent / f"kernels-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not library.exists():
                _compile(name, target, cflags, ldflags)
                _loaded[name] = library
                return library
    try:
        torch.ops.load_library(str(library))
    except (OSError, RuntimeError) as error:
        raise KernelBuildError(f"loading {library} failed: {error}") from error
    _loaded[name] = library
    return library


def build() -> Library:
    """Load the kernels now, building them if the wheel brought none (``rnnkit build-kernels``).

    Returns:
        which library was loaded: the wheel's ("packaged") or one built here ("jit"), in the
        cache folder ``path.parent``.

    Raises:
        KernelBuildError: no compiler, or the compiler failed; the message says which.
    """
    path = _load_extension()
    return Library("packaged" if path == _loaded.get(PACKAGED_NAME) else "jit", path)


def loaded_library() -> Library | None:
    """The operator library this process loaded, or None before any was."""
    if PACKAGED_NAME in _loaded:
        return Library("packaged", _loaded[PACKAGED_NAME])
    for path in _loaded.values():
        return Library("jit", path)
    return None


def load_functions() -> SimpleNamespace | None:
    """The fused backend (a namespace named "fused") once its operators are loaded and
    registered, or None where they cannot be built. The families' fused functions
    (``rnnkit.kernels.<family>``) are found through their declarations (:mod:`rnnkit.families`).

    Called on every forward of a layer: after the first call it returns a cached namespace.
    A failure is logged once as a warning and remembered, so the next call costs nothing.
    """
    global _functions, _failure
    if _functions is not None or _failure is not None:
        return _functions
    with _lock:
        if _functions is None and _failure is None:
            try:
                _load_extension()
                from rnnkit.kernels import ops

                ops.register()
            except Exception as error:  # a layer's forward must run whatever went wrong here
                _failure = str(error)
                logger.warning("rnnkit: %s; running the reference path (rnnkit.bptt)", error)
                return None
            _functions = SimpleNamespace(name="fused")
    return _functions


def failure() -> str | None:
    """Why the last :func:`load_functions` returned None, or None when it did not."""
    return _failure


def reset() -> None:
    """Forget the cached outcome, so the next :func:`load_functions` tries again (tests)."""
    global _functions, _failure
    with _lock:
        _functions = None
        _failure = None
