"""WikiText-2, word level: rnnkit beside pytorch/examples word_language_model, same settings.

Data (from ../shared/data, which has no WikiText-2 train split): the *valid* split is the
training text; the test split's first half of lines is the validation text and its second half
the test text, touched once per run. Published WikiText-2 perplexities (trained on the full
train split) are not comparable with these. Both programs build their
dictionary over all three files (rnnkit through ``--vocab-from``, as pytorch/examples does),
so test perplexities are comparable. Runs, one after the other on the same machine:

- ``examples``: pytorch/examples ``main.py --epochs 6 --tied`` (2-layer LSTM 200/200,
  dropout 0.2, SGD lr 20, clip 0.25, batch 20, bptt 35, learning rate / 4 when validation
  stalls), run from a checkout obtained outside this repo (never copied into it);
- ``rnnkit``: ``rnnkit train`` with exactly those settings, then ``rnnkit eval`` on test;
- ``rnnkit-tuned``: rnnkit with settings of our choice in a time budget (default 330 s; not
  run by default: it is not a like-for-like comparison).

Each run is repeated over ``--seeds`` (three by default; the same seeds for both programs) and
the table gives the mean and the spread (min-max) of the test perplexity. The numbers go to
``benchmarks/results/wikitext2.json`` (``--results-name``).

    mkdir -p /tmp/examples/word_language_model      # once: the baseline's three files
    for f in main model data; do git --git-dir <pytorch/examples clone>/.git \\
        show HEAD:word_language_model/$f.py > /tmp/examples/word_language_model/$f.py; done
    python benchmarks/wikitext2_compare.py --examples /tmp/examples/word_language_model
    python benchmarks/wikitext2_compare.py --examples ... --smoke   # 2,000 lines, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import write_results

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, required=True,
                        help="folder holding pytorch/examples word_language_model/main.py")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default tmp)")
    parser.add_argument("--runs", default="examples,rnnkit",
                        help="comma list of examples, rnnkit, rnnkit-tuned")
    parser.add_argument("--seeds", default="1111,1112,1113", help="comma list of seeds")
    parser.add_argument("--results-name", default="wikitext2",
                        help="benchmarks/results/NAME.json ('' to write none)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--smoke", action="store_true", help="2,000 lines and 1 epoch")
    parser.add_argument("--tuned-budget", type=float, default=330.0, help="seconds")
    parser.add_argument("--tuned-flags", default="--dropout 0.5 --eval-every 100 "
                        "--plateau-patience 1", help="rnnkit-tuned flags on top of the same")
    return parser.parse_args(argv)


def prepare(data: Path, folder: Path, smoke: bool) -> Path:
    """train.txt, valid.txt and test.txt in pytorch/examples' layout."""
    folder.mkdir(parents=True, exist_ok=True)
    train = (data / "wikitext2-valid.txt").read_text(encoding="utf-8").splitlines(True)
    test = (data / "wikitext2-test.txt").read_text(encoding="utf-8").splitlines(True)
    if smoke:
        train, test = train[:2000], test[:1000]
    half = len(test) // 2
    for name, lines in (("train", train), ("valid", test[:half]), ("test", test[half:])):
        (folder / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
    return folder


def timed(command: list[str], cwd: Path, log: Path) -> tuple[float, str]:
    print("$ " + " ".join(map(str, command)), flush=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        handle.write(process.stdout)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}); see {log}:\n{process.stdout[-2000:]}")
    return seconds, process.stdout


def run_examples(args, data: Path, work: Path, seed: int) -> dict:
    main = args.examples / "main.py"
    if not main.is_file():
        raise SystemExit(f"{main} not found: pass --examples <checkout>/word_language_model")
    seconds, output = timed(
        [sys.executable, str(main), "--data", str(data), "--epochs", str(args.epochs),
         "--tied", "--seed", str(seed), "--save", str(work / f"examples-{seed}.pt")],
        args.examples, work / f"examples-{seed}.log",
    )
    found = re.search(r"test loss\s+([\d.]+)\s*\|\s*test ppl\s+([\d.]+)", output)
    return {"name": "examples", "seed": seed, "seconds": seconds,
            "test_perplexity": float(found.group(2))}


