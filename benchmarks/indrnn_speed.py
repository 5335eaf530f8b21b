"""IndRNN forward+backward at T=1000, two checkouts side by side, in two regimes.

``adding``: the long-dependency task's IndRNN (2 layers, hidden 64, batch 64, input 2, the
paper's initialisation, the loss on the last step only) at its first steps. ``decaying``: one
layer whose units all stay on (positive input weights and inputs, u from U(0, 1)), so each
chain's gradient shrinks by u at every step and falls below float's smallest normal number
(1.2e-38) within a few hundred steps: the regime the kernel's subnormal flush is for. Each runs
on the fused kernels in each checkout in turn (``PYTHONPATH`` pointing at it, each with its own
kernel build), ``--rounds`` times alternating; medians and their quotient old / new:

    python benchmarks/indrnn_speed.py OLD_CHECKOUT NEW_CHECKOUT --rounds 5
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

CHILD = """
import json, statistics, sys, time, torch, rnnkit
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
if sys.argv[3] == "adding":
    layer = rnnkit.IndRNN(2, 64, num_layers=2, recurrent_max_len=1000, backend="fused")
    with torch.no_grad():  # the paper's initialisation, the same in both checkouts
        bound = 2 ** (1 / 1000)
        layer.weight_hh_l0.uniform_(0, bound)
        layer.weight_hh_l1.uniform_(1 / bound, bound)
        for name, value in layer.named_parameters():
            if name.startswith("bias"):
                value.zero_()
    x = torch.rand(1000, 64, 2)
    x[..., 1] = 0.0
    x[[10, 700], :, 1] = 1.0
else:  # every unit on: the gradient decays as u ** k and turns subnormal
    layer = rnnkit.IndRNN(64, 64, backend="fused")
    with torch.no_grad():
        layer.weight_ih_l0.abs_()
        layer.weight_hh_l0.uniform_(0, 1)
    x = torch.rand(1000, 64, 64)
head = torch.nn.Linear(64, 1)
times = []
for index in range(int(sys.argv[2]) + 1):
    started = time.perf_counter()
    output, _ = layer(x)
    head(output[-1]).square().mean().backward()
    times.append(time.perf_counter() - started)
print(json.dumps({"step_ms": statistics.median(times[1:]) * 1000}))
"""


def step_ms(checkout: Path, threads: int, repeats: int, regime: str) -> float:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    output = subprocess.run([sys.executable, "-c", CHILD, str(threads),
                             str(repeats), regime], cwd=checkout, env=environment, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["step_ms"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="steps timed per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results-name", default="indrnn_speed")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    regimes = {}
    for regime in ("adding", "decaying"):
        timings = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name in ("old", "new"):
                timings[name].append(round(step_ms(getattr(args, name), args.threads,
                                                   args.repeats, regime), 2))
        old, new = statistics.median(timings["old"]), statistics.median(timings["new"])
        regimes[regime] = {"old_ms": old, "new_ms": new, "speedup": old / new,
                           "all_ms": timings}
        print(f"{regime:>9}: old {old:.1f} ms, new {new:.1f} ms, speed-up {old / new:.2f}x")
    if args.results_name:
        print(write_results(args.results_name, {
            "T": 1000, "batch": 64, "hidden": 64,
            "threads": args.threads, "rounds": args.rounds, "repeats": args.repeats,
            "old_checkout": str(args.old), "new_checkout": str(args.new), "regimes": regimes,
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
