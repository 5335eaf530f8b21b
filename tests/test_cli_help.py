"""``--help`` that teaches: every subcommand has a description and examples (which parse),
and every option that takes a value shows its default (or is required)."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from rnnkit.cli import _subcommand_parsers, build_parser

ROOT = build_parser()
PARSERS = {parser.prog: parser for parser in (ROOT, *_subcommand_parsers(ROOT))}


def options_without_a_default(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    missing = []
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.required:
            continue  # positionals, switches (--greedy, -q, --help), required options
        if action.help == argparse.SUPPRESS:
            continue
        shown = formatter._expand_help(action) if action.help else ""
        if not re.search(r"\bdefault\b", shown, re.IGNORECASE):
            missing.append(f"{'/'.join(action.option_strings)}: {shown!r}")
    return missing


@pytest.mark.parametrize("prog", PARSERS)
def test_every_option_shows_its_default(prog):
    assert options_without_a_default(PARSERS[prog]) == []


@pytest.mark.parametrize("prog", PARSERS)
def test_every_command_has_a_description_and_examples_that_parse(prog):
    parser = PARSERS[prog]
    assert parser.description and len(parser.description) > 20, prog
    assert parser.epilog and parser.epilog.startswith("examples:\n"), prog
    commands = [line.strip() for line in parser.epilog.splitlines()[1:] if line.strip()]
    assert commands and all(command.startswith(prog) for command in commands), commands
    for command in commands:  # each example is a command line the parser accepts
        words = shlex.split(command.split("  #")[0])[1:]
        try:
            args = ROOT.parse_args(words)
        except SystemExit as error:
            raise AssertionError(f"{command!r} does not parse") from error
        assert getattr(args, "handler", None) is not None, command
    text = parser.format_help()
    for command in commands:  # shown line for line, not rewrapped
        assert f"  {command}\n" in text + "\n", (command, text)


def test_defaults_shown_for_training_flags_are_the_configurations():
    from rnnkit.classify.run import ClassifyConfig
    from rnnkit.forecast.run import ForecastConfig
    from rnnkit.train.config import RunConfig

    expected = {"rnnkit train": ("--hidden", RunConfig().model.hidden),
                "rnnkit classify train": ("--hidden", ClassifyConfig().model.hidden),
                "rnnkit forecast train": ("--batch-size", ForecastConfig().train.batch_size)}
    for prog, (option, value) in expected.items():
        action = next(a for a in PARSERS[prog]._actions if option in a.option_strings)
        assert re.search(rf"\(default:? {value}\b", action.help), (prog, action.help)
