"""rnnkit layers against torch.nn, side by side in one process, as ratios.

ratio = torch.nn time / rnnkit time (above 1: rnnkit is faster). Medians of alternating
repeats, forward-only under no_grad and forward+backward, for each family and size, with the
GFLOP/s reached and its share of the sgemm peak measured in the same run (rnnkit.bench does
the measuring; ``rnnkit bench`` prints the same table).

    python benchmarks/speed.py --backend fused --families lstm --batch 8 --hidden 256 --T 50
    python benchmarks/speed.py --json speed.json            # the whole matrix of the issue
"""

from __future__ import annotations

import argparse
import sys

from rnnkit.commands.bench import add_matrix_arguments, run_bench
from rnnkit.errors import UserError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_matrix_arguments(parser)
    args = parser.parse_args()
    try:
        return run_bench(args)
    except UserError as error:
        print(f"speed.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
