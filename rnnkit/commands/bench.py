"""``rnnkit bench`` and ``rnnkit build-kernels``: the speed of the layers on this machine.

``rnnkit bench`` prints, per family and size, torch.nn's and rnnkit's median times side by
side, inference (forward under torch.no_grad(): rnnkit's inference operators) and
forward+backward, their ratio, the GFLOP/s reached and its share of
the sgemm peak measured in the same run. ``rnnkit build-kernels`` builds the fused C++ kernels
ahead of time (they are otherwise built on first use), or says that it uses the ones an
installed wheel brought prebuilt.
"""

from __future__ import annotations

import json
import sys

import torch

from rnnkit import bench
from rnnkit.commands.helptext import BACKEND_HELP, examples
from rnnkit.errors import UserError


def _write_json(path: str, payload: dict) -> None:
    """``--json PATH``: the rows as JSON to PATH, or to stdout (alone) for '-'."""
    text = json.dumps(payload, indent=2)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    with open(path, "w") as handle:
        handle.write(text + "\n")
    print(f"wrote {path}")


def _positive(values: list[int], name: str) -> list[int]:
    for value in values:
        if value < 1:
            raise UserError(f"--{name} takes positive integers, got {value}")
    return values


def run_variant_bench(args) -> int:
    """``rnnkit bench --variants``: the LSTM variants' cost against the plain LSTM."""
    from rnnkit import bench_variants

    try:
        sizes = [bench_variants.parse_size(text) for text in args.sizes] if args.sizes else list(
            bench_variants.SIZES)
    except ValueError as error:
        raise UserError(f"--sizes: {error}") from error
    # --T keeps the matrix's default list unless given; the variants' default is T = 100
    steps = [bench_variants.STEPS] if args.T == list(bench.STEPS) else _positive(args.T, "T")
    results = []
    to_stdout = args.json == "-"
    show = (lambda *a, **k: None) if to_stdout else print
    show(bench_variants.format_title(steps[0] if len(steps) == 1 else steps, args.backend,
                                     args.repeats))
    show(bench_variants.HEADER)
    show("-" * len(bench_variants.HEADER))
    for length in steps:
        for batch, hidden in sizes:
            result = bench_variants.measure(batch, hidden, length, args.repeats, args.backend)
            results.append(result)
            for line in bench_variants.format_rows(result):
                show(line, flush=True)
    if args.json:
        _write_json(args.json, {"variants": results})
    return 0


def run_streaming_bench(args, hiddens: list[int]) -> int:
    """``rnnkit bench --streaming``: STREAM_CALLS calls at T=1, batch 1, the state carried."""
    to_stdout = args.json == "-"
    show = (lambda *a, **k: None) if to_stdout else print
    info = bench.environment(args.backend, 0.0)
    show(f"rnnkit {info['rnnkit']} (backend {info['backend']}) vs torch.nn {info['torch']}, "
         f"{info['threads']} threads: {bench.STREAM_CALLS} calls of T=1, batch 1 under no_grad, "
         "each carrying the previous call's state; ratio = torch.nn time / rnnkit time, medians "
         "of alternating repeats")
    show(bench.STREAM_HEADER)
    show("-" * len(bench.STREAM_HEADER))
    rows = []
    for family in args.families:
        for hidden in hiddens:
            row = bench.measure_streaming(family, hidden, bench.STREAM_CALLS, args.repeats,
                                          args.backend)
            rows.append(row)
            show(bench.format_streaming_row(row), flush=True)
    if args.json:
        info.pop("sgemm_peak_gflops")
        _write_json(args.json, {"environment": info, "streaming": rows})
    return 0


