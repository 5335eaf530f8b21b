"""Training memory: peak RSS of one forward+backward, rnnkit beside torch.nn, fresh processes.

Peak resident memory is a per-process high-water mark, so every measurement runs in its own
child process: it builds the layer and the input, notes its peak RSS, runs one forward and
backward (after one warm-up run, so both sides have their caches and buffers), and reports
how far the peak rose. Sizes default to issue 3's: batch 64, hidden 512, T 200, input = hidden.

    python benchmarks/memory.py                   # all three families -> results/memory.json
    python benchmarks/memory.py --families GRU --batch 32 --hidden 256 --T 100 --results-name ""
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from results import write_results

IMPLEMENTATIONS = ("torch.nn", "rnnkit")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(implementation: str, family: str, batch: int, hidden: int, steps: int) -> dict:
    import torch

    import rnnkit

    torch.manual_seed(0)
    module = getattr(torch.nn if implementation == "torch.nn" else rnnkit, family)(hidden, hidden)
    x = torch.randn(steps, batch, hidden, requires_grad=True)

    def once() -> None:
        module(x)[0].sum().backward()

    before = peak_mib()
    once()  # warm-up: first-call allocations, kernel loading
    warm = peak_mib()
    once()
    return {"implementation": implementation, "before_mib": before, "warm_mib": warm,
            "peak_mib": peak_mib(), "rise_mib": peak_mib() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["LSTM", "GRU", "RNN"],
                        choices=["RNN", "GRU", "LSTM"])
    parser.add_argument("--family", help=argparse.SUPPRESS)  # the child's one family
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--results-name", default="memory",
                        help="benchmarks/results/NAME.json ('' to write none)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.family, args.batch, args.hidden, args.T)))
        return
    rows = []
    for family in args.families:
        print(f"{family} forward+backward, batch {args.batch}, hidden {args.hidden}, "
              f"T {args.T}: peak RSS rise over the process before the first run")
        results = {}
        for implementation in IMPLEMENTATIONS:
            command = [sys.executable, __file__, "--child", implementation, "--family", family,
                       "--batch", str(args.batch), "--hidden", str(args.hidden),
                       "--T", str(args.T)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[implementation] = json.loads(output.strip().splitlines()[-1])
            row = results[implementation]
            print(f"  {implementation:9s} peak {row['peak_mib']:8.1f} MiB   "
                  f"rise {row['rise_mib']:7.1f} MiB")
        ratio = results["rnnkit"]["rise_mib"] / results["torch.nn"]["rise_mib"]
        print(f"  rnnkit / torch.nn (rise): {ratio:.2f}")
        rows.append({"family": family, "batch": args.batch, "hidden": args.hidden, "T": args.T,
                     "torch.nn": results["torch.nn"], "rnnkit": results["rnnkit"],
                     "rise_ratio": ratio})
    if args.results_name:
        print(f"wrote {write_results(args.results_name, {'rows': rows})}")


if __name__ == "__main__":
    main()
