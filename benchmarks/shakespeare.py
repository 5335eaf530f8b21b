"""Tiny Shakespeare, character level: the README's training command, timed, and its loss.

Runs ``rnnkit train`` with the README's settings for ``--budget`` seconds (``layer-norm``; and
the same without ``--layer-norm`` as ``plain``), one run after the other on a quiet machine.
Then scores the best checkpoint with ``rnnkit eval`` on the validation text (the last 10% of
the corpus) twice: as 64 parallel streams, as in training, and as one stream (each character
sees the whole text before it). Writes ``benchmarks/results/shakespeare.json``.

    python benchmarks/shakespeare.py                       # about 11 minutes a run
    python benchmarks/shakespeare.py --runs layer-norm,plain
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from commands import rnnkit
from results import write_results

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SETTINGS = ("--layers 2 --hidden 256 --embedding 64 --dropout 0.2 --lr 5e-3 --weight-decay 0.05 "
            "--schedule cosine --min-lr 5e-5 --warmup 50")
RUNS = {"layer-norm": ["--layer-norm"], "plain": []}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training a run")
    parser.add_argument("--runs", default="layer-norm", help=f"comma list of {list(RUNS)}")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default: tmp)")
    parser.add_argument("--results-name", default="shakespeare",
                        help="benchmarks/results/NAME.json ('' to write none)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-shakespeare-"))
    work.mkdir(parents=True, exist_ok=True)
    text = args.data.read_text(encoding="utf-8")
    validation = work / "validation.txt"  # the trainer's split: the last 10% of the characters
    validation.write_text(text[int(round(len(text) * 0.9)):], encoding="utf-8")
    rows = []
    for name in [name.strip() for name in args.runs.split(",") if name.strip()]:
        run = work / name
        command = ["train", str(args.data), "--out", str(run), *SETTINGS.split(), *RUNS[name],
                   "--time-budget", str(args.budget), "--cache-dir", str(work / "cache"),
                   "--no-progress"]
        rnnkit(*command)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        evaluations = [m for m in metrics if "val_loss" in m]
        streams = json.loads(rnnkit("eval", str(run), str(validation), "--json").splitlines()[-1])
        one = json.loads(rnnkit("eval", str(run), str(validation), "--json",
                                "--batch-size", "1").splitlines()[-1])
        row = {"run": name, "command": "rnnkit " + " ".join(command),
               "steps": max(m.get("step", 0) for m in metrics),
               "best_val_loss": min(m["val_loss"] for m in evaluations),
               "eval_64_streams": streams["loss"], "eval_one_stream": one["loss"],
               "val_tokens": one["tokens"]}
        rows.append(row)
        print(f"  {name}: {row['steps']} steps, best validation {row['best_val_loss']:.4f} "
              f"nats/char (64 streams {row['eval_64_streams']:.4f}, one stream "
              f"{row['eval_one_stream']:.4f})", flush=True)
    if args.results_name:
        print(f"wrote {write_results(args.results_name, {'budget': args.budget, 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
