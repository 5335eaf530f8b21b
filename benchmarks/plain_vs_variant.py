"""The plain fused kernels against the variant kernels with every flag off, at the bench sizes.

Every family has two fused kernels: the plain cell (``rnnkit::lstm_forward`` ...) and the variant
cell (``rnnkit::lstm_variant_forward`` ...), which with no layer norm, peepholes, coupled
gates, zoneout or recurrent dropout computes the same cell. If the two ran within 3% of each
other, one could go. This script times both, forward+backward and forward under no_grad, on
the same weights and input, their runs alternating (medians), and reports variant / plain
time per cell, so the decision rests on numbers.

    python benchmarks/plain_vs_variant.py --batch 1 8 32 64 --hidden 64 256 512 1024 --T 50
"""

from __future__ import annotations

import argparse
import statistics

import torch
from results import write_results

from rnnkit import families
from rnnkit.bench import side_by_side
from rnnkit.kernels import loader

FAMILIES = ("LSTM", "GRU", "RNN")


def arguments(family, x, h0, weights):
    """(plain call, variant call) of the family's fused functions, flags off."""
    w_ih, w_hh, b_ih, b_hh = weights
    plain = families.load(family.fused["plain"])
    variant = families.load(family.fused["variant"])
    if family.name == "LSTM":
        c0 = torch.zeros_like(h0)
        return (lambda: plain(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, None, None),
                lambda: variant(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, None, None, None,
                                None, None, None, None, None, None, False, None, None))
    if family.name == "GRU":
        return (lambda: plain(x, h0, w_ih, w_hh, b_ih, b_hh, None, None),
                lambda: variant(x, h0, w_ih, w_hh, b_ih, b_hh, None, None, None, None, None,
                                None, None, None))
    return (lambda: plain(x, h0, w_ih, w_hh, b_ih, b_hh, "tanh", None, None),
            lambda: variant(x, h0, w_ih, w_hh, b_ih, b_hh, "tanh", None, None, None, None))


def timed(call, leaf, mode):
    if mode == "forward":
        def run():
            with torch.no_grad():
                call()
    else:
        def run():
            call()[0].sum().backward()
            leaf.grad = None
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument("--T", type=int, nargs="+", default=[50])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--results-name", default=None)
    args = parser.parse_args()
    assert loader.load_functions() is not None, loader.failure()
    rows = []
    print(f"{'family':6} {'T':>4} {'batch':>5} {'hidden':>6} {'mode':17} {'plain ms':>9} "
          f"{'variant ms':>10} {'variant/plain':>13}")
    for name in FAMILIES:
        family = families.get(name)
        for steps in args.T:
            for batch in args.batch:
                for hidden in args.hidden:
                    torch.manual_seed(0)
                    rows_per_unit = family.gate_rows(hidden)
                    weights = [torch.randn(rows_per_unit, hidden) * 0.1,
                               torch.randn(rows_per_unit, hidden) * 0.1,
                               torch.randn(rows_per_unit) * 0.1, torch.randn(rows_per_unit) * 0.1]
                    for weight in weights:
                        weight.requires_grad_(True)
                    x = torch.randn(steps, batch, hidden, requires_grad=True)
                    h0 = torch.zeros(batch, hidden)
                    plain, variant = arguments(family, x, h0, weights)
                    for mode in ("forward", "forward_backward"):
                        plain_s, variant_s = side_by_side(timed(plain, x, mode),
                                                          timed(variant, x, mode), args.repeats)
                        ratio = variant_s / plain_s
                        rows.append({"family": name, "T": steps, "batch": batch,
                                     "hidden": hidden, "mode": mode, "plain_s": plain_s,
                                     "variant_s": variant_s, "variant_over_plain": ratio})
                        print(f"{name:6} {steps:4d} {batch:5d} {hidden:6d} {mode:17} "
                              f"{plain_s * 1e3:9.3f} {variant_s * 1e3:10.3f} {ratio:13.3f}",
                              flush=True)
    for name in FAMILIES:
        for mode in ("forward", "forward_backward"):
            ratios = [r["variant_over_plain"] for r in rows
                      if r["family"] == name and r["mode"] == mode]
            print(f"{name} {mode}: variant/plain geomean "
                  f"{statistics.geometric_mean(ratios):.3f}, range {min(ratios):.3f}-"
                  f"{max(ratios):.3f}")
    if args.results_name:
        write_results(args.results_name, {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
