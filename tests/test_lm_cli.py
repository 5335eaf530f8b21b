"""``rnnkit train / sample / eval`` through the command line, and every bad input's message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.train.metrics import read_metrics
from tests.test_lm_helpers import VERSE, write_corpus

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "24", "--embedding", "16", "--batch-size", "4", "--seq-len", "16",
        "--eval-every", "10", "--max-steps", "20", "--no-progress"]


def rnnkit(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)


def test_train_sample_eval_in_subprocesses(tmp_path):
    corpus = write_corpus(tmp_path, VERSE * 3)
    valid = write_corpus(tmp_path, VERSE, name="valid.txt")
    trained = rnnkit("-v", "train", corpus, "--val", valid, "--out", tmp_path / "run",
                     "--cache-dir", tmp_path / "cache", *TINY, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "[model]" in trained.stdout and 'cell = "lstm"' in trained.stdout
    assert "Stopped at step 20 (max steps)" in trained.stdout
    sampled = rnnkit("sample", tmp_path / "run", "--prime", "ALL:\n", "--length", "40",
                     "--seed", "7", "--top-k", "5", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("ALL:\n") and len(sampled.stdout) == 5 + 40 + 1
    again = rnnkit("sample", tmp_path / "run", "--prime", "ALL:\n", "--length", "40",
                   "--seed", "7", "--top-k", "5", cwd=tmp_path)
    assert again.stdout == sampled.stdout
    measured = rnnkit("eval", tmp_path / "run", valid, "--json", cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr
    result = json.loads(measured.stdout)
    assert set(result) >= {"loss", "perplexity", "bits_per_token", "tokens"}
    best = min(r["val_loss"] for r in read_metrics(tmp_path / "run") if r["kind"] == "eval")
    assert result["loss"] == pytest.approx(best, abs=1e-6)  # the best checkpoint, same text
    assert result["perplexity"] == pytest.approx(2.718281828 ** result["loss"], rel=1e-6)
    assert result["bits_per_token"] == pytest.approx(result["loss"] / 0.6931471805599453)


def test_word_and_bpe_runs_and_the_cache_is_reused(tmp_path, capsys):
    corpus = write_corpus(tmp_path, VERSE * 4)
    common = ["--cache-dir", str(tmp_path / "cache"), *TINY, "--max-steps", "4"]
    assert main(["train", str(corpus), "--level", "word", "--out", str(tmp_path / "w1"),
                 "--min-count", "2", *common]) == 0
    assert "token cache reused" not in capsys.readouterr().out
    assert main(["train", str(corpus), "--level", "word", "--out", str(tmp_path / "w2"),
                 "--min-count", "2", *common]) == 0
    assert "token cache reused" in capsys.readouterr().out
    assert main(["sample", str(tmp_path / "w2"), "--prime", "Speak, zebra", "--length", "5",
                 "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "zebra are not in the vocabulary and are read as <unk>" in captured.err
    assert captured.out.startswith("Speak, zebra")
    assert main(["train", str(corpus), "--level", "bpe", "--vocab-size", "300", "--out",
                 str(tmp_path / "b"), *common]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "b"), "--prime", "ALL:", "--length", "8",
                 "--beam", "3"]) == 0
    assert capsys.readouterr().out.startswith("ALL:")


def test_config_file_and_flag_overrides(tmp_path, capsys):
    corpus = write_corpus(tmp_path)
    toml = tmp_path / "run.toml"
    toml.write_text(f'[data]\npath = "{corpus}"\ncache_dir = "{tmp_path / "cache"}"\n'
                    '[model]\ncell = "gru"\nhidden = 12\n[train]\nmax_steps = 3\nlr = 0.5\n')
    assert main(["-v", "train", "--config", str(toml), "--lr", "0.01", "--embedding", "8",
                 "--batch-size", "4", "--seq-len", "8", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["cell"] == "gru" and saved["model"]["hidden"] == 12
    assert saved["train"]["lr"] == 0.01 and saved["train"]["max_steps"] == 3
    assert "lr = 0.01" in capsys.readouterr().out


def test_variant_flags_reach_the_layer(tmp_path):
    from rnnkit.train import load_run

    corpus = write_corpus(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(corpus), *TINY, "--max-steps", "3", "--layer-norm", "--zoneout",
                 "0.1", "--zoneout-cell", "0.05", "--recurrent-dropout", "0.2", "--weight-drop",
                 "0.3", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    model, _, config = load_run(out)
    variants = model.rnn.variants
    assert variants.layer_norm and variants.zoneout_hidden == 0.1
    assert variants.zoneout_cell == 0.05 and variants.recurrent_dropout == 0.2
    assert variants.weight_drop == 0.3
    assert "ln_cell_weight_l0" in dict(model.rnn.named_parameters())


def bad_inputs(tmp_path):
    good = write_corpus(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(b"GIF89a\0\0\1")
    (tmp_path / "latin.txt").write_bytes("Ça va très bien\n".encode("latin-1") * 50)
    (tmp_path / "short.txt").write_text("just a few words\n")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / "notrun").mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("model.safetensors", "config.json", "trainer_state.pt"):
        (corrupt / name).write_bytes(b"\x00garbage")
    train = ["train", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r")]
    return [
        (train + [str(tmp_path / "missing.txt")], "corpus .*missing.txt does not exist"),
        (train + [str(tmp_path / "empty.txt")], "empty.txt is empty"),
        (train + [str(tmp_path / "nothing")], "folder .*nothing has no text files"),
        (train + [str(tmp_path / "binary.txt")], "looks binary .*byte offset 6"),
        (train + [str(tmp_path / "latin.txt")],
         "not valid utf-8 text: byte 0xc7 at byte offset 0 .*--encoding"),
        (train + [str(tmp_path / "short.txt")], "shorter than one batch"),
        (train + [str(good), "--lr", "-1"], "--lr must be a finite number >= 0"),
        (train + [str(good), "--dropout", "1.5"], "--dropout must be in \\[0, 1\\)"),
        (train + [str(good), "--val-fraction", "0"], "--val-fraction must be in \\(0, 1\\)"),
        (train + [str(good), "--batch-size", "0"], "--batch-size must be a positive integer"),
        (train + [str(good), "--cell", "lstm2"], "--cell must be one of"),
        (train + [str(good), "--bidirectional"], "bidirectional layers cannot be used"),
        (train + [str(good), "--cell", "gru", "--peephole"], "`peephole` is an LSTM option"),
        (train + [str(good), "--zoneout", "1.2"], "zoneout .* must be a probability in"),
        (train + [str(good), "--cell", "gru", "--zoneout-cell", "0.1"], "needs --cell lstm"),
        (["train", "--resume", str(tmp_path / "notrun")], "notrun is not an rnnkit run folder"),
        (["sample", str(tmp_path / "notrun")], "notrun is not an rnnkit run folder"),
        (["sample", str(corrupt)], "config.json is corrupt"),
        (["eval", str(tmp_path / "missing"), str(good)], "run folder .*missing does not exist"),
        (["sample", str(tmp_path / "notrun"), "--top-p", "2"], "--top-p must be in \\(0, 1\\]"),
        (["sample", str(tmp_path / "notrun"), "--length", "0"], "--length must be at least 1"),
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in bad_inputs(tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("rnnkit: error: ") and "\n" not in err, (argv, err)
        assert re.search(message, err), (argv, err)


def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "latin.txt").write_bytes("déjà vu\n".encode("latin-1"))
    result = rnnkit("train", tmp_path / "latin.txt", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "byte offset 1" in result.stderr and "--encoding" in result.stderr


def test_python_dash_m_rnnkit_is_the_command():
    """``python -m rnnkit`` (what ``torchrun -m rnnkit`` starts) runs the same CLI."""
    result = subprocess.run([sys.executable, "-m", "rnnkit", "--version"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rnnkit ")
    bad = subprocess.run([sys.executable, "-m", "rnnkit", "eval", "no-such-run", "x.txt"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("rnnkit: error:")
