"""Writing a forecast: a CSV (time, forecast, one column per quantile) and a PNG plot of
the recent history, the forecast and the band between the outer quantiles."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from rnnkit.forecast.series import Series


def _atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_forecast_csv(path: str | Path, series: Series, forecast: dict) -> Path:
    """One row per step: ``time`` (or ``step``), ``forecast``, then ``q0.1`` ... columns."""
    path = Path(path)
    target = series.columns[0]
    times = forecast["times"]
    quantiles = forecast["quantiles"]
    temporary = _atomic_path(path)
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        first = series.time_column or "step"
        writer.writerow([first, f"{target}_forecast", *(f"{target}_q{q:g}" for q in quantiles)])
        for step, value in enumerate(forecast["point"]):
            when = series.format_time(times[step]) if times else len(series) + step
            writer.writerow([when, f"{value:.6g}", *(f"{band[step]:.6g}" for band in
                                                     quantiles.values())])
    os.replace(temporary, path)
    return path


def plot_forecast(path: str | Path, series: Series, forecast: dict, history: int = 0) -> Path:
    """History (the last ``history`` points, default four horizons' worth) and the forecast,
    with the band between the lowest and the highest quantile shaded."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    path = Path(path)
    horizon = len(forecast["point"])
    history = history or max(4 * horizon, 48)
    shown = series.target[-history:]
    if forecast["times"] and series.times:
        past_x = series.times[-len(shown):]
        future_x = forecast["times"]
    else:
        past_x = np.arange(len(series) - len(shown), len(series))
        future_x = np.arange(len(series), len(series) + horizon)
    figure, axes = pyplot.subplots(figsize=(9, 4), dpi=100)
    axes.plot(past_x, shown, color="#1f4e79", linewidth=1.4, label="history")
    joined_x = [past_x[-1], *future_x]
    joined_y = [shown[-1], *forecast["point"]]
    axes.plot(joined_x, joined_y, color="#c0392b", linewidth=1.6, label="forecast")
    quantiles = forecast["quantiles"]
    if len(quantiles) >= 2:
        levels = sorted(quantiles)
        low, high = quantiles[levels[0]], quantiles[levels[-1]]
        axes.fill_between(future_x, low, high, color="#c0392b", alpha=0.2,
                          label=f"{levels[0]:g}–{levels[-1]:g} quantiles")
    axes.set_title(f"{series.columns[0]}: {horizon}-step forecast")
    axes.set_ylabel(series.columns[0])
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    figure.autofmt_xdate()
    figure.tight_layout()
    temporary = _atomic_path(path)
    figure.savefig(temporary, format="png")
    pyplot.close(figure)
    os.replace(temporary, path)
    return path
