"""ETTh1 on the long-horizon protocol of the ETT papers: rnnkit's segment-recurrent GRU.

Multivariate (7 columns in and out), lookback 96, horizons 96/192/336/720, train rows
[0, 8640), validation [8640-96, 11520), test [11520-96, 14400), standardised with the
training rows only; MSE and MAE over every test window and channel, three seeds, beside the
published figures of DLinear, PatchTST and SegRNN at the same lookback. A fixed number of
epochs per run (so the run is the same on a busy machine); the best epoch by validation MSE
is tested once. Writes benchmarks/results/forecast_ett.json:

    nice -n 10 .venv/bin/python benchmarks/forecast_ett.py --threads 2
    nice -n 10 .venv/bin/python benchmarks/forecast_ett.py --threads 1 --jobs 3  # seeds at once

Smoke test: ``--horizons 96 --seeds 1 --epochs 1``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from results import write_results

from rnnkit.forecast.ett import BenchmarkConfig, run_benchmark
from rnnkit.forecast.segrnn import SegRNNConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ETTh1.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--lookback", type=int, default=96)
    parser.add_argument("--horizons", default="96,192,336,720")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--segment", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--norm", default="last")
    parser.add_argument("--decoder", default="factored")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--name", default="forecast_ett", help="results file name")
    args = parser.parse_args()
    config = BenchmarkConfig(
        lookback=args.lookback, horizons=[int(h) for h in args.horizons.split(",")],
        seeds=[int(s) for s in args.seeds.split(",")],
        model=SegRNNConfig(segment=args.segment, hidden=args.hidden, dropout=args.dropout,
                           norm=args.norm, decoder=args.decoder),
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads)

    def report(horizon, seed, row):
        print(f"horizon {horizon} seed {seed} epoch {row['epoch']}: train {row['train_mse']:.4f}"
              f" val {row['val_mse']:.4f} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    def partial(result):  # each finished run is on disk at once (complete: false until the end)
        write_results(args.name, result)

    result = run_benchmark(args.data, config, report, on_result=partial, jobs=args.jobs)
    for row in result["results"]:
        print(f"horizon {row['horizon']:>3} seed {row['seed']}: test MSE {row['mse']:.4f} "
              f"MAE {row['mae']:.4f} over {row['test_windows']} windows; best epoch "
              f"{row['best_epoch']}/{row['epochs']}, {row['train_seconds']:.0f} s", flush=True)
    dlinear = result["published"].get("DLinear", {}).get("figures", {})
    for row in result["summary"]:
        reference = dlinear.get(str(row["horizon"]), {}).get("mse")
        print(f"horizon {row['horizon']:>3}: MSE {row['mse']:.4f} [{row['mse_min']:.4f}, "
              f"{row['mse_max']:.4f}] MAE {row['mae']:.4f}; DLinear (published) {reference}")
    print(write_results(args.name, result))


if __name__ == "__main__":
    main()
