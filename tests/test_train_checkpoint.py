"""Checkpoints and run folders: round trip, atomic writes under SIGKILL, corrupt files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rnnkit.data.tokenizers import train_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel, ModelConfig
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.config import RunConfig
from rnnkit.train.runs import checkpoint_config, load_run

ROOT = Path(__file__).resolve().parents[1]


def test_round_trip_tags_and_pruning(tmp_path):
    tensors = {"weight": torch.arange(6.0).reshape(2, 3)}
    state = {"step": 3, "rng": torch.get_rng_state(), "losses": [1.5, 2.0]}
    save_checkpoint(tmp_path, tensors, {"kind": "x"}, state, step=3, tags=("last", "best"))
    save_checkpoint(tmp_path, {"weight": tensors["weight"] + 1}, {"kind": "x"}, state, step=5)
    best = load_checkpoint(tmp_path, "best")
    last = load_checkpoint(tmp_path, "last")
    assert torch.equal(best.tensors["weight"], tensors["weight"])
    assert torch.equal(last.tensors["weight"], tensors["weight"] + 1)
    assert last.trainer_state["losses"] == [1.5, 2.0]
    assert torch.equal(last.trainer_state["rng"], state["rng"])
    assert last.config["kind"] == "x" and last.config["format_version"] == 1
    save_checkpoint(tmp_path, tensors, {"kind": "x"}, state, step=7, tags=("last", "best"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000007"]


def _lm_run(tmp_path, tie=True):
    text = "to be or not to be\n"
    tokenizer = train_tokenizer("char", [text])
    config = RunConfig()
    config.model = ModelConfig(vocab_size=tokenizer.vocab_size, hidden=8, embedding=8,
                               layers=1, tie_weights=tie)
    torch.manual_seed(0)
    model = LanguageModel(config.model)
    save_checkpoint(tmp_path, model.state_dict(), checkpoint_config(config, tokenizer), {},
                    step=1, tags=("last",))
    return model, tokenizer


def test_load_run_gives_the_same_model(tmp_path):
    model, tokenizer = _lm_run(tmp_path)
    loaded, loaded_tokenizer, config = load_run(tmp_path)
    tokens = torch.tensor(tokenizer.encode("not to be")).unsqueeze(1)
    model.eval()
    assert torch.equal(loaded(tokens)[0], model(tokens)[0])
    assert loaded.decoder.weight is loaded.embedding.weight  # tying survives the round trip
    assert loaded_tokenizer.vocab == tokenizer.vocab and config.model.hidden == 8


def test_not_a_run_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not an rnnkit run folder"):
        load_run(tmp_path / "empty")
    _lm_run(tmp_path / "run")
    folder = (tmp_path / "run" / "last").resolve()
    (folder / "config.json").write_text('{"kind": "language_model", "run": ')
    with pytest.raises(UserError, match=r"config.json is corrupt: not valid JSON"):
        load_run(tmp_path / "run")
    _lm_run(tmp_path / "run2")
    folder = (tmp_path / "run2" / "last").resolve()
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"model.safetensors is corrupt"):
        load_run(tmp_path / "run2")
    _lm_run(tmp_path / "run3")
    folder = (tmp_path / "run3" / "last").resolve()
    (folder / "trainer_state.pt").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"trainer_state.pt is corrupt"):
        load_checkpoint(tmp_path / "run3")
    config = json.loads((folder / "config.json").read_text())
    config["run"]["model"]["hidden"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="config.json is corrupt: --tie-weights needs"):
        load_run(tmp_path / "run3")
    config["run"]["model"].update(hidden=8, layers=2)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="do not fit the saved configuration"):
        load_run(tmp_path / "run3")


WRITER = textwrap.dedent(
    """
    import sys, torch
    from rnnkit.train.checkpoint import save_checkpoint
    step = 0
    while True:
        step += 1
        weight = torch.full((512, 512), float(step))
        save_checkpoint(sys.argv[1], {"weight": weight}, {"step": step},
                        {"step": step, "data": torch.full((256, 256), float(step))}, step=step)
        if step == 1:
            print("ready", flush=True)
    """
)


def test_checkpoint_of_a_killed_process_is_whole(tmp_path):
    """SIGKILL while writing checkpoints in a loop: the last one always loads, consistent."""
    for delay in (0.05, 0.23, 0.41):
        run = tmp_path / f"run-{delay}"
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(run)], stdout=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        checkpoint = load_checkpoint(run, "last")
        step = checkpoint.config["step"]
        assert checkpoint.trainer_state["step"] == step
        assert torch.equal(checkpoint.tensors["weight"], torch.full((512, 512), float(step)))
