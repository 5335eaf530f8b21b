"""What the GRU and RNN variants cost on the fused path, forward+backward, in one process.

For each family and size: the plain fused layer, each variant of it (training mode, so masks
are drawn as in training) and all of them together, each also on the reference path (bptt/).
Runs take turns (``rnnkit.bench_variants.round_robin``); each time is a median. Ratios: variant
/ plain fused layer (the cost of the option) and reference / fused (what the kernels save).

    python benchmarks/gru_rnn_variants.py --sizes 8x128 32x256 --T 100
"""

from __future__ import annotations

import argparse

import torch
from results import write_results

import rnnkit
from rnnkit.bench_variants import _forward_backward, parse_size, round_robin

OPTIONS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.1},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "all": {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.25},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8x128", "32x256"], help="BATCHxHIDDEN")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--families", nargs="+", default=["GRU", "RNN"], choices=["GRU", "RNN"])
    parser.add_argument("--results-name", default="gru_rnn_variants",
                        help="benchmarks/results/NAME.json ('' to write none)")
    args = parser.parse_args()
    rows = []
    print(f"forward+backward, T={args.T}, {torch.get_num_threads()} threads, "
          f"medians of {args.repeats} round-robin repeats")
    for mode in args.families:
        for batch, hidden in (parse_size(text) for text in args.sizes):
            torch.manual_seed(0)
            x = torch.randn(args.T, batch, hidden, requires_grad=True)
            runs = {}
            for name, options in OPTIONS.items():
                if mode == "RNN" and options.get("layer_norm"):  # offered for LSTM and GRU only
                    options = {k: v for k, v in options.items() if k != "layer_norm"}
                    if not options:
                        continue
                for backend in ("fused", "reference"):
                    layer = getattr(rnnkit, mode)(hidden, hidden, backend=backend, **options)
                    runs[name, backend] = _forward_backward(layer, x)
            times = round_robin(runs, args.repeats)
            plain = times["plain", "fused"]
            for (name, backend), seconds in times.items():
                if backend != "fused":
                    continue
                print(f"{mode} {batch:3d}x{hidden:<5d} {name:18s} {seconds * 1e3:9.2f} ms  "
                      f"x{seconds / plain:.2f} of plain  reference/fused "
                      f"x{times[name, 'reference'] / seconds:.2f}")
                rows.append({"family": mode, "batch": batch, "hidden": hidden, "T": args.T,
                             "variant": name, "fused_ms": seconds * 1e3,
                             "cost": seconds / plain,
                             "reference_over_fused": times[name, "reference"] / seconds})
    if args.results_name:
        print(f"wrote {write_results(args.results_name, {'rows': rows})}")


if __name__ == "__main__":
    main()
