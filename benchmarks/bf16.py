"""bf16 under CPU autocast: rnnkit's AVX512-BF16 kernels against torch.nn (oneDNN's bf16 RNN)
under the same autocast, and against rnnkit's own float32.

For each family, batch and hidden size (input size = hidden), four runs alternate, ``--repeats``
times each after a warm-up, and their medians are compared:

    torch_bf16   torch.nn layer under torch.autocast("cpu", dtype=torch.bfloat16)
    rnnkit_bf16  the rnnkit layer (same weights) under the same autocast
    rnnkit_f32   the rnnkit layer in float32, no autocast
    torch_f32    the torch.nn layer in float32 (context)

in two modes: ``train`` (forward + backward of output.float().sum()) and ``infer`` (forward
under no_grad). Ratios: ``vs_torch`` = torch_bf16 / rnnkit_bf16 and ``vs_f32`` = rnnkit_f32 /
rnnkit_bf16 (above 1: the bf16 rnnkit is faster). Writes ``benchmarks/results/bf16.json``.

    python benchmarks/bf16.py                    # the matrix: B 8/32/64, H 256/512/1024
    python benchmarks/bf16.py --families lstm --batch 64 --hidden 512
    python benchmarks/bf16.py --smoke            # tiny sizes, writes nothing
"""

from __future__ import annotations

import argparse
import sys

import torch
from results import write_results

import rnnkit
from rnnkit import precision
from rnnkit.bench_variants import round_robin  # medians of alternating runs

FAMILIES = {"lstm": (torch.nn.LSTM, rnnkit.LSTM), "gru": (torch.nn.GRU, rnnkit.GRU),
            "rnn": (torch.nn.RNN, rnnkit.RNN)}
RUNS = ("torch_bf16", "rnnkit_bf16", "rnnkit_f32", "torch_f32")


def runner(module, x, mode: str, autocast: bool):
    leaf = x.clone().requires_grad_(mode == "train")

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if mode == "infer":
                with torch.no_grad():
                    module(leaf)
                return
            output, _ = module(leaf)
        output.float().sum().backward()

    return run


def measure(family: str, batch: int, hidden: int, steps: int, repeats: int) -> dict:
    torch_class, rnnkit_class = FAMILIES[family]
    torch.manual_seed(0)
    reference = torch_class(hidden, hidden)
    ours = rnnkit_class(hidden, hidden, backend="fused")
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(steps, batch, hidden)
    row = {"family": family, "batch": batch, "hidden": hidden, "T": steps}
    for mode in ("train", "infer"):
        seconds = round_robin({
            "torch_bf16": runner(reference, x, mode, True),
            "rnnkit_bf16": runner(ours, x, mode, True),
            "rnnkit_f32": runner(ours, x, mode, False),
            "torch_f32": runner(reference, x, mode, False),
        }, repeats)
        row[mode] = {**{f"{name}_s": seconds[name] for name in RUNS},
                     "vs_torch": seconds["torch_bf16"] / seconds["rnnkit_bf16"],
                     "vs_f32": seconds["rnnkit_f32"] / seconds["rnnkit_bf16"]}
    return row


def line(row: dict) -> str:
    parts = [f"{row['family']:4} {row['batch']:5d} {row['hidden']:6d} {row['T']:4d}"]
    for mode in ("train", "infer"):
        entry = row[mode]
        parts.append(f"{mode} torch {entry['torch_bf16_s'] * 1e3:8.2f}ms rnnkit "
                     f"{entry['rnnkit_bf16_s'] * 1e3:8.2f}ms "
                     f"f32 {entry['rnnkit_f32_s'] * 1e3:8.2f}ms"
                     f" vs_torch {entry['vs_torch']:5.2f} vs_f32 {entry['vs_f32']:5.2f}")
    return " | ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="lstm,gru,rnn")
    parser.add_argument("--batch", default="8,32,64")
    parser.add_argument("--hidden", default="256,512,1024")
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one repeat, no results file: proves the script runs")
    parser.add_argument("--results-name", default="bf16",
                        help="benchmarks/results/NAME.json ('' to write none)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    families = [name.strip().lower() for name in args.families.split(",") if name.strip()]
    batches = [int(value) for value in args.batch.split(",")]
    hiddens = [int(value) for value in args.hidden.split(",")]
    steps, repeats = args.T, args.repeats
    if args.smoke:
        batches, hiddens, steps, repeats = [2], [32], 4, 1
    available, why = precision.kernel_available()
    kernel = "AVX512-BF16 kernel" if available else f"float32 kernels ({why})"
    print(f"rnnkit bf16 under autocast: {kernel}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; medians of {repeats} alternating repeats; "
          "vs_torch = torch.nn bf16 time / rnnkit bf16 time, vs_f32 = rnnkit float32 / bf16",
          flush=True)
    rows = []
    for family in families:
        for batch in batches:
            for hidden in hiddens:
                row = measure(family, batch, hidden, steps, repeats)
                rows.append(row)
                print(line(row), flush=True)
    if args.smoke or not args.results_name:
        return 0
    payload = {"kernel": kernel, "threads": torch.get_num_threads(), "repeats": repeats,
               "rows": rows}
    print(f"wrote {write_results(args.results_name, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
