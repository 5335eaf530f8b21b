"""Tiny Shakespeare under bf16 autocast against float32: the README's training command, the
same number of steps each, and the two validation losses.

Each run is ``rnnkit train`` with the README's settings (``benchmarks/shakespeare.py``'s
SETTINGS, ``--layer-norm``) and ``--max-steps STEPS`` instead of a time budget, in a fresh
process: ``float32`` as it is, ``bf16`` with the whole command inside
``torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)`` and ``RNNKIT_BF16=1``
(the rnnkit layers on the bf16 kernel, the embedding and the decoder on torch's autocast, the
loss in float32).

``cache_enabled=False`` matters: torch's autocast keeps the bf16 cast of each float32 weight it
casts (here the decoder's, an ``nn.Linear``) until the outermost autocast region exits, so with
the whole command in one region every step would run the decoder with its step-1 weights while
the optimizer updates the float32 ones. The first version of this script did that: its bf16 run
trained worse and its checkpoint, scored in float32 with the weights actually trained, gave 15.8
nats/char, which was taken for a kernel bug (issue 15). Without the cache each call casts afresh,
as autocast entered around each step's forward does.

The best checkpoint of each is then scored in float32 by ``rnnkit eval`` on the validation text
(the last 10% of the corpus). Writes ``benchmarks/results/shakespeare_bf16.json`` with both
losses, their difference and each run's training time.

    python benchmarks/shakespeare_bf16.py --steps 1000
    python benchmarks/shakespeare_bf16.py --smoke       # a tiny corpus and model, writes nothing
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from commands import run
from results import write_results
from shakespeare import DATA, SETTINGS

CHILD = """
import os, sys
bf16 = sys.argv[1] == "bf16"
if bf16:
    os.environ["RNNKIT_BF16"] = "1"  # the kernel, which is off unless asked for
import torch
from rnnkit.cli import main
with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
    status = main(sys.argv[2:])
sys.exit(status)
"""
SMOKE_SETTINGS = ("--layers 2 --hidden 16 --embedding 8 --batch-size 4 --seq-len 16 "
                  "--layer-norm --lr 5e-3")
SMOKE_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak.\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each run")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="validation interval (default: steps / 10)")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default: tmp)")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny corpus and model for a few steps; writes no results file")
    parser.add_argument("--results-name", default="shakespeare_bf16",
                        help="benchmarks/results/NAME.json ('' to write none)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-shakespeare-bf16-"))
    work.mkdir(parents=True, exist_ok=True)
    settings, data, steps = SETTINGS + " --layer-norm", args.data, args.steps
    if args.smoke:
        settings, steps = SMOKE_SETTINGS, 4
        data = work / "corpus.txt"
        data.write_text(SMOKE_TEXT * 40, encoding="utf-8")
    eval_every = args.eval_every or max(1, steps // 10)
    text = data.read_text(encoding="utf-8")
    validation = work / "validation.txt"  # the trainer's split: the last 10% of the characters
    validation.write_text(text[int(round(len(text) * 0.9)):], encoding="utf-8")
    rows = []
    for name in ("float32", "bf16"):
        folder = work / name
        arguments = ["train", str(data), "--out", str(folder), *settings.split(),
                     "--max-steps", str(steps), "--eval-every", str(eval_every),
                     "--cache-dir", str(work / "cache"), "--no-progress"]
        started = time.perf_counter()
        run([sys.executable, "-c", CHILD, name, *arguments],
            f"({name}) rnnkit " + " ".join(arguments))
        seconds = time.perf_counter() - started
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        evaluations = [m for m in metrics if "val_loss" in m]
        scored = json.loads(run([sys.executable, "-m", "rnnkit.cli", "eval", str(folder),
                                 str(validation), "--json"],
                                f"rnnkit eval {folder} {validation} --json").splitlines()[-1])
        row = {"precision": name, "command": "rnnkit " + " ".join(arguments),
               "steps": max(m.get("step", 0) for m in metrics), "seconds": seconds,
               "best_val_loss": min(m["val_loss"] for m in evaluations),
               "last_val_loss": evaluations[-1]["val_loss"], "eval_loss": scored["loss"]}
        rows.append(row)
        print(f"  {name}: {row['steps']} steps in {seconds:.0f} s, best validation "
              f"{row['best_val_loss']:.4f} nats/char, float32 eval of the best checkpoint "
              f"{row['eval_loss']:.4f}", flush=True)
    difference = rows[1]["eval_loss"] - rows[0]["eval_loss"]
    print(f"bf16 - float32: {difference:+.4f} nats/char", flush=True)
    if args.smoke or not args.results_name:
        return 0
    payload = {"steps": steps, "rows": rows, "bf16_minus_float32": difference}
    print(f"wrote {write_results(args.results_name, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
