"""The ETT long-horizon protocol (borders, scaler, windows, every test window scored) and the
segment-recurrent forecaster (shapes, normalisation, a tiny overfit), and the CLI verb."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.errors import UserError
from rnnkit.forecast.ett import ett_borders, evaluate, gather, read_ett, window_origins
from rnnkit.forecast.segrnn import SegRNN, SegRNNConfig
from rnnkit.forecast.windows import Split
from tests.helpers import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def write_ett(tmp_path, rows=14_500, columns=("A", "B", "OT"), name="ETTh1.csv", step_hours=1.0):
    """An ETT-shaped CSV: ``date`` then value columns; row i of column j holds a known value."""
    start = datetime(2016, 7, 1)
    lines = ["date," + ",".join(columns)]
    for i in range(rows):
        when = start + timedelta(hours=i * step_hours)
        values = [math.sin(2 * math.pi * i / 24 + j) + 0.001 * i * (j + 1)
                  for j in range(len(columns))]
        lines.append(when.strftime("%Y-%m-%d %H:%M:%S") + "," + ",".join(f"{v:.6f}"
                                                                      for v in values))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_borders_are_those_of_the_ett_loaders():
    # Dataset_ETT_hour: border2s = [12*30*24, 12*30*24 + 4*30*24, 12*30*24 + 8*30*24]
    assert ett_borders(1) == Split(length=14_400, train_end=8_640, val_end=11_520)
    # Dataset_ETT_minute: the same months at four rows an hour
    assert ett_borders(4) == Split(length=57_600, train_end=34_560, val_end=46_080)


def test_scaler_is_fitted_on_the_training_rows_only(tmp_path):
    path = write_ett(tmp_path)
    protocol = read_ett(path)
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    train = raw[:8_640]
    assert protocol.columns == ["A", "B", "OT"]
    assert protocol.values.shape == (14_400, 3)  # the rows after month 20 are not used
    np.testing.assert_allclose(protocol.scaler.center, train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(protocol.scaler.scale, train.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(protocol.scaled, (raw[:14_400] - train.mean(0)) / train.std(0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lookback,horizon", [(96, 96), (96, 720), (336, 192)])
def test_windows_never_cross_a_border_backwards(tmp_path, lookback, horizon):
    protocol = read_ett(write_ett(tmp_path))
    origins = window_origins(protocol, lookback, horizon)
    # hand-computed from the loaders: s_begin in range(border2 - border1 - L - H + 1)
    assert origins["train"] == list(range(lookback, 8_640 - horizon + 1))
    assert origins["val"] == list(range(8_640, 11_520 - horizon + 1))
    assert origins["test"] == list(range(11_520, 14_400 - horizon + 1))
    rows = torch.arange(14_400, dtype=torch.float32)[:, None]  # each cell holds its row
    for part, (low, high) in {"train": (0, 8_640), "val": (8_640 - lookback, 11_520),
                              "test": (11_520 - lookback, 14_400)}.items():
        inputs, targets = gather(rows, torch.tensor(origins[part]), lookback, horizon)
        assert inputs.min() == low and targets.max() == high - 1
        start = {"train": 0, "val": 8_640, "test": 11_520}[part]
        assert targets.min() >= start  # targets lie in their own part
        assert (inputs.max(dim=1).values < targets.min(dim=1).values).all()
    train_inputs, train_targets = gather(rows, torch.tensor(origins["train"]), lookback,
                                         horizon)
    assert max(train_inputs.max(), train_targets.max()) < 8_640  # no held-out row in training


class Persistence(nn.Module):
    """Every step forecast as the window's last value."""

    def __init__(self, horizon):
        super().__init__()
        self.horizon = horizon

    def forward(self, x):
        return x[:, -1:, :].expand(-1, self.horizon, -1)