SAME_SETTINGS = ("--level word --cell lstm --layers 2 --hidden 200 --embedding 200 --dropout 0.2 "
                 "--tie-weights --optimizer sgd --lr 20 --momentum 0 --weight-decay 0 --clip 0.25 "
                 "--batch-size 20 --seq-len 35 --eval-batch-size 10 --schedule plateau "
                 "--plateau-factor 0.25 --plateau-patience 0 --eval-every 0 --log-every 100 "
                 "--no-progress")


def run_rnnkit(name: str, extra: list[str], data: Path, work: Path, seed: int) -> dict:
    run = work / f"{name}-{seed}"
    rnnkit = [sys.executable, "-m", "rnnkit.cli", "-q"]
    train_seconds, _ = timed(
        rnnkit + ["train", str(data / "train.txt"), "--val", str(data / "valid.txt"),
                  "--vocab-from", str(data / "valid.txt"), "--vocab-from", str(data / "test.txt"),
                  "--out", str(run), "--cache-dir", str(work / "cache")]
        + SAME_SETTINGS.split() + ["--seed", str(seed)] + extra, REPO,
        work / f"{name}-{seed}.log",
    )
    eval_seconds, output = timed(
        rnnkit + ["eval", str(run), str(data / "test.txt"), "--batch-size", "10", "--json"],
        REPO, work / f"{name}-{seed}-eval.log",
    )
    result = json.loads(output.strip().splitlines()[-1])
    return {"name": name, "seed": seed, "seconds": train_seconds + eval_seconds,
            "test_perplexity": result["perplexity"]}


def summary(results: list[dict]) -> list[dict]:
    """Per run name: mean, min and max of the test perplexity and the seconds, over seeds."""
    rows = []
    for name in dict.fromkeys(result["name"] for result in results):
        mine = [result for result in results if result["name"] == name]
        perplexities = [result["test_perplexity"] for result in mine]
        seconds = [result["seconds"] for result in mine]
        rows.append({"name": name, "seeds": [result["seed"] for result in mine],
                     "test_perplexity_mean": sum(perplexities) / len(perplexities),
                     "test_perplexity_min": min(perplexities),
                     "test_perplexity_max": max(perplexities),
                     "seconds_mean": sum(seconds) / len(seconds)})
    return rows


def main(argv=None) -> int:
    args = parse_arguments(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-wikitext2-"))
    if args.smoke:
        args.epochs, args.tuned_budget = 1, 30.0
    data = prepare(args.data, work / "data", args.smoke)
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    names = [name.strip() for name in args.runs.split(",") if name.strip()]
    results = []
    for seed in seeds:  # seed by seed, the programs alternating: both see the same machine
        for name in names:
            if name == "examples":
                results.append(run_examples(args, data, work, seed))
            elif name == "rnnkit":
                results.append(run_rnnkit(name, ["--epochs", str(args.epochs)], data, work, seed))
            elif name == "rnnkit-tuned":
                extra = ["--time-budget", str(args.tuned_budget)] + args.tuned_flags.split()
                results.append(run_rnnkit(name, extra, data, work, seed))
            else:
                raise SystemExit(f"unknown run {name!r}")
            print(f"  {name} seed {seed}: test perplexity "
                  f"{results[-1]['test_perplexity']:.2f} in {results[-1]['seconds']:.0f} s",
                  flush=True)
    rows = summary(results)
    print(f"\nWikiText-2, trained on the valid split, tested on the second half of the test "
          f"split; {len(seeds)} seed(s); logs in {work}")
    print(f"{'run':>14} {'test ppl mean':>14} {'min-max':>16} {'seconds':>9}")
    for row in rows:
        spread = f"{row['test_perplexity_min']:.1f}-{row['test_perplexity_max']:.1f}"
        print(f"{row['name']:>14} {row['test_perplexity_mean']:14.2f} {spread:>16} "
              f"{row['seconds_mean']:9.0f}")
    if args.results_name and not args.smoke:
        settings = {"epochs": args.epochs, "seeds": seeds, "rnnkit_settings": SAME_SETTINGS,
                    "protocol": "train on WikiText-2 valid; validate on the first half of the "
                                "test split's lines, test on the second half"}
        path = write_results(args.results_name,
                             {"settings": settings, "runs": results, "summary": rows})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
