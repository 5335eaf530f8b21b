"""Write a benchmark's output as a results file: benchmarks/results/NAME.json.

Every figure in the README comes from one of these files. Each holds what was measured and
where: the commit (with ``-dirty`` when the work tree had uncommitted changes), the date, the
machine (CPU model, cores, torch and Python versions) and the command line that produced it.

    from results import write_results          # a script in benchmarks/
    write_results("memory", {"rows": rows})    # -> benchmarks/results/memory.json
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
REQUIRED_KEYS = ("commit", "date", "machine", "command", "results")


def commit() -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "rnnkit", "benchmarks")
    return head + ("-dirty" if dirty else "")


STARTED_AT = commit()  # the code measured: the commit when the benchmark began, not when it ended


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(name: str, results, command: list[str] | None = None,
                  folder: Path = RESULTS) -> Path:
    """Write ``folder/name.json`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    argv = command if command is not None else [sys.executable.rsplit("/", 1)[-1], *sys.argv]
    record = {
        "commit": STARTED_AT,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": shlex.join(argv),
        "results": results,
    }
    path = folder / f"{name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
