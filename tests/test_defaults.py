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
