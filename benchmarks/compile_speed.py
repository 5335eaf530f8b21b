"""A language-model training step eager and under torch.compile: time per step, compile time.

The README's character model (2-layer LSTM 256, embedding 64, batch 64, sequence 100, AdamW;
``--layer-norm`` optional), its state carried across steps as in training. Eager and compiled
steps alternate after warm-up; each figure is a median. The first compiled calls (the compile
itself) are timed apart. ``--backends`` picks torch.compile backends (inductor, aot_eager).

    python benchmarks/compile_speed.py                  # -> benchmarks/results/compile_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from results import write_results
from torch import nn

from rnnkit.models.language_model import LanguageModel, ModelConfig


def make_step(model: LanguageModel, optimizer, forward):
    loss_function = nn.CrossEntropyLoss()

    def step(tokens, targets, state):
        logits, state = forward(tokens, state)
        loss = loss_function(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), tuple(s.detach() for s in state)

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="inductor,aot_eager")
    parser.add_argument("--layer-norm", action="store_true")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=15, help="timed steps of each")
    parser.add_argument("--results-name", default="compile_speed",
                        help="benchmarks/results/NAME.json ('' to write none)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=65, hidden=args.hidden, layer_norm=args.layer_norm)
    tokens = torch.randint(65, (args.seq_len, args.batch))
    targets = torch.randint(65, (args.seq_len, args.batch))
    runs, compile_seconds = {}, {}
    for name in ["eager", *[b.strip() for b in args.backends.split(",") if b.strip()]]:
        torch.manual_seed(0)
        model = LanguageModel(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        forward = model if name == "eager" else torch.compile(model, backend=name, fullgraph=True)
        step = make_step(model, optimizer, forward)
        state = None
        started = time.perf_counter()
        for _ in range(2):  # warm-up; for a compiled model the compile itself
            _, state = step(tokens, targets, state)
        compile_seconds[name] = time.perf_counter() - started
        runs[name] = [step, state]
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.steps):
        for name, run in runs.items():  # alternating: every run sees the same machine
            started = time.perf_counter()
            _, run[1] = run[0](tokens, targets, run[1])
            times[name].append(time.perf_counter() - started)
    eager = statistics.median(times["eager"])
    rows = []
    print(f"LSTM LM step (hidden {args.hidden}, batch {args.batch}, T {args.seq_len}"
          f"{', layer norm' if args.layer_norm else ''}), {torch.get_num_threads()} threads")
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"run": name, "median_step_ms": median * 1e3,
                     "eager_over_this": eager / median,
                     "first_two_steps_s": compile_seconds[name]})
        print(f"  {name:10s} {median * 1e3:8.1f} ms/step  eager/this {eager / median:5.2f}  "
              f"first two steps {compile_seconds[name]:6.1f} s")
    if args.results_name:
        print(f"wrote {write_results(args.results_name, {'rows': rows, 'args': vars(args)})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
