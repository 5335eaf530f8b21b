"""What the training commands print: ``-q`` only the result, the default a few lines (no
settings dump), ``-v`` every setting as TOML that reads back to the run's config.json; for
``train``, ``classify train`` and ``forecast train``, before and after resuming."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.helpers import run_cli
from tests.test_cli_errors import monthly, reviews
from tests.test_lm_helpers import VERSE

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY_LM = ["--cache-dir", "cache", "--hidden", "4", "--embedding", "4", "--layers", "1",
           "--batch-size", "2", "--seq-len", "8", "--no-progress"]
COMMANDS = {
    "train": (["train", "c.txt", *TINY_LM], "c.txt", VERSE * 3, "Stopped at step"),
    "classify": (["classify", "train", "r.tsv", "--embedding", "4", "--hidden", "4",
                  "--no-progress"], "r.tsv", reviews(), "Stopped at step"),
    "forecast": (["forecast", "train", "m.csv", "--target", "value", "--horizon", "3",
                  "--lookback", "12", "--hidden", "4", "--no-progress"], "m.csv", monthly(),
                 "Stopped at step"),
}


def without_none(config: dict) -> dict:
    """config.json as TOML can hold it (TOML has no null: the dump comments those out)."""
    return {key: without_none(value) if isinstance(value, dict) else value
            for key, value in config.items() if value is not None}


@pytest.mark.parametrize("name", COMMANDS)
def test_quiet_default_and_verbose_output(name, tmp_path, monkeypatch, capsys):
    argv, file, content, result = COMMANDS[name]
    monkeypatch.chdir(tmp_path)
    (tmp_path / file).write_text(content, encoding="utf-8")
    outputs = {}
    for level, flags in (("quiet", ["-q"]), ("default", []), ("verbose", ["-v"])):
        run = f"run-{level}"
        status, out, err = run_cli([*flags, *argv, "--max-steps", "2", "--out", run], capsys)
        assert status == 0, err
        outputs[level] = out
        saved = json.loads((tmp_path / run / "config.json").read_text(encoding="utf-8"))
        if level == "quiet":  # the result alone, nothing logged
            assert out.startswith(result), out
            assert not any(line.startswith(("Training the", "Cached", "Corpus"))
                           for line in err.splitlines()), err
        elif level == "default":  # a few lines, and no setting dump
            assert "-v prints" in out and "[train]" not in out and "resolved" not in out, out
            assert "budget 2 steps" in out.lower() and "the default" not in out, out
            assert len(out.split(result)[0].splitlines()) <= 4, out
        else:  # the whole configuration, as TOML that reads back to what was saved
            lines = out.splitlines()
            start = next(i for i, line in enumerate(lines) if line.startswith("# rnnkit "))
            toml = []
            for line in lines[start + 1:]:  # the dump: tables, keys, comments, blank lines
                if not re.fullmatch(r"\[\w+\]|# \w+ not set|\w+ = .*|", line):
                    break
                toml.append(line)
            dump = tomllib.loads("\n".join(toml))
            assert dump == without_none(saved)
    assert len(outputs["quiet"]) < len(outputs["default"]) < len(outputs["verbose"])
    # -q after the command's name, on a resume: still the result alone
    resume = ["classify", "train"] if name == "classify" else \
        ["forecast", "train"] if name == "forecast" else ["train"]
    status, out, err = run_cli([*resume, "--resume", "run-default", "--max-steps", "4", "-q"],
                               capsys)
    assert status == 0 and out.startswith(result) and "Resumed" not in err, (out, err)
    status, out, err = run_cli([*resume, "--resume", "run-verbose", "--max-steps", "4", "-v"],
                               capsys)
    assert status == 0 and out.startswith("Resuming run-verbose at step 2; budget 4 steps"), out
    assert "[train]" in out and "max_steps = 4" in out


def test_quiet_and_verbose_together_are_refused(capsys):
    status, out, err = run_cli(["-q", "train", "c.txt", "-v"], capsys)
    assert status == 2 and out == ""
    assert err == "rnnkit: error: choose one of -q (quiet) and -v (verbose)\n"


def rnnkit_subprocess(*args, cwd):
    """The ``rnnkit`` command in a child process, stdout a pipe (not a terminal)."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=300)


