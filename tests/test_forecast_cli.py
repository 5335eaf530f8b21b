"""Forecasting end to end: a sine wave forecast within a tight error, exact resume, the
``rnnkit forecast train | backtest | predict`` commands and their one-line errors."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.forecast.evaluate import backtest
from rnnkit.forecast.run import ForecastConfig, load_forecast, resume_forecast, start_forecast
from rnnkit.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def write_sine(tmp_path, count=320, period=16):
    lines = ["step,value"] + [f"{i},{math.sin(2 * math.pi * i / period):.6f}"
                              for i in range(count)]
    path = tmp_path / "sine.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_monthly(tmp_path, years=8):
    lines = ["Month,Passengers"]
    for i in range(years * 12):
        value = 100 + 2 * i + 20 * math.sin(2 * math.pi * i / 12)
        lines.append(f"{1950 + i // 12}-{i % 12 + 1:02d},{value:.1f}")
    path = tmp_path / "monthly.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sine_config(path, out, steps):
    config = ForecastConfig()
    config.data.path, config.data.target, config.out = str(path), "value", str(out)
    config.model.lookback, config.model.horizon, config.model.hidden = 32, 8, 32
    config.train.max_steps, config.train.eval_every, config.train.lr = steps, 50, 1e-2
    config.train.log_every = 10
    config.train.schedule = "constant"  # (resume extends the budget a cosine would decay over)
    return config


def test_a_sine_wave_is_forecast_within_a_tight_error(tmp_path):
    trainer = start_forecast(sine_config(write_sine(tmp_path), tmp_path / "run", 150))
    trainer.fit()
    result = backtest(load_forecast(tmp_path / "run"))
    assert result["windows"] == 64 - 8 + 1  # every origin of the 64-point test part
    assert result["model"]["mae"] < 0.06  # amplitude 1
    assert result["model"]["mae"] < result["last_value"]["mae"] / 10


def test_resume_continues_exactly(tmp_path):
    path = write_sine(tmp_path, count=160)
    straight = start_forecast(sine_config(path, tmp_path / "straight", 20))
    straight.fit()
    first = start_forecast(sine_config(path, tmp_path / "resumed", 10))
    first.fit()
    resumed = resume_forecast(tmp_path / "resumed", {"max_steps": 20})
    assert resumed.progress.step == 10
    resumed.fit()
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6)
    steps = [record["step"] for record in read_metrics(tmp_path / "resumed")
             if record["kind"] == "train"]
    assert steps == [10, 20]


def rnnkit(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)


def test_train_backtest_predict_with_quantiles(tmp_path):
    data = write_monthly(tmp_path)
    trained = rnnkit("forecast", "train", data, "--target", "Passengers", "--horizon", "6",
                     "--lookback", "12", "--test-size", "12", "--val-size", "12",
                     "--quantiles", "0.1,0.5,0.9", "--hidden", "16", "--max-steps", "30",
                     "--head", "seq2seq", "--out", tmp_path / "run", "--threads", "1",
                     cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "train 72, validation 12, test 12 points" in trained.stdout
    assert "Stopped at step 30 (max steps)" in trained.stdout
    tested = rnnkit("forecast", "backtest", tmp_path / "run", "--json", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    result = json.loads(tested.stdout)
    assert result["windows"] == 7 and result["season"] == 12
    assert result["first_origin"] == "1957-01"
    for method in ("model", "seasonal_naive", "last_value"):
        assert set(result[method]) >= {"mae", "rmse", "mape", "smape", "mse_scaled"}
    assert set(result["quantile_coverage"]) == {"0.1", "0.5", "0.9"}
    predicted = rnnkit("forecast", "predict", tmp_path / "run", "--horizon", "4", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    with open(tmp_path / "run" / "forecast.csv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Month", "Passengers_forecast", "Passengers_q0.1", "Passengers_q0.5",
                       "Passengers_q0.9"]
    assert [row[0] for row in rows[1:]] == ["1958-01", "1958-02", "1958-03", "1958-04"]
    assert rows[1][1] == rows[1][3]  # the point forecast is the median
    assert (tmp_path / "run" / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    too_far = rnnkit("forecast", "predict", tmp_path / "run", "--horizon", "7", cwd=tmp_path)
    assert too_far.returncode == 2 and "forecasts 1 to 6 steps" in too_far.stderr


@pytest.mark.parametrize("flags, message", [
    (["--target", "Sales"], "no column 'Sales' (--target); the columns found are 'Month', "
                            "'Passengers'"),
    (["--target", "Passengers", "--lookback", "60"], "--lookback 60 is longer than the series "
                                                     "allows: with --horizon 6 a training window "
                                                     "reads at most"),
    (["--target", "Passengers", "--fill", "sometimes"], "--fill must be one of"),
    (["--target", "Passengers", "--quantiles", "0.9,0.1"], "--quantiles must be increasing"),
])
def test_bad_input_is_one_line(tmp_path, capsys, flags, message):
    data = write_monthly(tmp_path)
    status = main(["forecast", "train", str(data), "--horizon", "6", "--out",
                   str(tmp_path / "run"), "--no-progress", *flags])
    error = capsys.readouterr().err
    assert status == 2
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.skipif(not (SHARED / "AirPassengers.csv").exists(), reason="no shared data")
def test_air_passengers_reads_as_a_monthly_series():
    from rnnkit.forecast.series import read_series

    series = read_series(SHARED / "AirPassengers.csv", "#Passengers")
    assert len(series) == 144 and series.frequency.season() == 12
    assert series.target[:3].tolist() == [112.0, 118.0, 132.0]
