"""Forecast data: reading CSV series, every bad input's message, the chronological split,
scaling fitted on the training part only, windows, baselines and error metrics."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from rnnkit.errors import UserError
from rnnkit.forecast.evaluate import error_metrics, last_value, seasonal_naive
from rnnkit.forecast.model import Forecaster, ForecasterConfig, pinball_loss
from rnnkit.forecast.run import ForecastConfig, ForecastData
from rnnkit.forecast.series import read_series
from rnnkit.forecast.windows import Scaler, check_windows, chronological_split, make_windows


def write_csv(tmp_path, lines, name="series.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def monthly(count, start_year=2000, value=lambda i: 100 + i):
    lines = ["Month,Sales,Price"]
    for i in range(count):
        year, month = start_year + i // 12, i % 12 + 1
        lines.append(f"{year}-{month:02d},{value(i)},{i * 0.5}")
    return lines


def test_reads_target_covariates_and_monthly_timestamps(tmp_path):
    series = read_series(write_csv(tmp_path, monthly(30)), "Sales", covariates=["Price"])
    assert series.columns == ["Sales", "Price"]
    assert series.values.shape == (30, 2)
    assert series.values[3].tolist() == [103.0, 1.5]
    assert series.time_column == "Month" and series.frequency.describe() == "monthly"
    assert series.frequency.season() == 12
    assert [series.format_time(t) for t in series.future_times(2)] == ["2002-07", "2002-08"]


def test_hourly_timestamps_give_a_daily_season(tmp_path):
    lines = ["date,OT"] + [f"2016-07-01 {h:02d}:00:00,{h}" for h in range(24)]
    series = read_series(write_csv(tmp_path, lines), "OT")
    assert series.frequency.describe() == "hourly" and series.frequency.season() == 24


def test_missing_column_lists_the_columns_found(tmp_path):
    with pytest.raises(UserError, match=r"no column 'Passengers' \(--target\); the columns "
                       r"found are 'Month', 'Sales', 'Price'"):
        read_series(write_csv(tmp_path, monthly(5)), "Passengers")
    with pytest.raises(UserError, match="'Cost' .--covariates"):
        read_series(write_csv(tmp_path, monthly(5)), "Sales", covariates=["Cost"])


def test_non_numeric_target_names_its_row(tmp_path):
    lines = monthly(6)
    lines[4] = "2000-04,lots,1.5"
    with pytest.raises(UserError, match=r"row 5, column 'Sales': 'lots' is not a number"):
        read_series(write_csv(tmp_path, lines), "Sales")


def test_unsorted_timestamps_are_refused_unless_sorted(tmp_path):
    lines = monthly(6)
    lines[2], lines[3] = lines[3], lines[2]
    path = write_csv(tmp_path, lines)
    with pytest.raises(UserError, match=r"not in increasing order: row 4 .* --sort"):
        read_series(path, "Sales")
    series = read_series(path, "Sales", sort=True)
    assert series.target.tolist() == [100, 101, 102, 103, 104, 105]


def test_gaps_are_refused_or_filled(tmp_path):
    lines = monthly(8)
    del lines[4]  # 2000-04 missing
    path = write_csv(tmp_path, lines)
    with pytest.raises(UserError, match=r"gap .* 1 monthly step\(s\) missing .*--fill"):
        read_series(path, "Sales")
    linear = read_series(path, "Sales", fill="linear")
    assert len(linear) == 8 and linear.target[3] == pytest.approx(103.0)
    assert linear.filled == 1
    forward = read_series(path, "Sales", fill="forward")
    assert forward.target[3] == 102.0
    assert read_series(path, "Sales", fill="zero").target[3] == 0.0


def test_empty_cells_are_refused_or_filled(tmp_path):
    lines = monthly(6)
    lines[3] = "2000-03,,1.0"
    path = write_csv(tmp_path, lines)
    with pytest.raises(UserError, match=r"row 4, column 'Sales' has no value.*--fill"):
        read_series(path, "Sales")
    assert read_series(path, "Sales", fill="linear").target[2] == pytest.approx(102.0)


def test_duplicate_timestamps_and_bad_dates(tmp_path):
    lines = monthly(5)
    lines[3] = lines[2]
    with pytest.raises(UserError, match="same timestamp"):
        read_series(write_csv(tmp_path, lines), "Sales")
    lines = monthly(5)
    lines[3] = "someday,1,2"
    with pytest.raises(UserError, match=r"row 4, column 'Month': 'someday' is not a date"):
        read_series(write_csv(tmp_path, lines), "Sales", time_col="Month")


def test_split_is_chronological_and_windows_respect_it():
    split = chronological_split(100, 0.2, 0.2)
    assert (split.train_end, split.val_end) == (60, 80)
    origins = check_windows(split, lookback=10, horizon=5)
    assert max(origins["train"]) + 5 <= 60  # no training target past the training cut
    assert min(origins["val"]) == 60 and max(origins["val"]) + 5 <= 80
    assert min(origins["test"]) == 80 and max(origins["test"]) == 95
    values = np.arange(100.0)[:, None]
    inputs, targets = make_windows(values, [60, 61], 10, 5)
    assert inputs[0, :, 0].tolist() == list(range(50, 60))
    assert targets[1].tolist() == list(range(61, 66))


def test_scaling_is_fitted_on_the_training_part_only(tmp_path):
    path = write_csv(tmp_path, monthly(100))
    config = ForecastConfig()
    config.data.path, config.data.target = str(path), "Sales"
    config.model.lookback, config.model.horizon = 6, 3
    data = ForecastData(config)
    train = data.series.target[:60]
    assert data.scaler.center[0] == pytest.approx(train.mean())
    assert data.scaler.scale[0] == pytest.approx(train.std())
    # a wild test part changes nothing in the scaling
    changed = write_csv(tmp_path, monthly(100, value=lambda i: 100 + i if i < 60 else 1e6),
                        name="changed.csv")
    config.data.path = str(changed)
    assert ForecastData(config).scaler == data.scaler
    assert Scaler.fit(np.array([[1.0], [3.0]]), "minmax").scale == [2.0]


def test_horizon_longer_than_the_series_allows():
    split = chronological_split(40, 0.2, 0.2)
    with pytest.raises(UserError, match=r"--lookback 10 is longer than the series allows: with "
                       r"--horizon 20 a training window reads at most 4 points.*24 of the "
                       r"series' 40\); give --lookback 4 or less"):
        check_windows(split, lookback=10, horizon=20)
    with pytest.raises(UserError, match=r"--horizon 24 is longer than the series allows.*"
                       r"24 of the series' 40"):
        check_windows(split, lookback=1, horizon=24)
    with pytest.raises(UserError, match=r"--horizon 10 is longer than the val part \(8"):
        check_windows(split, lookback=4, horizon=10)


@pytest.mark.parametrize("length, horizon", [(40, 3), (100, 7), (200, 20), (150, 29)])
def test_the_longest_lookback_named_is_the_longest_that_fits(length, horizon):
    """The --lookback the error names is exact: it gives a training window, one more gives
    none (a window's inputs and targets lie in the series, its targets in the train part)."""
    split = chronological_split(length, 0.2, 0.2)
    with pytest.raises(UserError, match=r"at most (\d+) points") as raised:
        check_windows(split, lookback=split.train_end, horizon=horizon)
    longest = int(re.search(r"at most (\d+) points", str(raised.value)).group(1))
    origins = check_windows(split, lookback=longest, horizon=horizon)["train"]
    assert origins and min(origins) - longest >= 0 and max(origins) + horizon <= split.train_end
    with pytest.raises(UserError, match=rf"--lookback {longest + 1} is longer"):
        check_windows(split, lookback=longest + 1, horizon=horizon)


def test_baselines_and_metrics_by_hand():
    target = np.arange(30.0)
    assert last_value(target, [10, 20], 3).tolist() == [[9, 9, 9], [19, 19, 19]]
    # season 4: step o+h takes y[o + h - 4 * (h // 4 + 1)]
    assert seasonal_naive(target, [10], 6, 4).tolist() == [[6, 7, 8, 9, 6, 7]]  # last season, again
    metrics = error_metrics(np.array([[100.0, 200.0]]), np.array([[110.0, 180.0]]))
    assert metrics["mae"] == pytest.approx(15.0)
    assert metrics["rmse"] == pytest.approx(math.sqrt(250.0))
    assert metrics["mape"] == pytest.approx(10.0)
    assert metrics["smape"] == pytest.approx(100 * (20 / 210 + 40 / 380) / 2)


def test_pinball_loss_by_hand():
    prediction = torch.tensor([[[1.0, 2.0]]])  # (N=1, H=1, Q=2)
    target = torch.tensor([[1.5]])
    expected = (0.1 * 0.5 + (0.9 - 1.0) * -0.5) / 2  # under the 0.1 quantile, over the 0.9
    assert pinball_loss(prediction, target, [0.1, 0.9]).item() == pytest.approx(expected)


def test_window_norm_makes_the_forecast_follow_the_level():
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(inputs=1, horizon=3, lookback=5, hidden=8,
                                        window_norm="last"))
    x = torch.randn(2, 5, 1)
    shifted = model(x + 10.0) - 10.0
    torch.testing.assert_close(shifted, model(x), atol=1e-4, rtol=0)
