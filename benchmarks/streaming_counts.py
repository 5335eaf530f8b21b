"""What one streaming call does, counted: Python function calls and ATen / rnnkit operators.

One call is ``out, state = layer(x_t, state)`` at T=1, batch 1, under ``torch.no_grad()``, the
state carried from the call before (what ``benchmarks/streaming.py`` times 50 times). The counts
are deterministic (no clock is read), so they measure the per-call fixed cost on a shared machine
where timings mean nothing:

- ``python calls``: Python-level function calls seen by ``sys.setprofile`` ("call" events:
  functions written in Python, torch's included), and C functions called from Python
  ("c_call": builtins, tensor methods, torch._C functions);
- ``ops``: the operators the dispatcher ran (``torch.profiler``'s CPU events: ``aten::*``,
  ``rnnkit::*``), those called from inside another operator included.

    python benchmarks/streaming_counts.py             # lstm, gru, rnn at hidden 64
    python benchmarks/streaming_counts.py --ops       # also list the operators of one call
    python benchmarks/streaming_counts.py --families gru --option layer_norm=True
                                                      # rnnkit's layer with a variant
"""

from __future__ import annotations

import argparse
import ast
import collections
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from rnnkit import bench


def python_calls(run, calls: int) -> tuple[float, float]:
    """(Python function calls, C calls from Python) per call of ``run``, averaged over
    ``calls`` calls."""
    counts = collections.Counter()

    def tracer(frame, event, arg):
        counts[event] += 1

    sys.setprofile(tracer)
    try:
        for _ in range(calls):
            run()
    finally:
        sys.setprofile(None)
    return counts["call"] / calls, counts["c_call"] / calls


def operators(run, calls: int) -> collections.Counter:
    """The operators ``calls`` calls of ``run`` dispatched, by name, divided by ``calls``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            run()
    found = collections.Counter()
    for event in prof.events():
        if "::" in event.name:
            found[event.name] += 1
    return collections.Counter({name: count / calls for name, count in found.items()})


def one_call(module, x_t):
    """A function doing one streaming call, the state carried between calls."""
    state = [None]

    def run() -> None:
        with torch.no_grad():
            _, state[0] = module(x_t, state[0])

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(bench.FAMILIES),
                        choices=list(bench.FAMILIES))
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--backend", default="fused", choices=["auto", "fused", "reference"])
    parser.add_argument("--ops", action="store_true", help="list each call's operators")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of rnnkit's layer (a Python literal), e.g. zoneout=0.1; "
                             "torch.nn's layer stays plain")
    args = parser.parse_args()
    options = {}
    for option in args.option:
        name, _, value = option.partition("=")
        options[name] = ast.literal_eval(value)
    print(f"{'family':6} {'layer':8} | {'py calls':>8} {'C calls':>8} {'ops':>5}")
    for family in args.families:
        torch_class, rnnkit_class, _ = bench.FAMILIES[family]
        torch.manual_seed(0)
        reference = torch_class(args.hidden, args.hidden).eval()
        ours = rnnkit_class(args.hidden, args.hidden, backend=args.backend, **options).eval()
        ours.load_state_dict(reference.state_dict(), strict=not options)
        x_t = torch.randn(1, 1, args.hidden)
        for name, module in (("torch.nn", reference), ("rnnkit", ours)):
            run = one_call(module, x_t)
            run()
            run()  # warm: the state carried, caches filled
            py, c = python_calls(run, args.calls)
            ops = operators(run, args.calls)
            print(f"{family:6} {name:8} | {py:8.1f} {c:8.1f} {sum(ops.values()):5.1f}")
            if args.ops:
                for op, count in sorted(ops.items()):
                    print(f"{'':17}   {count:5.1f}  {op}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
