"""What the variants cost, forward+backward, side by side in one process.

For each size: the plain rnnkit LSTM, each variant of it, and the layer-norm LSTM a user
would write in plain PyTorch (the equations over torch ops in a step loop, autograd for the
backward). Ratios: variant time / plain rnnkit LSTM time (the cost of the option) and
step-loop time / rnnkit layer-norm time (rnnkit's speed-up over writing it yourself). The
measuring code is :mod:`rnnkit.bench_variants`, shared with ``rnnkit bench --variants``.

    python benchmarks/variants.py --sizes 8x128 32x256 --T 100
"""

from __future__ import annotations

import argparse
import json

import torch

from rnnkit import bench_variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8x128", "32x256"], help="BATCHxHIDDEN")
    parser.add_argument("--T", type=int, default=bench_variants.STEPS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sizes = [bench_variants.parse_size(text) for text in args.sizes]
    print(bench_variants.format_title(args.T, args.backend, args.repeats))
    print(bench_variants.HEADER)
    print("-" * len(bench_variants.HEADER))
    results = []
    for batch, hidden in sizes:
        result = bench_variants.measure(batch, hidden, args.T, args.repeats, args.backend)
        results.append(result)
        print("\n".join(bench_variants.format_rows(result)), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"variants": results}, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
