"""WikiText-2, word level: rnnkit beside pytorch/examples word_language_model, same settings.

Data (from ../shared/data): the valid split is the training text; the test split's first half
of lines is the validation text and its second half the test text. Both programs build their
dictionary over all three files (rnnkit through ``--vocab-from``, as pytorch/examples does),
so test perplexities are comparable. Runs, one after the other on the same machine:

- ``examples``: pytorch/examples ``main.py --epochs 6 --tied`` (2-layer LSTM 200/200,
  dropout 0.2, SGD lr 20, clip 0.25, batch 20, bptt 35, learning rate / 4 when validation
  stalls), run from a checkout obtained outside this repo (never copied into it);
- ``rnnkit``: ``rnnkit train`` with exactly those settings, then ``rnnkit eval`` on test;
- ``rnnkit-tuned``: rnnkit with settings of our choice in a time budget (default 330 s).

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

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, required=True,
                        help="folder holding pytorch/examples word_language_model/main.py")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default tmp)")
    parser.add_argument("--runs", default="examples,rnnkit,rnnkit-tuned")
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


def run_examples(args, data: Path, work: Path) -> dict:
    main = args.examples / "main.py"
    if not main.is_file():
        raise SystemExit(f"{main} not found: pass --examples <checkout>/word_language_model")
    seconds, output = timed(
        [sys.executable, str(main), "--data", str(data), "--epochs", str(args.epochs),
         "--tied", "--save", str(work / "examples-model.pt")], args.examples,
        work / "examples.log",
    )
    found = re.search(r"test loss\s+([\d.]+)\s*\|\s*test ppl\s+([\d.]+)", output)
    return {"name": "examples", "seconds": seconds, "test_perplexity": float(found.group(2))}


SAME_SETTINGS = ("--level word --cell lstm --layers 2 --hidden 200 --embedding 200 --dropout 0.2 "
                 "--tie-weights --optimizer sgd --lr 20 --momentum 0 --weight-decay 0 --clip 0.25 "
                 "--batch-size 20 --seq-len 35 --eval-batch-size 10 --schedule plateau "
                 "--plateau-factor 0.25 --plateau-patience 0 --eval-every 0 --log-every 100 "
                 "--seed 1111 --no-progress")


def run_rnnkit(name: str, extra: list[str], data: Path, work: Path) -> dict:
    run = work / name
    rnnkit = [sys.executable, "-m", "rnnkit.cli", "-q"]
    train_seconds, _ = timed(
        rnnkit + ["train", str(data / "train.txt"), "--val", str(data / "valid.txt"),
                  "--vocab-from", str(data / "valid.txt"), "--vocab-from", str(data / "test.txt"),
                  "--out", str(run), "--cache-dir", str(work / "cache")]
        + SAME_SETTINGS.split() + extra, REPO, work / f"{name}.log",
    )
    eval_seconds, output = timed(
        rnnkit + ["eval", str(run), str(data / "test.txt"), "--batch-size", "10", "--json"],
        REPO, work / f"{name}-eval.log",
    )
    result = json.loads(output.strip().splitlines()[-1])
    return {"name": name, "seconds": train_seconds + eval_seconds,
            "test_perplexity": result["perplexity"]}


def main(argv=None) -> int:
    args = parse_arguments(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-wikitext2-"))
    if args.smoke:
        args.epochs, args.tuned_budget = 1, 30.0
    data = prepare(args.data, work / "data", args.smoke)
    results = []
    for name in [name.strip() for name in args.runs.split(",") if name.strip()]:
        if name == "examples":
            results.append(run_examples(args, data, work))
        elif name == "rnnkit":
            results.append(run_rnnkit(name, ["--epochs", str(args.epochs)], data, work))
        elif name == "rnnkit-tuned":
            extra = ["--time-budget", str(args.tuned_budget)] + args.tuned_flags.split()
            results.append(run_rnnkit(name, extra, data, work))
        else:
            raise SystemExit(f"unknown run {name!r}")
        print(f"  {results[-1]['name']}: test perplexity {results[-1]['test_perplexity']:.2f} "
              f"in {results[-1]['seconds']:.0f} s", flush=True)
    print(f"\nWikiText-2 (train on valid, test on the test split's second half); logs in {work}")
    print(f"{'run':>14} {'test ppl':>10} {'seconds':>9}")
    for result in results:
        print(f"{result['name']:>14} {result['test_perplexity']:10.2f} {result['seconds']:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
