"""What the LSTM variants cost, forward+backward, side by side in one process.

For each size: the plain rnnkit LSTM, each variant of it (in training mode, so masks are
drawn as in training), and the layer-norm LSTM a user would write in plain PyTorch (the
equations over torch ops in a Python step loop, autograd for the backward). Runs go round
robin over all the models, so a burst of load on a shared machine hits them all; each time is
a median. Ratios: variant / plain rnnkit LSTM (the cost of the option) and step loop / rnnkit
layer norm (rnnkit's speed-up over writing it yourself). Used by ``rnnkit bench --variants``
and ``benchmarks/variants.py``; nothing here prints.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

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
SIZES = ((8, 128), (32, 256))  # (batch, hidden)
STEPS = 100
PLAIN = "plain"
STEP_LOOP = "step_loop_layer_norm"


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


def parse_size(text: str) -> tuple[int, int]:
    """``"32x256"`` -> ``(32, 256)``; ValueError naming the text when it is not BATCHxHIDDEN."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"expected BATCHxHIDDEN, positive integers like 32x256, got {text!r}")
    return int(parts[0]), int(parts[1])


def _forward_backward(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        output = module(x)[0]
        output.sum().backward()
        module.zero_grad(set_to_none=True)
        x.grad = None

    return run


def round_robin(functions: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each function; one warm-up each, then the runs take turns."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(batch: int, hidden: int, steps: int = STEPS, repeats: int = 5,
            backend: str = "auto", seed: int = 0) -> dict:
    """One size: median forward+backward seconds of the plain LSTM, each variant and the step
    loop, with the two ratios (input size = hidden size)."""
    torch.manual_seed(seed)
    x = torch.randn(steps, batch, hidden, requires_grad=True)
    models: dict[str, nn.Module] = {PLAIN: rnnkit.LSTM(hidden, hidden, backend=backend)}
    for name, options in VARIANTS.items():
        models[name] = rnnkit.LSTM(hidden, hidden, backend=backend, **options)
    models[STEP_LOOP] = StepLoopLayerNormLSTM(hidden, hidden)
    seconds = round_robin({name: _forward_backward(m, x) for name, m in models.items()}, repeats)
    plain = seconds[PLAIN]
    return {
        "batch": batch,
        "hidden": hidden,
        "T": steps,
        "seconds": seconds,
        "cost": {name: seconds[name] / plain for name in VARIANTS},
        "layer_norm_speedup_over_step_loop": seconds[STEP_LOOP] / seconds["layer_norm"],
    }


HEADER = f"{'batch':>5} {'hidden':>6} {'T':>4}  {'model':28} {'f+b ms':>9}  ratio"


def format_rows(result: dict) -> list[str]:
    """The table lines of one size: plain, each variant with its cost, the step loop."""
    size = f"{result['batch']:5d} {result['hidden']:6d} {result['T']:4d}"
    seconds = result["seconds"]
    lines = [f"{size}  {'plain LSTM (rnnkit)':28} {seconds[PLAIN] * 1e3:9.2f}  x1.00 (the base)"]
    for name in VARIANTS:
        lines.append(
            f"{size}  {name:28} {seconds[name] * 1e3:9.2f}  x{result['cost'][name]:.2f} of plain"
        )
    lines.append(
        f"{size}  {'step-loop LN-LSTM (PyTorch)':28} {seconds[STEP_LOOP] * 1e3:9.2f}  "
        f"layer_norm is x{result['layer_norm_speedup_over_step_loop']:.2f} faster"
    )
    return lines


def format_title(steps: int, backend: str, repeats: int) -> str:
    from rnnkit import backends

    return (
        f"LSTM variants, forward+backward, T={steps}, backend {backends.select(backend).name}, "
        f"{torch.get_num_threads()} threads, medians of {repeats} round-robin repeats "
        "(input size = hidden size; masks drawn as in training)"
    )