def run_bench(args) -> int:
    batches = _positive(args.batch, "batch")
    hiddens = _positive(args.hidden, "hidden")
    steps = _positive(args.T, "T")
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.backend == "fused":
        from rnnkit import kernels

        if kernels.load_functions() is None:
            raise UserError(f"--backend fused: the fused kernels are not available "
                            f"({kernels.failure()})")
    if getattr(args, "variants", False):  # benchmarks/speed.py's parser has no --variants
        return run_variant_bench(args)
    if getattr(args, "streaming", False):
        return run_streaming_bench(args, hiddens)
    peak = bench.gemm_peak_gflops()
    info = bench.environment(args.backend, peak)
    to_stdout = args.json == "-"
    show = (lambda *a, **k: None) if to_stdout else print
    show(bench.format_environment(info))
    show(bench.HEADER)
    show("-" * len(bench.HEADER))
    rows = []
    for family, batch, hidden, length in bench.sizes(args.families, batches, hiddens, steps):
        row = bench.measure(family, batch, hidden, length, args.repeats, args.backend, peak)
        rows.append(row)
        show(bench.format_row(row), flush=True)
    show(bench.PEAK_NOTE)
    if args.json:
        _write_json(args.json, {"environment": info, "rows": rows})
    return 0


def run_build(args) -> int:
    from rnnkit import kernels

    try:
        library = kernels.build()
    except kernels.KernelBuildError as error:
        raise UserError(str(error)) from error
    if library.kind == "packaged":
        print(f"rnnkit: using the fused kernels prebuilt in the installed wheel: {library.path}")
    else:
        print(f"rnnkit: fused kernels built here (just in time), ready in {library.path.parent}")
    return 0


def add_matrix_arguments(parser) -> None:
    """The size-matrix options, shared with benchmarks/speed.py."""
    parser.add_argument("--families", nargs="+", default=list(bench.FAMILIES),
                        choices=list(bench.FAMILIES), help="default: all three")
    parser.add_argument("--batch", nargs="+", type=int, default=list(bench.BATCHES),
                        help=f"batch sizes (default {' '.join(map(str, bench.BATCHES))})")
    parser.add_argument("--hidden", nargs="+", type=int, default=list(bench.HIDDENS),
                        help=f"hidden = input sizes (default {' '.join(map(str, bench.HIDDENS))})")
    parser.add_argument("--T", nargs="+", type=int, default=list(bench.STEPS),
                        help=f"sequence lengths (default {' '.join(map(str, bench.STEPS))})")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (median)")
    parser.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"],
                        help=BACKEND_HELP)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the rows as JSON to PATH ('-': only JSON, to stdout; "
                             "default: the table only)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="rnnkit vs torch.nn speed on this machine, as ratios",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=examples("rnnkit bench --families lstm --batch 8 --hidden 256 --T 50",
                        "rnnkit bench --backend fused --json speed.json",
                        "rnnkit bench --variants --sizes 8x128",
                        "rnnkit bench --streaming --hidden 64 256 1024"))
    add_matrix_arguments(parser)
    parser.add_argument("--variants", action="store_true",
                        help="instead: the LSTM variants' forward+backward cost against the plain "
                             "LSTM and the step-loop layer-norm LSTM (T 100 unless --T is given)")
    parser.add_argument("--streaming", action="store_true",
                        help=f"instead: {bench.STREAM_CALLS} calls at T=1, batch 1, each carrying "
                             "the previous state (no grad), per family and --hidden; --batch "
                             "and --T do not apply")
    parser.add_argument("--sizes", nargs="+", metavar="BATCHxHIDDEN",
                        help="with --variants: the sizes (default 8x128 32x256)")
    parser.set_defaults(handler=run_bench)
    build = subparsers.add_parser(
        "build-kernels", help="build the fused C++ kernels now (otherwise on first use); "
             "says whether the wheel's prebuilt ones or a build here is used",
        description="Build the fused C++ kernels ahead of time (otherwise they are built on "
                    "first use, about a minute), or say that the installed wheel's prebuilt ones "
                    "are used.",
        epilog=examples("rnnkit build-kernels"))
    build.set_defaults(handler=run_build)
