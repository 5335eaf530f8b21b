"""AirPassengers: the forecaster's settings scored on several validation years, not one.

One 12-month window is a noisy judge: a year of unusual growth moves every candidate's MAPE
by several points. This script scores each candidate on a rolling origin (Tashman 2000;
Hyndman & Athanasopoulos, "Forecasting: Principles and Practice", section 5.10): fold k
trains on the years before 1959 - k and forecasts that year once, k = 0 .. folds - 1 (1959,
1958, 1957, ...). 1960, the test year of ``forecast_airpassengers.py``, is never read: the
series is cut before it. Each run trains as that script does (the segment-recurrent model on
the log scale, the MAE loss, the last weights) and forecasts with the same code.

Candidates are the defaults of ``forecast_airpassengers.py`` and changes to them, written as
``--grid "lookback=24,48 + hidden=32,128"`` (``+`` tries each change on its own; ``;``
within a part combines). For each: the MAPE per fold (mean over seeds), their mean, and the
same for the forecast averaged over the seeds (geometric mean). Two processes of one thread:

    .venv/bin/python benchmarks/forecast_air_folds.py --folds 4 --seeds 1,2,3 \\
        --grid "lookback=24,48 + hidden=32,128 + epochs=50,200 + cell=lstm + dropout=0.2 + lr=0.003"

writes benchmarks/results/forecast_air_folds.json.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from results import write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "AirPassengers.csv"
# forecast_airpassengers.py's settings (chosen on 1959), and the kind of each grid key
DEFAULTS = {"lookback": 36, "hidden": 64, "epochs": 100.0, "cell": "gru", "dropout": 0.0,
            "lr": 1e-3, "segment": 12, "batch_size": 16, "norm": "last", "model": "segrnn",
            "head": "direct", "layers": 1}
KINDS = {"lookback": int, "hidden": int, "epochs": float, "cell": str, "dropout": float,
         "lr": float, "segment": int, "batch_size": int, "norm": str, "model": str,
         "head": str, "layers": int}
HORIZON = 12


def candidates(grid: str) -> list[dict]:
    """``"lookback=24,48 + hidden=32"`` -> [{}, {"lookback": 24}, {"lookback": 48}, ...]."""
    rows: list[dict] = [{}]  # the defaults first
    for part in filter(None, (part.strip() for part in grid.split("+"))):
        axes = []
        for item in filter(None, (item.strip() for item in part.split(";"))):
            key, _, values = item.partition("=")
            key = key.strip().replace("-", "_")
            if key not in KINDS:
                raise SystemExit(f"--grid: unknown setting {key!r}; choose from {sorted(KINDS)}")
            axes.append([(key, KINDS[key](value.strip())) for value in values.split(",")])
        rows += [dict(combination) for combination in itertools.product(*axes)]
    return rows


def configure(path, changes: dict, seed: int, out: str, val_size: int, test_size: int):
    """The forecaster's settings with ``changes`` on top, the last ``test_size`` points cut."""
    from rnnkit.forecast.run import ForecastConfig

    settings = {**DEFAULTS, **changes}
    config = ForecastConfig()
    config.data.path, config.data.target = str(path), "#Passengers"
    config.data.val_size, config.data.test_size = val_size, test_size
    if not val_size:
        config.data.val_fraction = 0.0
    config.data.scale = "log"
    config.model.horizon, config.model.lookback = HORIZON, settings["lookback"]
    config.model.model, config.model.cell = settings["model"], settings["cell"]
    config.model.head, config.model.layers = settings["head"], settings["layers"]
    config.model.segment, config.model.hidden = settings["segment"], settings["hidden"]
    config.model.dropout, config.model.loss = settings["dropout"], "mae"
    config.model.window_norm = settings["norm"]
    config.train.epochs, config.train.seed = settings["epochs"], seed
    config.train.batch_size, config.train.lr = settings["batch_size"], settings["lr"]
    config.train.schedule = "constant"
    config.out = out
    return config