def test_train_on_a_folder_lists_and_reads_only_its_txt_files(tmp_path, capsys):
    folder = tmp_path / "corpus"
    (folder / "more").mkdir(parents=True)
    (folder / "a.txt").write_text(VERSE * 2, encoding="utf-8")
    (folder / "more" / "b.txt").write_text(VERSE, encoding="utf-8")
    (folder / "README.md").write_text("# A corpus\nNot part of it: ~~~ ###\n", encoding="utf-8")
    (folder / "licence.rst").write_text("Public domain.\n", encoding="utf-8")
    status, out, err = run_cli(["train", folder, *TINY_LM[2:], "--cache-dir", tmp_path / "cache",
                                "--max-steps", "1", "--out", tmp_path / "run"], capsys)
    assert status == 0, err
    assert (f"Corpus folder {folder}: reading 2 .txt file(s): a.txt, more/b.txt; not read: "
            f"README.md, licence.rst\n") in err
    # the tokens are the two .txt files' characters, and no character only README.md has
    train, valid = map(int, re.search(r"([\d,]+) training and ([\d,]+) validation tokens",
                                      out).groups())
    assert train + valid == len(VERSE) * 3
    vocabulary = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert "~" not in json.dumps(vocabulary["tokenizer"], ensure_ascii=False)


def test_train_without_a_budget_runs_the_stated_default_with_a_line_per_evaluation(tmp_path):
    """No --max-steps / --epochs / --time-budget: 10 epochs, said at start; stdout a pipe: one
    line per evaluation, its numbers those of metrics.jsonl."""
    from rnnkit.train.config import DEFAULT_EPOCHS
    from rnnkit.train.metrics import read_metrics

    (tmp_path / "c.txt").write_text(VERSE * 3, encoding="utf-8")
    done = rnnkit_subprocess("train", "c.txt", *TINY_LM, "--log-every", "1", "--out", "run",
                             cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert DEFAULT_EPOCHS == 10
    assert ("budget 10 epochs (the default: no --max-steps, --epochs or --time-budget given)"
            in done.stdout.splitlines()[0])
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert saved["train"]["epochs"] == 10.0
    records = read_metrics(tmp_path / "run")
    evals = [r for r in records if r["kind"] == "eval"]
    lines = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert len(evals) == 10 and len(lines) == 10  # evaluated once per epoch
    steps_per_epoch = evals[0]["step"]
    assert f"Stopped at step {10 * steps_per_epoch} (epochs)" in done.stdout
    previous = 0
    for record, line in zip(evals, lines):
        window = [r["loss"] for r in records
                  if r["kind"] == "train" and previous < r["step"] <= record["step"]]
        previous = record["step"]
        assert line.startswith(f"step {record['step']} ({record['step'] / steps_per_epoch:.2f} "
                               f"epochs): train loss {sum(window) / len(window):.4f}, "
                               f"validation loss {record['val_loss']:.4f}"), line


def test_eval_says_how_many_tokens_of_the_last_partial_stream_it_did_not_score(tmp_path, capsys):
    (tmp_path / "c.txt").write_text(VERSE * 3, encoding="utf-8")
    status, _, err = run_cli(["train", tmp_path / "c.txt", *TINY_LM[2:], "--cache-dir",
                              tmp_path / "cache", "--max-steps", "1", "--out", tmp_path / "run"],
                             capsys)
    assert status == 0, err
    text = VERSE + "ALL: speak."  # char level: one token per character
    (tmp_path / "held.txt").write_text(text, encoding="utf-8")
    length = len(text)
    assert length % 4 != 0
    argv = ["eval", tmp_path / "run", tmp_path / "held.txt", "--batch-size", "4"]
    status, out, err = run_cli([*argv, "--json"], capsys)
    assert status == 0, err
    result = json.loads(out)
    # 4 streams of length // 4 tokens; each stream's first token has no context
    assert result["dropped_tokens"] == length % 4
    assert result["tokens"] + result["dropped_tokens"] + 4 == length
    status, out, err = run_cli(argv, capsys)
    assert status == 0, err
    assert out.splitlines()[1] == (
        f"note: the last {length % 4} of the file's {length} tokens were not scored (they do "
        f"not fill one of the 4 equal streams evaluation reads; --batch-size 1 scores every "
        f"token but the first)")
    status, out, err = run_cli([*argv[:-1], "1", "--json"], capsys)
    assert json.loads(out)["dropped_tokens"] == 0 and json.loads(out)["tokens"] == length - 1
    status, out, err = run_cli(argv[:-1] + ["1"], capsys)
    assert len(out.splitlines()) == 1 and "note" not in out
