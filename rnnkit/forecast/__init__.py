"""Time-series forecasting with rnnkit's layers: CSV in, a trained forecaster and forecasts
out (``rnnkit forecast train | predict | backtest``)."""

from rnnkit.forecast.model import Forecaster, ForecasterConfig, pinball_loss
from rnnkit.forecast.run import ForecastConfig, SeriesConfig, load_forecast, start_forecast
from rnnkit.forecast.series import Series, read_series
from rnnkit.forecast.windows import Scaler, Split, chronological_split

__all__ = [
    "ForecastConfig",
    "Forecaster",
    "ForecasterConfig",
    "Scaler",
    "Series",
    "SeriesConfig",
    "Split",
    "chronological_split",
    "load_forecast",
    "pinball_loss",
    "read_series",
    "start_forecast",
]