def train(config):
    """Train ``config`` afresh in one thread: its last weights, and its series split and scaled."""
    import torch

    from rnnkit.forecast.run import ForecastData, load_forecast, start_forecast

    torch.set_num_threads(1)
    shutil.rmtree(config.out, ignore_errors=True)
    start_forecast(config).fit()
    run = load_forecast(config.out, "last")
    return run, ForecastData(run.config, scaler=run.scaler)


def describe(changes: dict) -> str:
    """A candidate's row name: its changes to the defaults."""
    return ", ".join(f"{key}={value}" for key, value in changes.items()) or "defaults"


def one_run(job: tuple) -> dict:
    """Train one candidate on the years before ``fold``'s and forecast that year."""
    from rnnkit.forecast.evaluate import model_forecast

    path, changes, fold, seed, out = job
    # the validation year is the 12 points before a "test" part of 12 * (fold + 1) points:
    # 1960 and the folds' later years lie there, never trained on and never read
    run, data = train(configure(path, changes, seed, out, HORIZON, HORIZON * (fold + 1)))
    origin = data.origins["val"][0]  # the first validation origin: the year's January
    forecast = run.scaler.inverse_target(model_forecast(run, data.scaled, [origin])[:, :, 0])[0]
    actual = data.series.target[origin + np.arange(HORIZON)]
    shutil.rmtree(out, ignore_errors=True)
    return {"changes": changes, "fold": fold, "year": data.series.format_time(
                data.series.times[origin])[:4], "seed": seed, "forecast": forecast.tolist(),
            "actual": actual.tolist(), "mape": mape(forecast, actual)}


def mape(forecast, actual) -> float:
    forecast, actual = np.asarray(forecast, float), np.asarray(actual, float)
    return float(np.mean(np.abs(forecast / actual - 1)) * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=4, help="validation years: 1959 back")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--grid", default="", help="changes to the defaults (see above)")
    parser.add_argument("--jobs", type=int, default=2, help="processes of one thread each")
    parser.add_argument("--name", default="forecast_air_folds", help="results file name")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    rows = candidates(args.grid)
    scratch = tempfile.mkdtemp(prefix="rnnkit-air-folds-")
    jobs = [(args.data, changes, fold, seed, f"{scratch}/run-{i}-{fold}-{seed}")
            for i, changes in enumerate(rows) for fold in range(args.folds) for seed in seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(one_run, jobs))
    shutil.rmtree(scratch, ignore_errors=True)
    summary = []
    for changes in rows:
        mine = [run for run in runs if run["changes"] == changes]
        per_fold, ensemble, years = [], [], []
        for fold in range(args.folds):
            members = [run for run in mine if run["fold"] == fold]
            per_fold.append(float(np.mean([run["mape"] for run in members])))
            averaged = np.exp(np.mean([np.log(run["forecast"]) for run in members], axis=0))
            ensemble.append(mape(averaged, members[0]["actual"]))
            years.append(members[0]["year"])
        summary.append({"changes": changes, "years": years, "mape_per_fold": per_fold,
                        "mape_mean": float(np.mean(per_fold)), "seed_average_per_fold": ensemble,
                        "seed_average_mean": float(np.mean(ensemble))})
    summary.sort(key=lambda row: row["mape_mean"])
    print(f"MAPE % per validation year (mean over seeds {args.seeds}); the seeds' averaged "
          f"forecast after the bar")
    print(f"{'candidate':<28}" + "".join(f"{year:>7}" for year in summary[0]["years"])
          + f"{'mean':>7} |" + "".join(f"{year:>7}" for year in summary[0]["years"]) + "   mean")
    for row in summary:
        print(f"{describe(row['changes']):<28}"
              + "".join(f"{value:>7.2f}" for value in row["mape_per_fold"])
              + f"{row['mape_mean']:>7.2f} |"
              + "".join(f"{value:>7.2f}" for value in row["seed_average_per_fold"])
              + f"{row['seed_average_mean']:>7.2f}")
    settings = {"defaults": DEFAULTS, "folds": args.folds, "seeds": seeds, "grid": args.grid}
    print(write_results(args.name, {"settings": settings, "summary": summary, "runs": runs}))


if __name__ == "__main__":
    main()
