"""What one core of this CPU can multiply-add per second, in float32, bf16 and int8.

Two witnesses, side by side in one run:

- the instructions themselves (``benchmarks/csrc/fma_peak.cpp``, built here with g++): float32
  ``vfmadd231ps`` (16 multiply-adds), bf16 ``vdpbf16ps`` (32) and int8 ``vpdpbusd`` (64), each on
  24 independent zmm accumulators so the loop is bound by throughput, not latency;
- torch's own GEMMs (oneDNN / MKL) at the recurrent step's shape (batch x hidden times
  hidden x gates) and at a square 1024, float32 against bfloat16 tensors.

The bf16 targets of issue 15 (``>= 1.5x`` rnnkit's own float32) assume ``vdpbf16ps`` does about
twice the multiply-adds of ``vfmadd231ps`` per cycle; this script measures whether this machine
does. Medians of ``--repeats`` alternating repeats, one thread.

    python benchmarks/fma_peak.py                  # prints the table, writes results/fma_peak.json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from results import write_results

SOURCE = Path(__file__).resolve().parent / "csrc" / "fma_peak.cpp"
INSTRUCTIONS = ("fma_f32", "dot_bf16", "dot_int8")


def build(folder: Path) -> Path:
    compiler = shutil.which("g++")
    if compiler is None:
        raise SystemExit("fma_peak: g++ is needed to build benchmarks/csrc/fma_peak.cpp")
    binary = folder / "fma_peak"
    subprocess.run([compiler, "-O2", "-std=c++17", "-mavx512f", str(SOURCE), "-o", str(binary)],
                   check=True)
    return binary


def instruction_rates(binary: Path, iterations: int) -> dict[str, float]:
    """Multiply-adds per second of each instruction, one run of the binary."""
    lines = subprocess.run([str(binary), str(iterations), "1"], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    rates = dict(line.split() for line in lines if line.strip())
    return {name: float(rates[name]) for name in INSTRUCTIONS}


def gemm_rate(m: int, k: int, n: int, dtype: torch.dtype, calls: int) -> float:
    """Multiply-adds per second of ``torch.mm`` on (m, k) x (k, n) tensors of ``dtype``."""
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    start = time.perf_counter()
    for _ in range(calls):
        torch.mm(a, b, out=out)
    return m * k * n * calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20_000_000,
                        help="loop trips per instruction per repeat")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shapes = {"step b64 h512 (64x512 @ 512x2048)": (64, 512, 2048),
              "step b8 h512 (8x512 @ 512x2048)": (8, 512, 2048),
              "square 1024": (1024, 1024, 1024)}
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        binary = build(Path(folder))
        for _ in range(args.repeats):
            for name, rate in instruction_rates(binary, args.iterations).items():
                samples.setdefault(name, []).append(rate)
            for label, (m, k, n) in shapes.items():
                calls = max(3, int(2e9 // (m * k * n)))
                for dtype in (torch.float32, torch.bfloat16):
                    key = f"torch.mm {label} {str(dtype).removeprefix('torch.')}"
                    samples.setdefault(key, []).append(gemm_rate(m, k, n, dtype, calls))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = [{"what": name, "gmac_per_s": medians[name] / 1e9} for name in medians]
    ratios = {"dot_bf16 / fma_f32": medians["dot_bf16"] / medians["fma_f32"],
              "dot_int8 / fma_f32": medians["dot_int8"] / medians["fma_f32"]}
    for label in shapes:
        ratios[f"torch.mm {label}: bfloat16 / float32"] = (
            medians[f"torch.mm {label} bfloat16"] / medians[f"torch.mm {label} float32"])
    for row in rows:
        print(f"{row['what']:<52} {row['gmac_per_s']:8.2f} G multiply-adds/s")
    for name, ratio in ratios.items():
        print(f"{name:<52} {ratio:8.2f}x")
    write_results("fma_peak", {"threads": 1, "repeats": args.repeats,
                               "iterations": args.iterations, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
