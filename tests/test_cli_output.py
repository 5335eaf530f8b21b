"""What the training commands print: ``-q`` only the result, the default a few lines (no
settings dump), ``-v`` every setting as TOML that reads back to the run's config.json; for
``train``, ``classify train`` and ``forecast train``, before and after resuming."""

from __future__ import annotations

import json
import re

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
