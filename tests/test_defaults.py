"""How a command's own defaults sit over the dataclasses' (``RUN_DEFAULTS`` in
rnnkit/train/config.py): a partial config takes them, a saved run keeps its values, and layer
norm given as a default holds only where the cell's family offers it."""

from __future__ import annotations

import pytest

from rnnkit.train import config as config_module
from rnnkit.train.config import RunConfig


@pytest.fixture
def layer_norm_by_default(monkeypatch):
    monkeypatch.setitem(config_module.RUN_DEFAULTS, "model", {"layer_norm": True})
    monkeypatch.setitem(config_module.RUN_DEFAULTS, "train", {"lr": 5e-3})


def test_a_partial_config_takes_the_commands_defaults(layer_norm_by_default):
    config = RunConfig.from_sources(None, {"data.path": "x.txt"})
    assert config.model.layer_norm is True and config.train.lr == 5e-3
    config = RunConfig.from_sources(None, {"data.path": "x.txt", "train.lr": 1e-3})
    assert config.train.lr == 1e-3


@pytest.mark.parametrize("cell, layer_norm", [("gru", True), ("rnn", False), ("indrnn", False)])
def test_a_default_layer_norm_holds_only_where_the_cell_offers_it(cell, layer_norm,
                                                                  layer_norm_by_default):
    config = RunConfig.from_sources(None, {"data.path": "x.txt", "model.cell": cell})
    assert config.model.layer_norm is layer_norm


def test_a_saved_run_keeps_its_values(layer_norm_by_default):
    config = RunConfig.from_sources(None, {"data.path": "x.txt", "model.layer_norm": False})
    assert config.model.layer_norm is False
    saved = RunConfig.from_dict(config.to_dict())  # a saved run names every setting
    assert saved.model.layer_norm is False and saved.train.lr == 5e-3


def test_no_layer_norm_on_the_command_line():
    from rnnkit.cli import build_parser
    from rnnkit.commands.train import overrides_from

    args = build_parser().parse_args(["train", "x.txt", "--no-layer-norm"])
    assert overrides_from(args)["model.layer_norm"] is False
    args = build_parser().parse_args(["train", "x.txt"])
    assert "model.layer_norm" not in overrides_from(args)


@pytest.mark.parametrize("cell, layer_norm", [("lstm", True), ("rnn", False)])
def test_rnnkit_train_runs_with_the_settings_chosen_on_validation(cell, layer_norm, tmp_path,
                                                                  capsys):
    """The values benchmarks/select_defaults.py chose (select_defaults_train.json) are what a
    run given no settings saves and says at its start."""
    import json

    from tests.helpers import run_cli
    from tests.test_lm_helpers import VERSE, write_corpus

    corpus = write_corpus(tmp_path, VERSE)
    status, out, err = run_cli(["train", corpus, "--cell", cell, "--hidden", "8",
                                "--max-steps", "2", "--batch-size", "2", "--seq-len", "8",
                                "--out", tmp_path / "run", "--cache-dir", tmp_path / "cache",
                                "--no-progress"], capsys)
    assert status == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["model"]["layer_norm"] is layer_norm and saved["model"]["dropout"] == 0.2
    assert {key: saved["train"][key] for key in ("optimizer", "lr", "weight_decay", "schedule",
                                                  "min_lr", "warmup")} == {
        "optimizer": "adamw", "lr": 5e-3, "weight_decay": 0.05, "schedule": "cosine",
        "min_lr": 5e-5, "warmup": 50}
    assert "adamw lr 0.005, cosine to 5e-05" in out
    assert ("(layer norm)" in out) is layer_norm


def test_forecast_train_decays_along_a_cosine_over_60_epochs_by_default():
    from rnnkit.forecast.run import ForecastConfig
    from rnnkit.train.config import FORECASTER_DEFAULT_EPOCHS

    train = ForecastConfig().train
    assert (train.schedule, train.min_lr, train.lr, FORECASTER_DEFAULT_EPOCHS) == (
        "cosine", 1e-5, 2e-3, 60.0)


def test_classify_train_saves_a_moving_average_of_the_weights_by_default(tmp_path, capsys):
    """--ema 0.999, chosen on NSMC's validation split (classify_nsmc_screen600_ema.json): a run
    given no settings saves it, and a run saved before it existed keeps its plain weights."""
    import json

    from rnnkit.classify.run import ClassifyConfig
    from tests.helpers import run_cli
    from tests.test_classify_cli import write_reviews

    data = write_reviews(tmp_path / "train.tsv", 60, seed=1)
    status, _, err = run_cli(["classify", "train", data, "--max-steps", "2", "--out",
                              tmp_path / "run", "--no-progress"], capsys)
    assert status == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["train"]["ema"] == 0.999
    del saved["train"]["ema"]
    assert ClassifyConfig.from_dict(saved).train.ema == 0.0
