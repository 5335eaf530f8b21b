"""Two processes against one: the README's Tiny Shakespeare command under ``--nproc 2``.

Measures, briefly, on this machine:

- tokens per second of the README's training command (2-layer layer-norm LSTM 256, batch 64,
  seq-len 100) for ``--steps`` steps with 1 process x 2 threads and with 2 processes x 1
  thread (``--nproc 2 --threads 1``), read from ``metrics.jsonl`` (the first logged window,
  which holds start-up, is left out);
- the time of one gloo all-reduce between two processes of this machine, of the model's
  whole gradient (float32, as DDP sends it) and of the one scalar-sized tensor the loop
  all-reduces per step (loss, interruption, clock);
- the gradient bytes per step, which is what crosses the network between machines.

Writes ``benchmarks/results/distributed.json``.

    python benchmarks/distributed.py                # about 3 minutes
    python benchmarks/distributed.py --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SETTINGS = ("--layers 2 --hidden 256 --embedding 64 --layer-norm --dropout 0.2 --lr 5e-3 "
            "--weight-decay 0.05 --warmup 50").split()


def train(work: Path, name: str, steps: int, extra: list[str]) -> dict:
    out = work / name
    command = [sys.executable, "-m", "rnnkit", "train", str(DATA), "--out", str(out),
               *SETTINGS, "--max-steps", str(steps), "--log-every", "5", "--no-progress",
               "--cache-dir", str(work / "cache"), *extra]
    print("$ rnnkit " + " ".join(command[3:]), flush=True)
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}):\n{process.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["kind"] == "train"][1:]
    rate = sum(r["tokens_per_second"] for r in windows) / len(windows)
    return {"command": " ".join(command[3:]), "tokens_per_second": round(rate),
            "windows": len(windows), "final_train_loss": round(windows[-1]["loss"], 4)}


def gradient_numbers() -> int:
    from rnnkit.models.language_model import LanguageModel, ModelConfig

    model = LanguageModel(ModelConfig(vocab_size=65, layers=2, hidden=256, embedding=64,
                                      layer_norm=True, dropout=0.2))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def all_reduce_worker(numbers: int, repeats: int, out: str) -> None:
    """Run by each of two ranks under torchrun: time all-reduces of the gradient's size."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    timings = {}
    for name, size in (("gradient", numbers), ("per_step_scalars", 3)):
        tensor = torch.ones(size, dtype=torch.float32 if size > 3 else torch.float64)
        for _ in range(3):  # connections warm
            dist.all_reduce(tensor)
        dist.barrier()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            dist.all_reduce(tensor)
            seconds.append(time.perf_counter() - start)
        seconds.sort()
        timings[name] = {"elements": size, "bytes": tensor.numel() * tensor.element_size(),
                         "median_ms": round(seconds[len(seconds) // 2] * 1e3, 3),
                         "min_ms": round(seconds[0] * 1e3, 3)}
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(timings))
    dist.destroy_process_group()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--all-reduce-worker", nargs=3, metavar=("NUMBERS", "REPEATS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.all_reduce_worker:
        numbers, repeats, out = args.all_reduce_worker
        all_reduce_worker(int(numbers), int(repeats), out)
        return 0
    sys.path.insert(0, str(REPO))
    from results import write_results

    load_before = round(os.getloadavg()[0], 2)
    work = Path(tempfile.mkdtemp(prefix="rnnkit-distributed-"))
    numbers = gradient_numbers()
    runs = {
        "1 process x 2 threads": train(work, "one", args.steps, ["--threads", "2"]),
        "2 processes x 1 thread": train(work, "two", args.steps,
                                        ["--nproc", "2", "--threads", "1"]),
    }
    out = work / "all_reduce.json"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", "2", __file__, "--all-reduce-worker", str(numbers),
                    str(args.repeats), str(out)], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    all_reduce = json.loads(out.read_text())
    gradient_bytes = numbers * 4
    results = {
        "steps": args.steps,
        "runs": runs,
        "speedup_2x1_over_1x2": round(runs["2 processes x 1 thread"]["tokens_per_second"]
                                      / runs["1 process x 2 threads"]["tokens_per_second"], 3),
        "all_reduce_gloo_2_ranks_one_machine": all_reduce,
        "gradient": {"parameters": numbers, "bytes_per_step": gradient_bytes,
                     "ring_bytes_sent_per_rank_per_step_2_ranks": gradient_bytes,
                     "note": "a ring all-reduce sends 2(N-1)/N of the gradient per rank"},
        # how busy the two cores were: the 1-minute load average before and after
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(results, indent=2))
    write_results("distributed", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
