"""The loader's choice between a wheel's prebuilt operator library and a build of its own.

No library is loaded here: the wheel itself is tested end to end in ``test_wheel.py`` (slow).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from rnnkit.kernels import loader


@pytest.fixture
def package(monkeypatch, tmp_path):
    """An empty package folder in place of rnnkit/kernels, where a wheel puts _ops*.so."""
    monkeypatch.setattr(loader, "PACKAGE_DIRECTORY", tmp_path)
    monkeypatch.delenv("RNNKIT_KERNELS", raising=False)
    return tmp_path


def _install(folder, **changes):
    library = folder / "_ops.abi3.so"
    library.write_bytes(b"not an ELF file")
    info = loader.build_info() | changes
    (folder / "_ops.json").write_text(json.dumps(info))
    return library


def test_an_editable_install_has_no_packaged_library(package):
    library, reason = loader.packaged_library()
    assert library is None and "no packaged library" in reason


def test_a_matching_packaged_library_is_taken(package):
    library = _install(package)
    assert loader.packaged_library() == (library, "")
    release = torch.__version__.split("+")[0].split(".")
    patch = f"{release[0]}.{release[1]}.99"  # another patch release of the same torch
    _install(package, torch=patch)
    assert loader.packaged_library() == (library, "")


@pytest.mark.parametrize("changes, why", [
    ({"sources": "0" * 64}, "other sources"),
    ({"torch": "1.0.0"}, "built for torch 1.0.0"),
])
def test_a_stale_or_foreign_packaged_library_is_refused(package, changes, why):
    _install(package, **changes)
    library, reason = loader.packaged_library()
    assert library is None and why in reason


def test_a_packaged_library_without_its_build_record_is_refused(package):
    _install(package)
    (package / "_ops.json").unlink()
    library, reason = loader.packaged_library()
    assert library is None and "no readable build record" in reason


def test_a_packaged_library_that_does_not_load_falls_back(package, caplog):
    _install(package)  # not an ELF file: dlopen fails before anything registers
    with caplog.at_level(logging.WARNING, logger="rnnkit"):
        assert loader._load_packaged() is None
    assert "did not load" in caplog.text
    assert loader.PACKAGED_NAME not in loader._loaded


def test_rnnkit_kernels_jit_skips_the_packaged_library(package, monkeypatch):
    _install(package)
    monkeypatch.setenv("RNNKIT_KERNELS", "jit")
    monkeypatch.setattr(loader, "packaged_library", lambda: pytest.fail("looked at the wheel"))
    assert loader._load_packaged() is None


def test_wheel_flags_are_portable():
    portable, _ = loader._build_settings(portable=True)
    native, _ = loader._build_settings()
    assert "-march=native" in native and not any(flag.startswith("-march") for flag in portable)
    assert set(portable) == set(native) - {"-march=native"}
