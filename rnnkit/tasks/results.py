"""Results of long-range runs as a table (for the terminal and the report) and as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rnnkit.tasks import make_task

HEADER = ("task", "cell", "seed", "metric", "final", "best", "solved at", "steps", "seconds")


def rows(results: list[dict]) -> list[list[str]]:
    """One row per run, in the order given."""
    table = []
    for result in results:
        table.append([
            f"{result['task']} T={result['length']}", result["cell"], str(result["seed"]),
            result["metric"], f"{result['final']:.4f}", f"{result['best']:.4f}",
            "—" if result["solved_step"] is None else str(result["solved_step"]),
            str(result["steps"]), f"{result['seconds']:.0f}",
        ])
    return table


def verdicts(results: list[dict]) -> list[list[str]]:
    """CSS classes for :func:`rows`: the final score green when solved, red at the baseline."""
    classes = []
    for result in results:
        metric = make_task(result["task"], result["length"]).metric
        final = result["final"]
        if metric.is_solved(final):
            verdict = "good"
        else:
            span = metric.solved - metric.baseline
            verdict = "bad" if abs(final - metric.baseline) < 0.25 * abs(span) else ""
        classes.append(["", "", "", "", verdict, "", "", "", ""])
    return classes


def format_table(results: list[dict]) -> str:
    """A fixed-width text table for the terminal."""
    body = rows(results)
    widths = [max(len(HEADER[i]), *(len(row[i]) for row in body)) for i in range(len(HEADER))]
    lines = ["  ".join(name.ljust(widths[i]) if i < 2 else name.rjust(widths[i])
                       for i, name in enumerate(HEADER))]
    lines.append("  ".join("-" * width for width in widths))
    for row in body:
        lines.append("  ".join(value.ljust(widths[i]) if i < 2 else value.rjust(widths[i])
                               for i, value in enumerate(row)))
    return "\n".join(lines)


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
