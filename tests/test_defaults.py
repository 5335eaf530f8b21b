"""The defaults of `rnnkit train` and `rnnkit forecast train`, chosen on validation data
(benchmarks/select_defaults.py): what a run given no settings trains, and how to turn the
language model's layer norm off or get it where the cell has none."""

from __future__ import annotations

import pytest

from rnnkit.forecast.run import ForecastConfig
from rnnkit.train.config import FORECASTER_DEFAULT_EPOCHS, RunConfig


def test_a_language_model_run_given_no_settings_takes_the_chosen_defaults():
    config = RunConfig.from_sources(None, {"data.path": "x.txt"})
    model, train = config.model, config.train
    assert (model.cell, model.layers, model.hidden, model.layer_norm, model.dropout) == (
        "lstm", 2, 256, True, 0.2)
    assert (train.lr, train.weight_decay, train.schedule, train.min_lr, train.warmup) == (
        5e-3, 0.05, "cosine", 5e-5, 50)


@pytest.mark.parametrize("cell, layer_norm", [("gru", True), ("rnn", False), ("indrnn", False)])
def test_layer_norm_is_on_by_default_only_where_the_cell_offers_it(cell, layer_norm):
    config = RunConfig.from_sources(None, {"data.path": "x.txt", "model.cell": cell})
    assert config.model.layer_norm is layer_norm


def test_no_layer_norm_and_a_saved_config_keep_their_value():
    config = RunConfig.from_sources(None, {"data.path": "x.txt", "model.layer_norm": False})
    assert config.model.layer_norm is False
    saved = RunConfig.from_dict(config.to_dict())  # a saved run names every setting
    assert saved.model.layer_norm is False and saved.train.lr == 5e-3


def test_the_cli_flag_turns_layer_norm_off():
    from rnnkit.cli import build_parser
    from rnnkit.commands.train import overrides_from

    args = build_parser().parse_args(["train", "x.txt", "--no-layer-norm"])
    assert overrides_from(args)["model.layer_norm"] is False
    args = build_parser().parse_args(["train", "x.txt"])
    assert "model.layer_norm" not in overrides_from(args)


def test_a_forecaster_given_no_budget_decays_along_a_cosine_over_60_epochs():
    train = ForecastConfig().train
    assert (train.schedule, train.min_lr, train.batch_size, train.lr) == ("cosine", 1e-5, 32,
                                                                         2e-3)
    assert FORECASTER_DEFAULT_EPOCHS == 60
