"""Two checkouts of rnnkit side by side: does a change keep ``rnnkit bench``'s ratios?

Runs ``rnnkit bench --json -`` from each checkout in turn (``PYTHONPATH`` pointing at it, each
with its own kernel build), ``--rounds`` times alternating, and reports per cell the median
ratio (torch.nn time / rnnkit time) of each checkout and their quotient new / old, so a
change of the Python/C++ boundary can be held to "no worse than before within 3%".

    python benchmarks/compare_builds.py OLD_CHECKOUT NEW_CHECKOUT --batch 1 8 64 \\
        --hidden 64 256 1024 --T 50 --rounds 3 --results-name operators_speed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from results import write_results


def bench(checkout: Path, args) -> list[dict]:
    command = [sys.executable, "-m", "rnnkit.cli", "bench", "--json", "-", "--repeats",
               str(args.repeats), "--families", *args.families, "--batch", *map(str, args.batch),
               "--hidden", *map(str, args.hidden), "--T", *map(str, args.T)]
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    output = subprocess.run(command, cwd=checkout, env=environment, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output)["rows"]


def key(row: dict) -> tuple:
    return row["family"], row["batch"], row["hidden"], row["T"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--families", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--hidden", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--T", nargs="+", type=int, default=[50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-name", default="", help="benchmarks/results/NAME.json")
    args = parser.parse_args(argv)
    ratios: dict[tuple, dict[str, list[float]]] = {}
    for round_index in range(args.rounds):
        for label, checkout in (("old", args.old), ("new", args.new)):
            print(f"round {round_index + 1}/{args.rounds}: {label} ({checkout})", flush=True)
            for row in bench(checkout, args):
                cell = ratios.setdefault(key(row), {})
                for mode in ("forward", "forward_backward"):
                    cell.setdefault(f"{label} {mode}", []).append(row[mode]["ratio"])
    rows = []
    print(f"\n{'cell':<22}{'fwd old':>9}{'fwd new':>9}{'new/old':>9}"
          f"{'f+b old':>9}{'f+b new':>9}{'new/old':>9}")
    for (family, batch, hidden, steps), cell in ratios.items():
        row = {"family": family, "batch": batch, "hidden": hidden, "T": steps}
        for mode in ("forward", "forward_backward"):
            old = statistics.median(cell[f"old {mode}"])
            new = statistics.median(cell[f"new {mode}"])
            row[mode] = {"old_ratio": old, "new_ratio": new, "new_over_old": new / old}
        rows.append(row)
        print(f"{family:>4} B{batch:<3} H{hidden:<5} T{steps:<4}"
              + "".join(f"{row[m]['old_ratio']:9.2f}{row[m]['new_ratio']:9.2f}"
                        f"{row[m]['new_over_old']:9.3f}" for m in ("forward", "forward_backward")))
    if args.results_name:
        path = write_results(args.results_name, {"old": str(args.old), "new": str(args.new),
                                                 "rows": rows})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
