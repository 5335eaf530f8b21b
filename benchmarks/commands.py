"""Run a command from a benchmark script, echoing it, and return its stdout (or stop with its
stderr): the one way the scripts here call ``rnnkit``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], what: str) -> str:
    """``command`` in the repository root; ``what`` is echoed before it starts."""
    print(f"$ {what}", flush=True)
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}):\n{process.stderr[-2000:]}")
    return process.stdout


def rnnkit(*arguments: str) -> str:
    """``rnnkit ARGUMENTS`` with this interpreter."""
    return run([sys.executable, "-m", "rnnkit.cli", *arguments],
               "rnnkit " + " ".join(arguments))
