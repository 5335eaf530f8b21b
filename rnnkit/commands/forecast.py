"""``rnnkit forecast train | predict | backtest | benchmark``: forecast CSV columns.

``train`` cuts the series chronologically (train | validation | test), fits the scaling on
the training part only, and trains an rnnkit encoder with a direct or seq2seq multi-step
head; ``predict`` writes the next steps as CSV and PNG; ``backtest`` scores rolling origins
over the held-out tail beside the seasonal-naive and last-value baselines; ``benchmark``
runs the ETT long-horizon protocol (all columns, 12/4/4 months) with a segment-recurrent model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rnnkit.commands import int8flag, launch
from rnnkit.commands.helptext import CHECKPOINT_HELP, examples, with_default
from rnnkit.commands.output import budget_text, say, settings_dump
from rnnkit.commands.trainflags import training_flags
from rnnkit.errors import UserError
from rnnkit.train.config import FORECASTER_DEFAULT_EPOCHS

# flag -> (section, key, type, help)
TRAIN_FLAGS = {
    "--time-col": ("data", "time_col", str, "timestamp column (default: found by name/format)"),
    "--fill": ("data", "fill", str, "gaps and empty cells: error | forward | linear | zero"),
    "--val-fraction": ("data", "val_fraction", float, "share held out for validation (0.2)"),
    "--test-fraction": ("data", "test_fraction", float, "share held out for testing (0.2)"),
    "--val-size": ("data", "val_size", int, "validation points (wins over the fraction)"),
    "--test-size": ("data", "test_size", int, "test points, e.g. 12 for the last year"),
    "--scale": ("data", "scale", str, "standard | minmax | log | none, fitted on the train "
                "part"),
    "--season": ("data", "season", int, "season length in steps (default from frequency)"),
    "--stride": ("data", "stride", int, "steps between validation/backtest origins (1)"),
    "--horizon": ("model", "horizon", int, "steps to forecast (no default: required for a new "
                  "run)"),
    "--lookback": ("model", "lookback", int, "steps the model reads (default 24)"),
    "--model": ("model", "model", str, "rnn (default) | segrnn: segments, parallel decoder"),
    "--segment": ("model", "segment", int, "segrnn: steps per segment (default 12)"),
    "--cell": ("model", "cell", str, "rnn | gru | lstm (default lstm)"),
    "--layers": ("model", "layers", int, "recurrent layers (default 1)"),
    "--hidden": ("model", "hidden", int, "hidden units (default 64)"),
    "--dropout": ("model", "dropout", float, "dropout before the head and between layers"),
    "--head": ("model", "head", str, "direct | seq2seq (default direct)"),
    "--window-norm": ("model", "window_norm", str, "last | mean | none; with --model segrnn: "
                      "last | segment | none (default last)"),
    "--loss": ("model", "loss", str, "mse | mae without quantiles (default mse)"),
    "--backend": ("model", "backend", str, "auto | fused | reference"),
    **{flag: ("train", field, kind, text) for flag, (field, kind, text)
       in training_flags("windows", FORECASTER_DEFAULT_EPOCHS).items()},
}


def register(subparsers) -> None:
    from rnnkit.forecast.run import ForecastConfig

    parser = subparsers.add_parser(
        "forecast", help="train a forecaster on a CSV column, predict, backtest",
        description=__doc__.splitlines()[0],
        epilog=examples("rnnkit forecast train sales.csv --target Sales --horizon 12",
                        "rnnkit forecast backtest runs/forecast-sales",
                        "rnnkit forecast predict runs/forecast-sales --history 48"))
    commands = parser.add_subparsers(dest="forecast_command", metavar="COMMAND")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    train = commands.add_parser(
        "train", help="train a forecaster",
        description="Train a recurrent forecaster of one CSV column (--target) for the next "
                    "--horizon steps from the --lookback steps before, on a chronological "
                    "train / validation / test split, scaled on the training part only.",
        epilog=examples("rnnkit forecast train sales.csv --target Sales --horizon 12",
                        "rnnkit forecast train load.csv --target load --covariates temp,hour "
                        "--horizon 24 --lookback 168 --quantiles 0.1,0.5,0.9",
                        "rnnkit forecast train --resume runs/forecast-sales --epochs 40"))
    train.add_argument("data", nargs="?", metavar="DATA.csv", help="a CSV file with a header")
    train.add_argument("--target", help="the column to forecast (no default: required for a "
                       "new run)")
    train.add_argument("--covariates", default="", metavar="A,B",
                       help="other columns the model reads (past values only; default: none)")
    train.add_argument("--quantiles", default=None, metavar="Q,Q,...",
                       help="forecast these quantiles with the pinball loss, e.g. 0.1,0.5,0.9 "
                            "(default: none, a point forecast)")
    train.add_argument("--sort", action="store_true", help="sort the rows by time first")
    train.add_argument("--out", metavar="RUN", help="run folder (default runs/forecast-<file>)")
    train.add_argument("--resume", metavar="RUN",
                       help="continue this run exactly (default: start a new run)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    launch.add_arguments(train)
    defaults = ForecastConfig().to_dict()  # shown in --help (None: not given, for --resume)
    for name, (section, key, kind, text) in TRAIN_FLAGS.items():
        train.add_argument(name, type=kind, default=None,
                           help=with_default(text, defaults[section][key], percent=True))
    train.set_defaults(handler=run_train)

    predict = commands.add_parser(
        "predict", help="forecast the steps after the series' end",
        description="Forecast the steps after the end of the series (the training CSV or "
                    "--data), written as a CSV with the quantile bands and a PNG plot.",
        epilog=examples("rnnkit forecast predict runs/forecast-sales",
                        "rnnkit forecast predict runs/forecast-sales --data sales-2024.csv "
                        "--horizon 6 --out next.csv"))
    predict.add_argument("run", metavar="RUN")
    predict.add_argument("--horizon", type=int, default=0, help="default: the trained horizon")
    predict.add_argument("--data", help="the series to continue (default: the training CSV)")
    predict.add_argument("--out", help="forecast CSV (default RUN/forecast.csv)")
    predict.add_argument("--plot", help="PNG plot (default: the CSV's name with .png)")
    predict.add_argument("--history", type=int, default=0, help="past points in the plot")
    predict.add_argument("--checkpoint", choices=("best", "last"), default="best",
                         help=CHECKPOINT_HELP)
    int8flag.add_argument(predict)
    predict.set_defaults(handler=run_predict)

    backtest = commands.add_parser(
        "backtest", help="rolling-origin scores vs baselines",
        description="Score a trained forecaster at every origin of the test (or validation) "
                    "part: MAE, RMSE, MAPE and sMAPE beside the last-value and seasonal-naive "
                    "baselines, and the quantiles' coverage.",
        epilog=examples("rnnkit forecast backtest runs/forecast-sales",
                        "rnnkit forecast backtest runs/forecast-sales --part val --json"))
    backtest.add_argument("run", metavar="RUN")
    backtest.add_argument("--data", help="the series (default: the training CSV)")
    backtest.add_argument("--part", choices=("test", "val"), default="test",
                          help="the part of the series to score")
    backtest.add_argument("--stride", type=int, default=None,
                          help="steps between origins (default: the run's --stride)")
    backtest.add_argument("--json", action="store_true", help="print one JSON object")
    backtest.add_argument("--checkpoint", choices=("best", "last"), default="best",
                          help=CHECKPOINT_HELP)
    backtest.set_defaults(handler=run_backtest)

    bench = commands.add_parser(
        "benchmark", help="the ETT long-horizon protocol (ETTh1/ETTh2/ETTm1/ETTm2)",
        description="Train and test a segment-recurrent forecaster on the ETT protocol: all "
        "columns in and out, 12/4/4 months, scaling from the training rows, MSE and MAE over "
        "every test window, beside published figures for the same lookback.",
        epilog=examples("rnnkit forecast benchmark ETTh1.csv --horizons 96 --seeds 1",
                        "rnnkit forecast benchmark ETTm1.csv --lookback 336 --jobs 2"))
    bench.add_argument("data", metavar="ETT.csv", help="ETTh1.csv, ETTh2.csv, ETTm1.csv, ...")
    bench.add_argument("--protocol", choices=("ett",), default="ett", help="the protocol")
    bench.add_argument("--model", choices=("segrnn",), default="segrnn", help="the model")
    bench.add_argument("--lookback", type=int, default=96, help="96 (default), 336 or 720")
    bench.add_argument("--horizons", default="96,192,336,720", metavar="H,H,...",
                       help="forecast horizons, one run per horizon and seed")
    bench.add_argument("--seeds", default="3", metavar="N|S,S,...",
                       help="a count (seeds 1..N) or a list of seeds (default 3)")
    bench.add_argument("--cell", default="gru", help="gru | lstm | rnn (default gru)")
    bench.add_argument("--segment", type=int, default=48, help="steps per segment (48)")
    bench.add_argument("--hidden", type=int, default=256, help="hidden size (256)")
    bench.add_argument("--dropout", type=float, default=0.5, help="before the output map")
    bench.add_argument("--norm", default="last", help="last | revin | none (default last)")
    bench.add_argument("--no-channel-embedding", action="store_true")
    bench.add_argument("--decoder", default="factored", help="factored | layer (same result)")
    bench.add_argument("--epochs", type=int, default=6, help="epochs per run (6)")
    bench.add_argument("--batch-size", type=int, default=256, help="windows per batch")
    bench.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    bench.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    bench.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                       help="learning-rate schedule")
    bench.add_argument("--time-budget", type=float, default=0.0, metavar="S",
                       help="also stop a run after the epoch that passes S seconds (0: off)")
    bench.add_argument("--threads", type=int, default=0, help="torch threads per run (0: "
                       "torch's)")
    bench.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in "
                       "its own process (the same results)")
    bench.add_argument("--backend", default="auto", help="auto | fused | reference")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=run_benchmark)


def parse_quantiles(text: str) -> list[float]:
    try:
        quantiles = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        quantiles = []
    if not quantiles:  # (an empty list silently meant "no quantiles")
        raise UserError(f"--quantiles must be numbers separated by commas, e.g. 0.1,0.5,0.9; "
                        f"got {text!r}")
    return quantiles


def run_train(args) -> int:
    from rnnkit.forecast.run import ForecastConfig, resume_forecast, start_forecast

    status = launch.launched(args)
    if status is not None:
        return status
    progress = not args.no_progress and sys.stderr.isatty()
    given = {name: getattr(args, name[2:].replace("-", "_")) for name in TRAIN_FLAGS}
    given = {name: value for name, value in given.items() if value is not None}
    if args.resume:
        if args.data:
            raise UserError("--resume continues the run with its saved data and model; give "
                            "only budgets (--max-steps, --epochs, --time-budget, --patience)")
        # every setting given: budgets change, the others must repeat their saved values
        overrides = {".".join(TRAIN_FLAGS[name][:2]): value for name, value in given.items()}
        covariates = [c.strip() for c in args.covariates.split(",") if c.strip()]
        if args.target is not None:
            overrides["data.target"] = args.target
        if covariates:
            overrides["data.covariates"] = covariates
        if args.sort:
            overrides["data.sort"] = True
        if args.quantiles is not None:
            overrides["model.quantiles"] = parse_quantiles(args.quantiles)
        trainer = resume_forecast(args.resume, overrides, progress=progress)
        launch.quiet_unless_rank_zero()
        say(args, f"Resuming {args.resume} at step {trainer.progress.step}; budget "
                  f"{budget_text(trainer.train)}")
        settings_dump(args, "rnnkit forecast train", trainer.run_dir)
    else:
        if not args.data:
            raise UserError("give the series: rnnkit forecast train DATA.csv --target COLUMN "
                            "--horizon H")
        # the checks in the order that saves a second run: the file, its columns, --horizon
        from rnnkit.forecast.series import check_column, read_header

        header = read_header(args.data)
        if not args.target:
            raise UserError(f"--target is required: the column of {args.data} to forecast; its "
                            f"columns are {', '.join(repr(c) for c in header)}")
        check_column(header, args.target, "--target", args.data)
        for covariate in (c.strip() for c in args.covariates.split(",")):
            if covariate:
                check_column(header, covariate, "--covariates", args.data)
        if "--horizon" not in given:
            raise UserError("--horizon is required: how many steps to forecast")
        config = ForecastConfig()
        config.data.path, config.data.target, config.data.sort = args.data, args.target, args.sort
        config.data.covariates = [c.strip() for c in args.covariates.split(",") if c.strip()]
        if args.quantiles is not None:
            config.model.quantiles = parse_quantiles(args.quantiles)
        if args.out:
            config.out = args.out
        for name, value in given.items():
            section, key, _, _ = TRAIN_FLAGS[name]
            setattr(getattr(config, section), key, value)
        trainer = start_forecast(config, progress=progress)
        launch.quiet_unless_rank_zero()
        data = trainer.task.data
        split = data.split
        frequency = data.series.frequency.describe() if data.series.frequency else "equally " \
            "spaced"
        say(args, f"{data.series.path}: {len(data.series):,} {frequency} points of "
                  f"{', '.join(data.series.columns)}"
                  + (f" ({data.series.filled} filled)" if data.series.filled else ""))
        say(args, f"Split in time order: train {split.train_end}, validation "
                  f"{split.val_end - split.train_end}, test {split.length - split.val_end} "
                  f"points; scaling ({config.data.scale}) fitted on the training part only; "
                  f"{len(data.origins['train'])} training windows")
        say(args, f"Budget {budget_text(trainer.train)}; run folder {trainer.run_dir} "
                  f"(config.json holds every setting; -v prints them)")
        settings_dump(args, "rnnkit forecast train", trainer.run_dir)
    result = trainer.fit()
    metrics = result.last_metrics
    print(f"Stopped at step {result.steps} ({result.stopped.replace('_', ' ')}); best "
          f"validation loss {result.best_score:.5f}"
          + (f", last validation MAE {metrics['val_mae_scaled']:.4f} (scaled)" if metrics
             else ""))
    if result.stopped == "interrupted":
        print(f"Continue with: rnnkit forecast train --resume {result.run_dir}")
        return 130
    print(f"Backtest with: rnnkit forecast backtest {result.run_dir}")
    return 0


def _series_for(run, data_path: str | None):
    from rnnkit.forecast.series import read_series

    data = run.config.data
    path = data_path or data.path
    return read_series(path, data.target, time_col=data.time_col, covariates=data.covariates,
                       fill=data.fill, sort=data.sort, what="--data" if data_path else "DATA")


def run_predict(args) -> int:
    from rnnkit.forecast.evaluate import forecast_future
    from rnnkit.forecast.output import plot_forecast, write_forecast_csv
    from rnnkit.forecast.run import load_forecast

    if args.history < 0:
        raise UserError(f"--history must be a number of past points >= 0 (0: four horizons, "
                        f"at least 48), got {args.history}")
    run = load_forecast(args.run, args.checkpoint)
    int8flag.apply(args, run.model)
    series = _series_for(run, args.data)
    horizon = args.horizon or run.config.model.horizon
    forecast = forecast_future(run, series, horizon)
    run_dir = Path(args.run)
    csv_path = Path(args.out) if args.out else run_dir / "forecast.csv"
    png_path = Path(args.plot) if args.plot else csv_path.with_suffix(".png")
    for path in (csv_path, png_path):
        if not path.parent.is_dir():
            raise UserError(f"cannot write {path}: the folder {path.parent} does not exist")
    write_forecast_csv(csv_path, series, forecast)
    plot_forecast(png_path, series, forecast, args.history)
    quantiles = forecast["quantiles"]
    print("\t".join(["step", "time", "forecast", *(f"q{q:g}" for q in quantiles)]))
    for step, value in enumerate(forecast["point"]):
        when = series.format_time(forecast["times"][step]) if forecast["times"] else "-"
        bands = [f"{band[step]:.4g}" for band in quantiles.values()]
        print("\t".join([str(step + 1), when, f"{value:.4g}", *bands]))
    print(f"Wrote {csv_path} and {png_path}")
    return 0


def run_backtest(args) -> int:
    from rnnkit.forecast.evaluate import METHODS, backtest
    from rnnkit.forecast.run import load_forecast

    if args.stride is not None and args.stride < 1:
        raise UserError(f"--stride must be a positive number of steps, got {args.stride}")
    run = load_forecast(args.run, args.checkpoint)
    series = _series_for(run, args.data)
    result = backtest(run, series, part=args.part, stride=args.stride)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Backtest on the {result['part']} part: {result['windows']} rolling origin(s) from "
          f"{result['first_origin']} to {result['last_origin']}, horizon {result['horizon']}, "
          f"season {result['season']}")
    print(f"{'method':<16}{'MAE':>12}{'RMSE':>12}{'MAPE %':>10}{'sMAPE %':>10}"
          f"{'MAE scaled':>12}{'MSE scaled':>12}")
    for method in METHODS:
        m = result[method]
        print(f"{method.replace('_', '-'):<16}{m['mae']:>12.4g}{m['rmse']:>12.4g}"
              f"{m['mape']:>10.2f}{m['smape']:>10.2f}{m['mae_scaled']:>12.4f}"
              f"{m['mse_scaled']:>12.4f}")
    if "quantile_coverage" in result:
        shares = ", ".join(f"{q}: {share:.2f}" for q, share in
                           result["quantile_coverage"].items())
        print(f"Share of actual values below each quantile: {shares}")
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise UserError(f"{flag} must be positive whole numbers separated by commas, got "
                        f"{text!r}")
    return values


def run_benchmark(args) -> int:
    from rnnkit.forecast.ett import NOT_AT_96, BenchmarkConfig, run_benchmark
    from rnnkit.forecast.segrnn import SegRNNConfig

    seeds = _int_list(args.seeds, "--seeds")
    if "," not in args.seeds:
        seeds = list(range(1, seeds[0] + 1))
    for name in ("epochs", "batch_size", "lookback", "jobs"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive whole number, got "
                            f"{getattr(args, name)}")
    if args.lr <= 0 or args.time_budget < 0 or args.weight_decay < 0:
        raise UserError("--lr must be positive; --time-budget and --weight-decay >= 0")
    model = SegRNNConfig(segment=args.segment, hidden=args.hidden, cell=args.cell,
                         dropout=args.dropout, norm=args.norm, backend=args.backend,
                         channel_embedding=not args.no_channel_embedding,
                         decoder=args.decoder,
                         lookback=args.lookback)
    config = BenchmarkConfig(lookback=args.lookback,
                             horizons=_int_list(args.horizons, "--horizons"), seeds=seeds,
                             model=model, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, weight_decay=args.weight_decay,
                             schedule=args.schedule, time_budget=args.time_budget,
                             threads=args.threads)

    def report(horizon, seed, row):
        if not args.json:
            print(f"  horizon {horizon} seed {seed} epoch {row['epoch']}: train MSE "
                  f"{row['train_mse']:.4f}, validation MSE {row['val_mse']:.4f} "
                  f"({row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    result = run_benchmark(args.data, config, report, jobs=args.jobs)
    if args.json:
        print(json.dumps(result))
        return 0
    borders = result["borders"]
    print(f"{result['data']}: ETT protocol, {len(result['columns'])} channels in and out, "
          f"lookback {result['lookback']}; rows train {borders['train']}, validation "
          f"{borders['val']}, test {borders['test']} (windows read back into the part before); "
          f"standardised with the training rows' mean and deviation")
    print(f"{'horizon':>7}{'seed':>6}{'MSE':>9}{'MAE':>9}{'windows':>9}{'best ep':>9}"
          f"{'train s':>9}")
    for row in result["results"]:
        print(f"{row['horizon']:>7}{row['seed']:>6}{row['mse']:>9.4f}{row['mae']:>9.4f}"
              f"{row['test_windows']:>9}{row['best_epoch']:>9}{row['train_seconds']:>9.0f}")
    published = result["published"]
    names = list(published)
    print(f"\nMean over seeds [min, max] beside published figures (MSE / MAE, lookback "
          f"{result['lookback']}):")
    print(f"{'horizon':>7}  {'rnnkit segrnn MSE':<24}{'MAE':<24}"
          + "".join(f"{name:>16}" for name in names))
    for row in result["summary"]:
        horizon = str(row["horizon"])
        cells = []
        for name in names:
            figures = published[name]["figures"].get(horizon)
            cells.append(f"{figures['mse']:.3f} / {figures['mae']:.3f}" if figures else "-")
        print(f"{row['horizon']:>7}  "
              f"{row['mse']:.4f} [{row['mse_min']:.4f}, {row['mse_max']:.4f}]    "
              f"{row['mae']:.4f} [{row['mae_min']:.4f}, {row['mae_max']:.4f}]    "
              + "".join(f"{cell:>16}" for cell in cells))
    for name in names:
        print(f"  {name}: {published[name]['source']}")
    if names and result["lookback"] == 96:
        print(f"  {NOT_AT_96}")
    elif not names:
        print(f"  No published figures are stored for {result['data']} at lookback "
              f"{result['lookback']}.")
    return 0
