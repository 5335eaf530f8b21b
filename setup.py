"""Build rnnkit's wheel with the fused operators compiled in; pyproject.toml holds the metadata.

``pip wheel --no-build-isolation --no-deps -w dist .`` (torch installed, see README) compiles
``rnnkit/kernels/csrc`` with torch's ``BuildExtension`` into ``rnnkit/kernels/_ops.abi3.so``:
portable flags (no ``-march=native``), and the Python limited API, since the library has no
Python module in it (``torch.ops.load_library`` loads it, and it registers operators only), so
one wheel serves every CPython from 3.10 on. ``_ops.json`` beside it records the sources' digest
and the torch it was built with, for the loader to check. An editable install compiles nothing
and needs no torch to build: the loader builds the kernels just in time instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
EDITABLE_COMMANDS = {"editable_wheel", "develop"}
BUILD_COMMANDS = {"bdist_wheel", "build", "build_ext", "install", "bdist"}


def _loader():
    """rnnkit/kernels/loader.py by itself (not the package): the flags and the digest."""
    spec = importlib.util.spec_from_file_location(
        "_rnnkit_loader", ROOT / "rnnkit" / "kernels" / "loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel_build() -> dict:
    """The compiled extension and its build_ext, or nothing for metadata and editable builds."""
    commands = set(sys.argv[1:])
    if commands & EDITABLE_COMMANDS or not commands & BUILD_COMMANDS:
        return {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError as error:
        raise SystemExit(
            "rnnkit's wheel compiles its operators against torch, which this build environment "
            "lacks: build it with torch installed and without isolation, e.g. "
            "pip install -c constraints.txt torch && "
            "pip wheel --no-build-isolation --no-deps -w dist . (README)") from error
    loader = _loader()
    cflags, ldflags = loader._build_settings(portable=True)
    info = loader.build_info()

    class BuildKernels(BuildExtension):
        """torch's build_ext, writing _ops.json beside the library it builds."""

        def run(self):
            super().run()
            for extension in self.extensions:
                library = Path(self.get_ext_fullpath(extension.name))
                (library.parent / "_ops.json").write_text(json.dumps(info, indent=1) + "\n")

        def get_outputs(self):
            return super().get_outputs() + [
                str(Path(self.get_ext_fullpath(extension.name)).parent / "_ops.json")
                for extension in self.extensions]

    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 1))
    sources = sorted(str(path.relative_to(ROOT)) for path in loader._sources()
                     if path.suffix == ".cpp")
    extension = CppExtension(
        "rnnkit.kernels._ops",
        sources,
        extra_compile_args=cflags + ["-g0"],  # over Python's -g: 1.8 MB, not 18
        extra_link_args=ldflags,
        py_limited_api=True,
    )
    return {
        "ext_modules": [extension],
        "cmdclass": {"build_ext": BuildKernels},
        "options": {"bdist_wheel": {"py_limited_api": "cp310"}},
    }


setup(**_kernel_build())
