"""AirPassengers, the last 12 months held out: the model's backtest beside seasonal-naive.

With ``--refit`` (the default) the settings, chosen by training on 1949-1958 and scoring the
1959 window, train again on 1949-1959 for the same number of epochs and the last weights
forecast 1960, as darts' example trains on everything before its test year; ``--no-refit``
trains on 1949-1958 only and keeps the checkpoint best on 1959. It prints MAE, RMSE, MAPE and
sMAPE of the model, the seasonal-naive and the last-value forecasts on the 1960 window, and
writes benchmarks/results/forecast_airpassengers.json. The default model is the
segment-recurrent one (``--model segrnn``: segments of 12 months, a GRU, the parallel
decoder) on the standardised logarithm of the series (``--scale log``), trained with the MAE
loss; these settings were chosen on the 1959 validation window. Under a minute per seed:

    .venv/bin/python benchmarks/forecast_airpassengers.py --seeds 1,2,3

The README's earlier path: ``--model rnn --cell lstm --head seq2seq --window-norm mean
--scale none --lookback 24 --loss mse --epochs 150 --batch-size 32 --lr 2e-3``.
darts' RNNModel example reports a backtest MAPE of 2.71 %.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
from results import write_results

from rnnkit.forecast.evaluate import METHODS, backtest
from rnnkit.forecast.run import ForecastConfig, load_forecast, start_forecast

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "AirPassengers.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--model", default="segrnn")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--segment", type=int, default=12)
    parser.add_argument("--epochs", type=float, default=100)
    parser.add_argument("--lookback", type=int, default=36)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--head", default="direct")
    parser.add_argument("--window-norm", default="last")
    parser.add_argument("--scale", default="log")
    parser.add_argument("--loss", default="mae")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", default="constant",
                        help="the rate schedule (constant: the setting chosen on 1959, before "
                        "forecast train's default became a cosine)")
    parser.add_argument("--min-lr", type=float, default=1e-5, help="cosine: the final rate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=True,
                        help="train on 1949-1959 with the chosen settings (default)")
    parser.add_argument("--validate", action="store_true",
                        help="choose settings: train on 1949-1958 and score the last weights on "
                        "1959 (the validation window); 1960 is not read")
    parser.add_argument("--out", default="runs/bench-airpassengers")
    parser.add_argument("--name", default="forecast_airpassengers", help="results file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'seed':>6}{'method':>16}{'MAE':>10}{'RMSE':>10}{'MAPE %':>9}{'sMAPE %':>9}")
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        config = ForecastConfig()
        config.data.path, config.data.target = str(args.data), "#Passengers"
        config.data.val_size = config.data.test_size = 12
        if args.refit and not args.validate:  # no validation part: 1959 joins training
            config.data.val_size, config.data.val_fraction = 0, 0.0
        config.data.scale = args.scale
        config.model.horizon, config.model.lookback = 12, args.lookback
        config.model.model, config.model.cell = args.model, args.cell
        config.model.segment, config.model.dropout = args.segment, args.dropout
        config.model.hidden, config.model.head = args.hidden, args.head
        config.model.window_norm, config.model.loss = args.window_norm, args.loss
        config.train.epochs, config.train.seed = args.epochs, seed
        config.train.batch_size, config.train.lr = args.batch_size, args.lr
        config.train.schedule, config.train.min_lr = args.schedule, args.min_lr
        config.out = f"{args.out}/seed-{seed}"
        shutil.rmtree(config.out, ignore_errors=True)  # a fresh run each time
        start_forecast(config).fit()
        if args.validate:  # the last weights, as the refit run forecasts with
            result = backtest(load_forecast(config.out, "last"), part="val")
        else:
            result = backtest(load_forecast(config.out, "last" if args.refit else "best"))
        runs.append({"seed": seed, **{method: result[method] for method in METHODS}})
        for method in METHODS:
            m = result[method]
            print(f"{seed:>6}{method:>16}{m['mae']:>10.2f}{m['rmse']:>10.2f}{m['mape']:>9.2f}"
                  f"{m['smape']:>9.2f}", flush=True)
    mapes = [run["model"]["mape"] for run in runs]
    summary = {"part": "val (1959)" if args.validate else "test (1960)",
               "model_mape_mean": float(np.mean(mapes)), "model_mape_min": min(mapes),
               "model_mape_max": max(mapes), "seeds": len(runs)}
    print(f"model MAPE on {'1959 (validation)' if args.validate else '1960 (test)'} over "
          f"{len(runs)} seed(s): mean {summary['model_mape_mean']:.2f} % "
          f"[{summary['model_mape_min']:.2f}, {summary['model_mape_max']:.2f}]")
    settings = {key: value for key, value in vars(args).items() if key not in ("data", "out")}
    print(write_results(args.name, {"settings": settings, "runs": runs, "summary": summary}))


if __name__ == "__main__":
    main()
