"""Forecast errors, the seasonal-naive and last-value baselines, and the rolling backtest.

The backtest forecasts from every origin of the held-out tail (each one a window whose
targets lie in the test part) and scores the model and both baselines on exactly the same
windows: MAE, RMSE, MAPE and sMAPE in the series' own units, plus MAE and MSE in the
training-part standardised units that the ETDataset papers report (arXiv 2012.07436).
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.errors import UserError
from rnnkit.forecast.run import ForecastData, ForecastRun
from rnnkit.forecast.series import Series
from rnnkit.forecast.windows import Scaler, make_windows

METHODS = ("model", "seasonal_naive", "last_value")


def error_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """MAE, RMSE, MSE, MAPE and sMAPE (percent) over all windows and steps.

    MAPE leaves out actual values of zero (where it is undefined) and says how many.
    """
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    error = predicted - actual
    nonzero = np.abs(actual) > 1e-12
    mape = float(np.mean(np.abs(error[nonzero] / actual[nonzero])) * 100) if nonzero.any() \
        else float("nan")
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.where(denominator > 1e-12, 2 * np.abs(error) / np.maximum(denominator, 1e-12), 0)
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "mse": float(np.mean(error ** 2)), "mape": mape, "smape": float(np.mean(ratio) * 100),
            "mape_skipped_zeros": int((~nonzero).sum())}


def last_value(target: np.ndarray, origins: list[int], horizon: int) -> np.ndarray:
    """``(N, H)``: every step of a window forecast as the last value before its origin."""
    return np.repeat(target[np.asarray(origins) - 1][:, None], horizon, axis=1)


def seasonal_naive(target: np.ndarray, origins: list[int], horizon: int, season: int):
    """``(N, H)``: step ``o + h`` forecast as the value one season (or whole seasons) before
    it that is already known at origin ``o``: ``y[o + h - season * (h // season + 1)]``."""
    steps = np.arange(horizon)
    index = np.asarray(origins)[:, None] + steps - season * (steps // season + 1)
    if (index < 0).any():
        raise UserError(f"the seasonal-naive baseline needs {season} points before the first "
                        f"origin; the series is too short for --season {season}")
    return target[index]


@torch.no_grad()
def model_forecast(run: ForecastRun, scaled: np.ndarray, origins: list[int],
                   batch_size: int = 512) -> np.ndarray:
    """``(N, H, Q)`` in scaled units from the windows ending just before each origin."""
    config = run.config.model
    outputs = []
    for start in range(0, len(origins), batch_size):
        inputs, _ = make_windows(scaled, origins[start:start + batch_size], config.lookback,
                                 config.horizon)
        outputs.append(run.model(inputs).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, config.horizon, config.outputs))


def backtest(run: ForecastRun, series: Series | None = None, part: str = "test",
             stride: int | None = None) -> dict:
    """Rolling-origin scores of the model and the baselines on ``part`` of the series."""
    config = run.config
    if stride is not None:
        config.data.stride = stride
    data = ForecastData(config, series=series, scaler=run.scaler)
    origins = data.origins[part]
    if not origins:
        raise UserError(f"the {part} part of {data.series.path} has no full window of "
                        f"--horizon {config.model.horizon}; nothing to backtest")
    horizon, target = config.model.horizon, data.series.target
    actual = target[np.asarray(origins)[:, None] + np.arange(horizon)]  # (N, H)
    scaled = model_forecast(run, data.scaled, origins)[:, :, config.model.median_index]
    forecasts = {
        "model": run.scaler.inverse_target(scaled),
        "seasonal_naive": seasonal_naive(target, origins, horizon, data.season),
        "last_value": last_value(target, origins, horizon),
    }
    result = {"part": part, "windows": len(origins), "horizon": horizon,
              "season": data.season, "first_origin": _when(data.series, origins[0]),
              "last_origin": _when(data.series, origins[-1]), "stride": config.data.stride}
    scaled_actual = run.scaler.transform_target(actual)
    for method, predicted in forecasts.items():
        metrics = error_metrics(actual, predicted)
        scaled_error = run.scaler.transform_target(predicted) - scaled_actual
        metrics["mae_scaled"] = float(np.mean(np.abs(scaled_error)))
        metrics["mse_scaled"] = float(np.mean(scaled_error ** 2))
        result[method] = metrics
    if config.model.quantiles:
        result["quantile_coverage"] = _coverage(run, data, origins, actual)
    return result


def _coverage(run: ForecastRun, data: ForecastData, origins, actual) -> dict:
    """The share of actual values below each predicted quantile (ideally the quantile)."""
    bands = run.scaler.inverse_target(model_forecast(run, data.scaled, origins))  # (N, H, Q)
    return {str(q): float(np.mean(actual <= bands[:, :, i]))
            for i, q in enumerate(run.config.model.quantiles)}


def _when(series: Series, index: int) -> str | int:
    return series.format_time(series.times[index]) if series.times else index


@torch.no_grad()
def forecast_future(run: ForecastRun, series: Series, horizon: int) -> dict:
    """The next ``horizon`` steps after the end of ``series``, in the series' units.

    Returns ``point`` ``(H,)``, ``quantiles`` ``{q: (H,)}`` and ``times`` (or None).
    """
    config = run.config.model
    if horizon < 1 or horizon > config.horizon:
        raise UserError(f"--horizon {horizon}: this model forecasts 1 to {config.horizon} steps "
                        f"(its training --horizon)")
    if len(series) < config.lookback:
        raise UserError(f"{series.path} has {len(series)} points; the model reads the last "
                        f"{config.lookback} (--lookback)")
    scaled = Scaler.transform(run.scaler, series.values[-config.lookback:])
    inputs = torch.from_numpy(scaled.astype(np.float32)).unsqueeze(0)  # (1, L, C)
    output = run.scaler.inverse_target(run.model(inputs)[0, :horizon].numpy())  # (H, Q)
    quantiles = {q: output[:, i] for i, q in enumerate(config.quantiles)}
    return {"point": output[:, config.median_index], "quantiles": quantiles,
            "times": series.future_times(horizon)}
