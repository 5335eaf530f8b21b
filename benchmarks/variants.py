"""What the variants cost, forward+backward, side by side in one process.

For each size: the plain rnnkit LSTM, each variant of it, and the layer-norm LSTM a user
would write in plain PyTorch (the equations over torch ops in a step loop, autograd for the
backward). Ratios: variant time / plain rnnkit LSTM time (the cost of the option) and
step-loop time / rnnkit layer-norm time (rnnkit's speed-up over writing it yourself).

    python benchmarks/variants.py --sizes 8x128 32x256 --T 100
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnnkit

VARIANTS = {
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": (0.1, 0.05)},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "weight_drop": {"weight_drop": 0.5},
    "peephole": {"peephole": True},
    "coupled_gates": {"coupled_gates": True},
}


class StepLoopLayerNormLSTM(nn.Module):
    """The layer-norm LSTM as a user writes it: torch ops in a Python loop, autograd backward."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_projection = nn.Linear(input_size, 4 * hidden_size)
        self.hidden_projection = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        self.norm_input = nn.LayerNorm(4 * hidden_size)
        self.norm_hidden = nn.LayerNorm(4 * hidden_size)
        self.norm_cell = nn.LayerNorm(hidden_size)
        self.hidden_size = hidden_size

    def forward(self, x):
        h = x.new_zeros(x.shape[1], self.hidden_size)
        c = x.new_zeros(x.shape[1], self.hidden_size)
        from_input = self.norm_input(self.input_projection(x))  # (T, N, 4H), all steps at once
        outputs = []
        for x_t in from_input:
            gates = x_t + self.norm_hidden(self.hidden_projection(h))
            input, forget, cell, output = gates.chunk(4, 1)
            c = torch.sigmoid(forget) * c + torch.sigmoid(input) * torch.tanh(cell)
            h = torch.sigmoid(output) * torch.tanh(self.norm_cell(c))
            outputs.append(h)
        return torch.stack(outputs), (h, c)


def median_seconds(module, x, repeats):
    def once():
        output = module(x)[0]
        output.sum().backward()

    once()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(batch: int, hidden: int, steps: int, repeats: int, backend: str) -> dict:
    x = torch.randn(steps, batch, hidden, requires_grad=True)
    times = {"plain": median_seconds(rnnkit.LSTM(hidden, hidden, backend=backend), x, repeats)}
    for name, options in VARIANTS.items():
        layer = rnnkit.LSTM(hidden, hidden, backend=backend, **options)
        times[name] = median_seconds(layer, x, repeats)
    step_loop = StepLoopLayerNormLSTM(hidden, hidden)
    times["step_loop_layer_norm"] = median_seconds(step_loop, x, repeats)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8x128", "32x256"], help="BATCHxHIDDEN")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"])
    args = parser.parse_args()
    print(f"LSTM variants, forward+backward, T={args.T}, backend={args.backend}, "
          f"threads={torch.get_num_threads()}")
    for size in args.sizes:
        batch, hidden = (int(v) for v in size.split("x"))
        times = measure(batch, hidden, args.T, args.repeats, args.backend)
        plain = times["plain"]
        print(f"\nbatch {batch}, hidden {hidden}: plain rnnkit LSTM {plain * 1e3:.1f} ms")
        for name in VARIANTS:
            print(f"  {name:20s} {times[name] * 1e3:8.1f} ms   cost x{times[name] / plain:.2f}")
        loop = times["step_loop_layer_norm"]
        print(f"  {'step-loop LN-LSTM':20s} {loop * 1e3:8.1f} ms   "
              f"speed-up of rnnkit layer_norm x{loop / times['layer_norm']:.2f}")


if __name__ == "__main__":
    main()
