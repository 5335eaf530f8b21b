"""Training memory: peak RSS of one forward+backward, rnnkit beside torch.nn, fresh processes.

Peak resident memory is a per-process high-water mark, so every measurement runs in its own
child process: it builds the layer and the input, notes its peak RSS, runs one forward and
backward (after one warm-up run, so both sides have their caches and buffers), and reports
how far the peak rose. Sizes default to issue 3's: batch 64, hidden 512, T 200, input = hidden.
``--infer`` measures a forward under torch.no_grad() instead (rnnkit's inference operators keep
no gates and no per-step cells); ``--smoke`` runs a tiny size once and writes nothing.

    python benchmarks/memory.py                   # all three families -> results/memory.json
    python benchmarks/memory.py --families GRU --batch 32 --hidden 256 --T 100 --results-name ""
    python benchmarks/memory.py --infer                      # -> results/memory_infer.json
    python benchmarks/memory.py --smoke
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


def child(implementation: str, family: str, batch: int, hidden: int, steps: int,
          infer: bool = False) -> dict:
    import torch

    import rnnkit

    torch.manual_seed(0)
    module = getattr(torch.nn if implementation == "torch.nn" else rnnkit, family)(hidden, hidden)
    x = torch.randn(steps, batch, hidden, requires_grad=not infer)

    def once() -> None:
        if infer:
            with torch.no_grad():
                module(x)
        else:
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
    parser.add_argument("--infer", action="store_true",
                        help="a forward under torch.no_grad() instead of forward+backward")
    parser.add_argument("--smoke", action="store_true",
                        help="batch 2, hidden 16, T 5, no results file: proves the script runs")
    parser.add_argument("--results-name", default=None,
                        help="benchmarks/results/NAME.json ('' to write none; default memory, "
                             "or memory_infer with --infer)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.family, args.batch, args.hidden, args.T,
                               args.infer)))
        return
    if args.smoke:
        args.batch, args.hidden, args.T, args.results_name = 2, 16, 5, ""
    if args.results_name is None:
        args.results_name = "memory_infer" if args.infer else "memory"
    what = "forward under no_grad" if args.infer else "forward+backward"
    rows = []
    for family in args.families:
        print(f"{family} {what}, batch {args.batch}, hidden {args.hidden}, "
              f"T {args.T}: peak RSS rise over the process before the first run")
        results = {}
        for implementation in IMPLEMENTATIONS:
            command = [sys.executable, __file__, "--child", implementation, "--family", family,
                       "--batch", str(args.batch), "--hidden", str(args.hidden),
                       "--T", str(args.T)] + (["--infer"] if args.infer else [])
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[implementation] = json.loads(output.strip().splitlines()[-1])
            row = results[implementation]
            print(f"  {implementation:9s} peak {row['peak_mib']:8.1f} MiB   "
                  f"rise {row['rise_mib']:7.1f} MiB")
        torch_rise = results["torch.nn"]["rise_mib"]
        ratio = results["rnnkit"]["rise_mib"] / torch_rise if torch_rise > 0 else None
        print("  rnnkit / torch.nn (rise): " + (f"{ratio:.2f}" if ratio is not None
                                                  else "- (torch.nn's peak did not rise)"))
        rows.append({"family": family, "mode": what, "batch": args.batch, "hidden": args.hidden,
                     "T": args.T,
                     "torch.nn": results["torch.nn"], "rnnkit": results["rnnkit"],
                     "rise_ratio": ratio})
    if args.results_name:
        print(f"wrote {write_results(args.results_name, {'rows': rows})}")


if __name__ == "__main__":
    main()
