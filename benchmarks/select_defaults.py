"""How the defaults of ``rnnkit train`` and ``rnnkit forecast train`` were chosen: on validation.

Each candidate is a set of flags on top of the command's former defaults (spelled out in
``TRAIN_BASE`` and ``FORECAST_BASE``: the chosen settings are the defaults now). Every
candidate of a command trains on the same data with the same budget (a number of epochs,
unless a candidate names its own, so the choice does not depend on how busy the machine is)
through the real CLI, and is scored by the best validation loss its run logged
(``metrics.jsonl``). Test data is never read. The winner is the candidate with the lowest
validation loss, for ``forecast`` the lowest geometric mean over the series of the loss
relative to the former defaults' (the series' losses are on different scales).

    .venv/bin/python benchmarks/select_defaults.py --task train      # Tiny Shakespeare, ~15 min
    .venv/bin/python benchmarks/select_defaults.py --task forecast   # three series, ~10 min

Writes ``benchmarks/results/select_defaults_<task>.json``. ``--smoke`` runs a few steps on a
small slice and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RNNKIT = [sys.executable, "-m", "rnnkit.cli"]

# the language model: flags over `rnnkit train`'s former defaults (lstm 2x256, embedding 64, batch
# 64 x 100 steps, AdamW 2e-3 constant, no dropout or layer norm), named in TRAIN_BASE since the
# winner (the README's Tiny Shakespeare settings, the last one) became the defaults
TRAIN_BASE = ("--no-layer-norm --dropout 0 --lr 2e-3 --weight-decay 0 --warmup 0 "
              "--schedule constant")
TRAIN_CANDIDATES = {
    "defaults": "",
    "lr 5e-3 cosine": "--lr 5e-3 --schedule cosine --min-lr 5e-5 --warmup 50",
    "cosine + dropout 0.2, wd 0.05": "--lr 5e-3 --schedule cosine --min-lr 5e-5 --warmup 50 "
                                     "--dropout 0.2 --weight-decay 0.05",
    "README (+ layer norm)": "--lr 5e-3 --schedule cosine --min-lr 5e-5 --warmup 50 "
                             "--dropout 0.2 --weight-decay 0.05 --layer-norm",
}

# the forecaster: flags over `forecast train`'s former defaults (lstm 64, lookback 24, last-value
# normalisation, Adam 2e-3 constant, batch 32, 20 epochs), the schedule named in FORECAST_BASE
FORECAST_BASE = "--schedule constant"
FORECAST_CANDIDATES = {
    "defaults": "",
    "cosine": "--schedule cosine --min-lr 1e-5",
    "lr 5e-3 cosine": "--lr 5e-3 --schedule cosine --min-lr 1e-5",
    "hidden 128 cosine": "--hidden 128 --schedule cosine --min-lr 1e-5",
    "gru cosine": "--cell gru --schedule cosine --min-lr 1e-5",
    "window mean cosine": "--window-norm mean --schedule cosine --min-lr 1e-5",
    "cosine, 60 epochs": "--schedule cosine --min-lr 1e-5 --epochs 60",
}
SERIES = {  # name: (file, target, horizon)
    "AirPassengers": ("AirPassengers.csv", "#Passengers", 12),
    "sunspots": ("monthly-sunspots.csv", "Sunspots", 12),
    "ETTh1 OT": ("ETTh1.csv", "OT", 24),
}


def best_validation_loss(run: Path) -> tuple[float, int]:
    """The last evaluation line's best validation loss and the step it was logged at."""
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in line]
    return evals[-1]["best_val_loss"], evals[-1]["step"]


def train_once(command: list[str], run: Path) -> dict:
    started = time.perf_counter()
    subprocess.run(command + ["--out", str(run), "--no-progress", "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    loss, step = best_validation_loss(run)
    return {"val_loss": loss, "steps": step, "seconds": round(time.perf_counter() - started, 1)}


def select_train(args, work: Path) -> dict:
    text = DATA / "tinyshakespeare.txt"
    if args.smoke:
        text = work / "slice.txt"
        text.write_text((DATA / "tinyshakespeare.txt").read_text()[:40_000])
    rows = []
    for name, flags in TRAIN_CANDIDATES.items():
        budget = ["--max-steps", "20", "--hidden", "32"] if args.smoke else \
            ["--epochs", str(args.epochs)]
        command = RNNKIT + ["train", str(text), *shlex.split(TRAIN_BASE + " " + flags), *budget,
                            "--seed", str(args.seed)]
        row = {"candidate": name, "flags": flags, **train_once(command, work / f"lm{len(rows)}")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    best = min(rows, key=lambda row: row["val_loss"])
    return {"corpus": "Tiny Shakespeare (validation: the last 10%)", "epochs": args.epochs,
            "seed": args.seed, "rows": rows, "chosen": best["candidate"]}


def select_forecast(args, work: Path) -> dict:
    rows = []
    for series, (file, target, horizon) in SERIES.items():
        for name, flags in FORECAST_CANDIDATES.items():
            budget = ["--max-steps", "5"] if args.smoke else \
                [] if "--epochs" in flags else ["--epochs", str(args.epochs)]
            command = RNNKIT + ["forecast", "train", str(DATA / file), "--target", target,
                                "--horizon", str(horizon),
                                *shlex.split(FORECAST_BASE + " " + flags), *budget,
                                "--seed", str(args.seed)]
            run = work / f"fc{len(rows)}"
            row = {"series": series, "horizon": horizon, "candidate": name, "flags": flags,
                   **train_once(command, run)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    base = {row["series"]: row["val_loss"] for row in rows if row["candidate"] == "defaults"}
    scores = {}
    for name in FORECAST_CANDIDATES:
        ratios = [row["val_loss"] / base[row["series"]] for row in rows
                  if row["candidate"] == name]
        scores[name] = math.exp(sum(map(math.log, ratios)) / len(ratios))
    return {"series": {name: {"file": file, "target": target, "horizon": horizon}
                       for name, (file, target, horizon) in SERIES.items()},
            "epochs": args.epochs, "seed": args.seed, "rows": rows,
            "geomean_relative_val_loss": {name: round(value, 4) for name, value in scores.items()},
            "chosen": min(scores, key=scores.get)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("train", "forecast"), required=True)
    parser.add_argument("--epochs", type=float, default=None,
                        help="budget of every candidate (default: 3 for train, 20 for forecast)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--smoke", action="store_true", help="a few steps; no results file")
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 3.0 if args.task == "train" else 20.0
    with tempfile.TemporaryDirectory(prefix="rnnkit-defaults-") as folder:
        work = Path(folder)
        payload = select_train(args, work) if args.task == "train" else \
            select_forecast(args, work)
    print(f"chosen on validation: {payload['chosen']}")
    if not args.smoke:
        print(f"wrote {write_results(f'select_defaults_{args.task}', payload)}")


if __name__ == "__main__":
    main()
