"""Speed of rnnkit's layers against torch.nn's, side by side in one process, as ratios.

For each family and size: the median time of torch.nn and of rnnkit, inference (a forward under
``torch.no_grad()``, which takes rnnkit's inference operators, :mod:`rnnkit.kernels.infer`)
and forward+backward, their ratio (torch.nn / rnnkit: above 1, rnnkit is faster), the GFLOP/s
of the GEMMs each reached and its share of the fp32 GEMM peak measured in the same run. Runs of
the two alternate, so a burst of load on a shared machine hits both. Used by ``rnnkit bench``
and ``benchmarks/speed.py``; nothing here prints.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

import rnnkit
from rnnkit import families
from rnnkit.layers import layer_class

# family: (torch.nn class, rnnkit class, gates per hidden unit), for every family with a
# torch.nn twin to measure against (rnnkit.families), the widest first
FAMILIES = {
    family.name.lower(): (family.torch_twin, layer_class(family), family.blocks)
    for family in sorted(families.families(), key=lambda family: -family.blocks)
    if family.torch_twin is not None
}
BATCHES = (1, 8, 32, 64)
HIDDENS = (64, 128, 256, 512, 1024)
STEPS = (50, 200)
MODES = ("forward", "forward_backward")


def gemm_flops(family: str, batch: int, hidden: int, steps: int, input_size: int, mode: str) -> int:
    """Floating-point operations of the layer's GEMMs (the pointwise work is left out).

    Forward: ``2 T N G (I + H)`` with G = gates * H. The backward runs two GEMMs of the same
    size per forward GEMM (the error to the inputs/states, and the weight gradients).
    """
    gates = FAMILIES[family][2] * hidden
    forward = 2 * steps * batch * gates * (input_size + hidden)
    return forward if mode == "forward" else 3 * forward


def gemm_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one large square fp32 ``torch.mm``: what the BLAS reaches on this machine."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(left, right, out=out)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(left, right, out=out)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def side_by_side(first: Callable[[], None], second: Callable[[], None], repeats: int):
    """Median seconds of two functions, their runs alternating, after one warm-up each."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, collected in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            function()
            collected.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def _runner(module: nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    if mode == "forward":

        def run() -> None:
            with torch.no_grad():
                module(x)

        return run
    leaf = x.clone().requires_grad_(True)

    def run_backward() -> None:
        output, _ = module(leaf)
        output.sum().backward()

    return run_backward


def measure(
    family: str,
    batch: int,
    hidden: int,
    steps: int,
    repeats: int = 5,
    backend: str = "auto",
    peak_gflops: float | None = None,
    seed: int = 0,
) -> dict:
    """One row of the table: both modes for one family and size (input size = hidden size)."""
    torch_class, rnnkit_class, _ = FAMILIES[family]
    torch.manual_seed(seed)
    reference = torch_class(hidden, hidden)
    ours = rnnkit_class(hidden, hidden, backend=backend)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(steps, batch, hidden)
    row = {"family": family, "batch": batch, "hidden": hidden, "T": steps}
    for mode in MODES:
        torch_seconds, ours_seconds = side_by_side(
            _runner(reference, x, mode), _runner(ours, x, mode), repeats
        )
        flops = gemm_flops(family, batch, hidden, steps, hidden, mode)
        entry = {
            "torch_s": torch_seconds,
            "rnnkit_s": ours_seconds,
            "ratio": torch_seconds / ours_seconds,
            "torch_gflops": flops / torch_seconds / 1e9,
            "rnnkit_gflops": flops / ours_seconds / 1e9,
        }
        if peak_gflops:
            entry["torch_peak_share"] = entry["torch_gflops"] / peak_gflops
            entry["rnnkit_peak_share"] = entry["rnnkit_gflops"] / peak_gflops
        row[mode] = entry
    return row


def sizes(
    families: Iterable[str], batches: Iterable[int], hiddens: Iterable[int], steps: Iterable[int]
) -> list[tuple[str, int, int, int]]:
    """The matrix in table order: family, then T, then batch, then hidden."""
    return [
        (family, batch, hidden, length)
        for family in families
        for length in steps
        for batch in batches
        for hidden in hiddens
    ]


def environment(backend: str, peak_gflops: float) -> dict:
    from rnnkit import backends

    return {
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "threads": torch.get_num_threads(),
        "backend": backends.select(backend).name,
        "sgemm_peak_gflops": peak_gflops,
        "bf16": _bf16_kernel(),
    }


def _bf16_kernel() -> str:
    """What runs under CPU autocast to bf16 here (rnnkit.precision)."""
    from rnnkit import precision

    available, why = precision.kernel_available()
    return "AVX512-BF16 kernel" if available else f"float32 kernels ({why})"


HEADER = (
    f"{'family':6} {'batch':>5} {'hidden':>6} {'T':>4} | {'infer torch':>11} {'rnnkit':>9} "
    f"{'ratio':>6} {'GF/s':>6} {'peak':>5} | {'f+b torch':>11} {'rnnkit':>9} {'ratio':>6} "
    f"{'GF/s':>6} {'peak':>5}"
)


def format_row(row: dict) -> str:
    """One line of the table; GF/s and the peak share are rnnkit's."""
    parts = [f"{row['family']:6} {row['batch']:5d} {row['hidden']:6d} {row['T']:4d}"]
    for mode in MODES:
        entry = row[mode]
        share = entry.get("rnnkit_peak_share")
        parts.append(
            f"{entry['torch_s'] * 1e3:9.2f}ms {entry['rnnkit_s'] * 1e3:7.2f}ms "
            f"{entry['ratio']:6.2f} {entry['rnnkit_gflops']:6.1f} "
            + (f"{share:5.0%}" if share is not None else f"{'-':>5}")
        )
    return " | ".join(parts)


PEAK_NOTE = (
    "infer: inference, a forward under torch.no_grad() (rnnkit's inference operators); f+b: "
    "forward+backward. "
    "peak: rnnkit's GF/s as a share of those of one 2048x2048 fp32 torch.mm timed at the start "
    "of this run, a reference and not a hardware limit: a layer whose smaller GEMMs stay in "
    "cache, or that ran while the machine was less loaded or clocked higher, can exceed 100%"
)


def format_environment(info: dict) -> str:
    return (
        f"rnnkit {info['rnnkit']} (backend {info['backend']}) vs torch.nn {info['torch']}, "
        f"{info['threads']} threads, sgemm peak {info['sgemm_peak_gflops']:.1f} GFLOP/s; "
        "ratio = torch.nn time / rnnkit time, medians of alternating repeats; "
        f"under bf16 autocast: {info.get('bf16', 'unknown')}"
    )


# ---- streaming: one step at a time, the state carried ------------------------------------------
STREAM_CALLS = 50


def _stream_runner(module: nn.Module, steps: torch.Tensor) -> Callable[[], None]:
    """``len(steps)`` calls of ``module`` on a sequence of one step (T=1) of a batch of one,
    each taking the state the previous call returned, under no_grad: what a streaming model
    (a live signal, a token at a time) does, and where a call's fixed cost dominates."""

    def run() -> None:
        with torch.no_grad():
            state = None
            for x_t in steps:
                _, state = module(x_t, state)

    return run


def measure_streaming(family: str, hidden: int, calls: int = STREAM_CALLS, repeats: int = 5,
                      backend: str = "auto", seed: int = 0) -> dict:
    """One row of the streaming table: ``calls`` calls at T=1, batch 1 (input size = hidden
    size), torch.nn and rnnkit alternating, medians of ``repeats`` runs; ratio = torch.nn time /
    rnnkit time."""
    torch_class, rnnkit_class, _ = FAMILIES[family]
    torch.manual_seed(seed)
    reference = torch_class(hidden, hidden).eval()
    ours = rnnkit_class(hidden, hidden, backend=backend).eval()
    ours.load_state_dict(reference.state_dict())
    steps = torch.randn(calls, 1, 1, hidden)  # each (T=1, N=1, H_in)
    torch_seconds, ours_seconds = side_by_side(_stream_runner(reference, steps),
                                               _stream_runner(ours, steps), repeats)
    return {"family": family, "hidden": hidden, "calls": calls, "torch_s": torch_seconds,
            "rnnkit_s": ours_seconds, "ratio": torch_seconds / ours_seconds,
            "torch_us_per_call": torch_seconds / calls * 1e6,
            "rnnkit_us_per_call": ours_seconds / calls * 1e6}


STREAM_HEADER = (f"{'family':6} {'hidden':>6} {'calls':>5} | {'torch us/call':>13} "
                 f"{'rnnkit us/call':>14} {'ratio':>6}")


def format_streaming_row(row: dict) -> str:
    return (f"{row['family']:6} {row['hidden']:6d} {row['calls']:5d} | "
            f"{row['torch_us_per_call']:13.1f} {row['rnnkit_us_per_call']:14.1f} "
            f"{row['ratio']:6.2f}")