@pytest.mark.parametrize("batch_size", [1000, 256, 7])
def test_every_test_window_is_scored_with_equal_weight(batch_size):
    generator = torch.Generator().manual_seed(0)
    scaled = torch.randn(14_400, 3, generator=generator)
    lookback, horizon = 96, 192
    origins = list(range(11_520, 14_400 - horizon + 1))  # 2,689: no batch size divides it evenly
    result = evaluate(Persistence(horizon), scaled, origins, lookback, horizon, batch_size)
    data = scaled.double().numpy()
    errors = np.stack([data[o:o + horizon] - data[o - 1] for o in origins])  # (N, H, C)
    assert result["windows"] == 2_689
    assert result["mse"] == pytest.approx(float(np.mean(errors ** 2)), rel=1e-6)
    assert result["mae"] == pytest.approx(float(np.mean(np.abs(errors))), rel=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("norm", ["last", "revin", "segment", "none"])
def test_segrnn_shapes(cell, norm):
    config = SegRNNConfig(channels=3, lookback=24, horizon=36, segment=12, hidden=16, cell=cell,
                          norm=norm, backend="reference")
    model = SegRNN(config)
    assert (model.segments_in, model.segments_out) == (2, 3)
    output = model(torch.randn(5, 24, 3))
    assert output.shape == (5, 36, 3)
    output.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_factored_decoder_equals_running_the_layer_on_every_segment(cell):
    torch.manual_seed(0)
    config = SegRNNConfig(channels=3, lookback=24, horizon=48, segment=12, hidden=10, cell=cell,
                          dropout=0.0, backend="reference")
    layer = SegRNN(config).double()
    factored = SegRNN(SegRNNConfig(**{**config.to_dict(), "decoder": "factored"})).double()
    layer.config.decoder = "layer"
    factored.load_state_dict(layer.state_dict())
    x = torch.randn(4, 24, 3, dtype=torch.float64)
    torch.testing.assert_close(factored(x), layer(x), rtol=1e-12, atol=1e-12)
    grads = []
    for model in (layer, factored):
        model.zero_grad()
        (model(x) ** 2).sum().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_last_value_subtraction_makes_the_forecast_shift_with_the_level():
    torch.manual_seed(0)
    model = SegRNN(SegRNNConfig(channels=2, lookback=16, horizon=8, segment=8, hidden=8,
                                dropout=0.0, backend="reference")).eval()
    x = torch.randn(4, 16, 2)
    shifted = model(x + 10.0) - 10.0
    torch.testing.assert_close(shifted, model(x), atol=1e-4, rtol=0)


def test_segment_norm_forecasts_the_last_segment_plus_what_the_network_adds():
    torch.manual_seed(0)
    model = SegRNN(SegRNNConfig(channels=2, lookback=24, horizon=36, segment=12, hidden=8,
                                dropout=0.0, norm="segment", backend="reference")).eval()
    x = torch.randn(4, 24, 2)
    with torch.no_grad():  # the network adds nothing: the last season, repeated
        model.head[1].weight.zero_()
        model.head[1].bias.zero_()
        torch.testing.assert_close(model(x), x[:, 12:].repeat(1, 3, 1))
        model.head[1].bias.fill_(0.5)
        torch.testing.assert_close(model(x), x[:, 12:].repeat(1, 3, 1) + 0.5)
    model = SegRNN(SegRNNConfig(channels=2, lookback=24, horizon=36, segment=12, hidden=8,
                                dropout=0.0, norm="segment", backend="reference")).eval()
    season = torch.randn(1, 12, 2)  # a seasonal profile added to every year of the window
    shifted = model(x + season.repeat(1, 2, 1)) - season.repeat(1, 3, 1)
    torch.testing.assert_close(shifted, model(x), atol=1e-5, rtol=0)


def test_channels_differ_only_through_the_channel_embedding():
    torch.manual_seed(0)
    model = SegRNN(SegRNNConfig(channels=2, lookback=16, horizon=8, segment=8, hidden=8,
                                dropout=0.0, backend="reference")).eval()
    x = torch.randn(3, 16, 1).expand(-1, -1, 2)  # the same series in both channels
    output = model(x)
    assert not torch.allclose(output[..., 0], output[..., 1])
    with torch.no_grad():
        model.channel.copy_(model.channel[:1].expand(2, -1))
    torch.testing.assert_close(model(x)[..., 0], model(x)[..., 1])


def test_segment_length_must_divide_lookback_and_horizon():
    with pytest.raises(UserError, match="--horizon 100 is not a whole number of --segment 48"):
        SegRNN(SegRNNConfig(lookback=96, horizon=100, segment=48))
    with pytest.raises(UserError, match="--lookback 90"):
        SegRNN(SegRNNConfig(lookback=90, horizon=96, segment=48))


@pytest.mark.fused
def test_segrnn_overfits_a_small_set_on_the_fused_path():
    torch.manual_seed(0)
    steps = torch.arange(200, dtype=torch.float32)
    series = torch.stack([torch.sin(steps / 4), torch.cos(steps / 7)], dim=1)  # (200, 2)
    origins = torch.arange(16, 200 - 8 + 1, 12)
    inputs, targets = gather(series, origins, 16, 8)
    model = SegRNN(SegRNNConfig(channels=2, lookback=16, horizon=8, segment=4, hidden=32,
                                dropout=0.0, backend="fused"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        loss = nn.functional.mse_loss(model(inputs), targets)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-3 < first


def test_benchmark_cli_json(tmp_path, capsys):
    path = write_ett(tmp_path)
    status, out, err = run_cli(["forecast", "benchmark", path, "--lookback", "48", "--horizons",
                                "24,48", "--seeds", "1", "--epochs", "1", "--segment", "24",
                                "--hidden", "8", "--backend", "reference", "--json"], capsys)
    assert status == 0, err
    result = json.loads(out)
    assert [(r["horizon"], r["seed"]) for r in result["results"]] == [(24, 1), (48, 1)]
    assert all({"horizon", "seed", "mse", "mae"} <= row.keys() for row in result["results"])
    assert [r["test_windows"] for r in result["results"]] == [2_880 - 24 + 1, 2_880 - 48 + 1]
    assert result["borders"] == {"train": [0, 8_640], "val": [8_592, 11_520],
                                 "test": [11_472, 14_400]}
    assert all(r["mse"] < 1.0 for r in result["results"])  # better than forecasting the mean
    assert result["published"] == {}  # no published figures at lookback 48


def test_benchmark_cli_errors(tmp_path, capsys):
    short = write_ett(tmp_path, rows=2_000, name="short.csv")
    status, _, err = run_cli(["forecast", "benchmark", short], capsys)
    assert status == 2 and "uses the first 14,400" in err and "Traceback" not in err
    path = write_ett(tmp_path)
    status, _, err = run_cli(["forecast", "benchmark", path, "--horizons", "100"], capsys)
    assert status == 2 and "--horizon 100 is not a whole number of --segment 48" in err
    status, _, err = run_cli(["forecast", "benchmark", path, "--seeds", "0"], capsys)
    assert status == 2 and "--seeds must be positive" in err


def test_log_scaler_round_trips_and_refuses_non_positive_values():
    from rnnkit.forecast.windows import Scaler

    values = np.array([[100.0], [200.0], [400.0]])
    scaler = Scaler.fit(values, "log")
    logs = np.log(values[:, 0])
    assert scaler.center[0] == pytest.approx(logs.mean())
    assert scaler.scale[0] == pytest.approx(logs.std())
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaler.inverse_target(scaled[:, 0]), values[:, 0])
    np.testing.assert_allclose(scaler.transform_target(values[:, 0]), scaled[:, 0])
    with pytest.raises(UserError, match="--scale log needs positive values"):
        Scaler.fit(np.array([[1.0], [0.0]]), "log")


def test_univariate_forecaster_takes_the_segment_model():
    from rnnkit.forecast.model import Forecaster, ForecasterConfig

    config = ForecasterConfig(inputs=2, horizon=12, lookback=36, model="segrnn", segment=12,
                              cell="gru", hidden=8, backend="reference")
    model = Forecaster(config)
    x = torch.randn(5, 36, 2)
    torch.testing.assert_close(model(x), model.segrnn(x)[:, :, :1])  # the target channel
    assert model(x).shape == (5, 12, 1)
    with pytest.raises(UserError, match="leave out --quantiles"):
        Forecaster(ForecasterConfig(model="segrnn", segment=1, quantiles=[0.1, 0.5, 0.9]))
    with pytest.raises(UserError, match="--horizon 12 is not a whole number of --segment 5"):
        Forecaster(ForecasterConfig(model="segrnn", horizon=12, lookback=35, segment=5))
