"""rnnkit layers against torch.nn, side by side in one process, as ratios.

ratio = torch.nn time / rnnkit time (above 1: rnnkit is faster). Medians of repeats,
forward-only under no_grad and forward+backward, for each family and size.

    python benchmarks/speed.py --backend reference --batch 1 8 64 --hidden 64 256 --T 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import rnnkit

FAMILIES = {
    "lstm": (nn.LSTM, rnnkit.LSTM),
    "gru": (nn.GRU, rnnkit.GRU),
    "rnn": (nn.RNN, rnnkit.RNN),
}


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(family: str, batch: int, hidden: int, steps: int, backend: str, repeats: int):
    torch_class, rnnkit_class = FAMILIES[family]
    reference = torch_class(hidden, hidden)
    ours = rnnkit_class(hidden, hidden, backend=backend)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(steps, batch, hidden)
    x_grad = x.clone().requires_grad_(True)

    def forward(module):
        def run():
            with torch.no_grad():
                module(x)

        return run

    def forward_backward(module):
        def run():
            output, _ = module(x_grad)
            output.sum().backward()

        return run

    row = {"family": family, "batch": batch, "hidden": hidden, "T": steps}
    for mode, make in (("forward", forward), ("forward_backward", forward_backward)):
        torch_time = median_seconds(make(reference), repeats)
        ours_time = median_seconds(make(ours), repeats)
        row[mode] = {"torch": torch_time, "rnnkit": ours_time, "ratio": torch_time / ours_time}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["lstm", "gru", "rnn"], choices=FAMILIES)
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--hidden", nargs="+", type=int, default=[64, 256, 512])
    parser.add_argument("--T", nargs="+", type=int, default=[50])
    parser.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    header = (
        f"{'family':6} {'batch':>5} {'hidden':>6} {'T':>4} | {'fwd torch':>10} {'rnnkit':>9} "
        f"{'ratio':>6} | {'f+b torch':>10} {'rnnkit':>9} {'ratio':>6}"
    )
    print(f"backend={args.backend}  threads={torch.get_num_threads()}  torch {torch.__version__}")
    print(header)
    print("-" * len(header))
    for family in args.families:
        for steps in args.T:
            for batch in args.batch:
                for hidden in args.hidden:
                    row = measure(family, batch, hidden, steps, args.backend, args.repeats)
                    rows.append(row)
                    fwd, both = row["forward"], row["forward_backward"]
                    print(
                        f"{family:6} {batch:5d} {hidden:6d} {steps:4d} | "
                        f"{fwd['torch'] * 1e3:8.2f}ms {fwd['rnnkit'] * 1e3:7.2f}ms "
                        f"{fwd['ratio']:6.2f} | {both['torch'] * 1e3:8.2f}ms "
                        f"{both['rnnkit'] * 1e3:7.2f}ms {both['ratio']:6.2f}",
                        flush=True,
                    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
