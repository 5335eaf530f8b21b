"""Streaming: 50 calls of a layer at T=1, batch 1, each carrying the state the previous call
returned, under no_grad, rnnkit against torch.nn at hidden 64..1024 (input size = hidden).

ratio = torch.nn time / rnnkit time (above 1: rnnkit is faster), medians of alternating
repeats (rnnkit.bench.measure_streaming; ``rnnkit bench --streaming`` prints the same table).
Written to benchmarks/results/streaming.json; ``--smoke`` runs one tiny size to show the script
works and writes nothing.

    python benchmarks/streaming.py                 # lstm, gru, rnn at hidden 64 128 256 512 1024
    python benchmarks/streaming.py --smoke
"""

from __future__ import annotations

import argparse
import sys

import torch

from rnnkit import bench

HIDDENS = (64, 128, 256, 512, 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(bench.FAMILIES),
                        choices=list(bench.FAMILIES))
    parser.add_argument("--hidden", nargs="+", type=int, default=list(HIDDENS))
    parser.add_argument("--repeats", type=int, default=21, help="alternating runs (median)")
    parser.add_argument("--backend", default="fused", choices=["auto", "fused", "reference"])
    parser.add_argument("--smoke", action="store_true",
                        help="hidden 16, 3 repeats, no results file: proves the script runs")
    args = parser.parse_args()
    hiddens, repeats = ([16], 3) if args.smoke else (args.hidden, args.repeats)
    print(bench.STREAM_HEADER)
    rows = []
    for family in args.families:
        for hidden in hiddens:
            row = bench.measure_streaming(family, hidden, bench.STREAM_CALLS, repeats,
                                          args.backend)
            rows.append(row)
            print(bench.format_streaming_row(row), flush=True)
    if args.smoke:
        print("smoke run: no results written")
        return 0
    from results import write_results

    info = bench.environment(args.backend, 0.0)
    info.pop("sgemm_peak_gflops")
    print(write_results("streaming", {"environment": info, "threads": torch.get_num_threads(),
                                      "repeats": repeats, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
