"""The wheel: built with the operators compiled in, installed in a fresh venv, run with no compiler.

Slow (it compiles the kernels and installs torch into a new venv, several minutes), so CI does
not select it: ``python -m pytest -m slow tests/test_wheel.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# runs in the fresh venv, with PATH holding python alone and CXX pointing nowhere
SCRIPT = r"""
import collections, json, shutil, sys
assert shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("gcc") is None
import torch
import rnnkit
from rnnkit.kernels import loader, ops

calls = collections.Counter()
operators = ops.kernels

class Counting:
    def __getattr__(self, name):
        value = getattr(operators, name)
        def counted(*args, **kwargs):
            calls[name] += 1
            return value(*args, **kwargs)
        return counted

assert rnnkit.kernels.load_functions() is not None, loader.failure()
ops.kernels = Counting()  # after the load: register() reads the operators themselves
torch.manual_seed(0)
fused = rnnkit.LSTM(5, 7, num_layers=2, backend="fused")
reference = rnnkit.LSTM(5, 7, num_layers=2, backend="reference")
reference.load_state_dict(fused.state_dict())
x = torch.randn(6, 3, 5, requires_grad=True)
output, _ = fused(x)
output.square().sum().backward()
gradient = x.grad.clone()
x.grad = None
expected, _ = reference(x)
expected.square().sum().backward()
torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-6)
torch.testing.assert_close(gradient, x.grad, rtol=1e-5, atol=1e-6)
library = loader.loaded_library()
print(json.dumps({"rnnkit": rnnkit.__file__, "kind": library.kind, "path": str(library.path),
                  "calls": dict(calls), "torch": torch.__version__}))
"""


# without PYTHONPATH: a source tree on it (its rnnkit.egg-info) would pass for the installed rnnkit
ENVIRONMENT = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "RNNKIT_KERNELS", "VIRTUAL_ENV")}


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", ENVIRONMENT)
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_wheel_runs_its_prebuilt_operators_without_a_compiler(tmp_path):
    source = tmp_path / "source"  # a clean copy: no build/, no stray _ops*.so
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "build", "dist")
    _mkdir(source)
    for name in ("pyproject.toml", "setup.py", "README.md", "constraints.txt"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "rnnkit", source / "rnnkit", ignore=ignore)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
          "-w", str(dist), str(source)])
    (wheel,) = dist.glob("rnnkit-*.whl")
    assert "-abi3-" in wheel.name and not wheel.name.endswith("-any.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "rnnkit/kernels/_ops.abi3.so" in names and "rnnkit/kernels/_ops.json" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"),
          str(wheel)])
    listed = _run([str(venv / "bin" / "pip"), "list", "--format=json"]).stdout
    packages = {entry["name"].lower(): entry["version"] for entry in json.loads(listed)}
    assert packages["torch"].startswith("2.13.0") and packages["rnnkit"] == "0.1.0"
    assert not [name for name in packages if name.startswith("nvidia")]

    bare = _mkdir(tmp_path / "bin")  # PATH: python and nothing else, so no compiler on it
    (bare / "python").symlink_to(venv / "bin" / "python")
    environment = dict(ENVIRONMENT)
    environment.update(PATH=str(bare), CXX=str(tmp_path / "no-compiler"),
                       RNNKIT_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path))
    # the venv's own python (a symlink elsewhere would not find its pyvenv.cfg)
    result = _run([str(venv / "bin" / "python"), "-c", SCRIPT], env=environment, cwd=tmp_path)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rnnkit"].startswith(str(venv)), report
    assert report["kind"] == "packaged", report
    assert report["path"].startswith(str(venv)) and report["path"].endswith("_ops.abi3.so")
    assert report["calls"].get("lstm_forward") and report["calls"].get("lstm_backward"), report
    assert not (tmp_path / "cache").exists()  # nothing was built
    cli = _run([str(venv / "bin" / "rnnkit"), "build-kernels"], env=environment, cwd=tmp_path)
    assert "prebuilt in the installed wheel" in cli.stdout


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
