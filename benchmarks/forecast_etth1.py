"""ETTh1, target OT, horizon 24, lookback 96, chronological 60/20/20 split.

MAE and MSE on the test part in the units of the ETDataset papers (standardised with the
training part's mean and deviation, arXiv 2012.07436), over every rolling origin of the test
part, beside the seasonal-naive (24 hours) and last-value forecasts on the same windows.
Univariate (OT alone) by default; ``--covariates`` adds the six load columns as inputs.
Run on a quiet machine:

    .venv/bin/python benchmarks/forecast_etth1.py --time-budget 600 --threads 2

Smoke test: ``--time-budget 10``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from rnnkit.forecast.evaluate import METHODS, backtest
from rnnkit.forecast.run import ForecastConfig, load_forecast, start_forecast

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ETTh1.csv"
LOADS = "HUFL,HULL,MUFL,MULL,LUFL,LULL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--time-budget", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--covariates", action="store_true", help=f"also read {LOADS}")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--head", default="direct")
    parser.add_argument("--window-norm", default="last")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", default="runs/bench-etth1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ForecastConfig()
    config.data.path, config.data.target = str(args.data), "OT"
    config.data.covariates = LOADS.split(",") if args.covariates else []
    config.data.val_fraction = config.data.test_fraction = 0.2
    config.model.horizon, config.model.lookback = 24, 96
    config.model.cell, config.model.hidden, config.model.layers = (args.cell, args.hidden,
                                                                   args.layers)
    config.model.head, config.model.window_norm = args.head, args.window_norm
    config.model.dropout = args.dropout
    config.train.batch_size, config.train.lr, config.train.seed = (args.batch_size, args.lr,
                                                                   args.seed)
    config.train.time_budget, config.train.eval_every = args.time_budget, args.eval_every
    config.train.schedule = "cosine"
    config.out = args.out
    shutil.rmtree(config.out, ignore_errors=True)  # a fresh run each time
    trainer = start_forecast(config)
    trained = trainer.fit()
    result = backtest(load_forecast(config.out))
    print(json.dumps(result))
    print(f"\nETTh1 OT, horizon 24, lookback 96, {result['windows']} test windows; "
          f"{trained.steps} training steps ({trained.stopped})")
    print(f"{'method':<16}{'MSE':>10}{'MAE':>10}   (standardised with the training part)")
    for method in METHODS:
        m = result[method]
        print(f"{method:<16}{m['mse_scaled']:>10.4f}{m['mae_scaled']:>10.4f}")


if __name__ == "__main__":
    main()
