"""The ``rnnkit`` command. Each subcommand lives in ``rnnkit.commands.<name>``.

A command module exposes ``register(subparsers)``, which adds its parser and sets
``handler=function(args) -> int``. User errors are raised as :class:`rnnkit.errors.UserError`
and printed here as one line with exit status 2; only this layer prints.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from rnnkit import __version__
from rnnkit.commands.helptext import TeachingFormatter, examples
from rnnkit.commands.output import NORMAL, QUIET, VERBOSE
from rnnkit.errors import UserError

COMMAND_MODULES = (
    "rnnkit.commands.demo", "rnnkit.commands.data",
    "rnnkit.commands.longdep", "rnnkit.commands.gradflow", "rnnkit.commands.report",
    "rnnkit.commands.train", "rnnkit.commands.sample", "rnnkit.commands.eval",
    "rnnkit.commands.bench", "rnnkit.commands.export",
    "rnnkit.commands.forecast", "rnnkit.commands.classify", "rnnkit.commands.explore",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent networks (RNN, GRU, LSTM) you can read, run fast and look inside.",
        epilog=examples("rnnkit demo", "rnnkit data get tinyshakespeare",
                        "rnnkit train data/tinyshakespeare.txt --time-budget 600",
                        "rnnkit sample runs/corpus-char --prime 'ROMEO:'",
                        "rnnkit classify train reviews.tsv",
                        "rnnkit forecast train sales.csv --target Sales --horizon 12",
                        "rnnkit explore runs/corpus-char --open"),
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    add_verbosity(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    parser.formatter_class = TeachingFormatter
    for command in _subcommand_parsers(parser):  # -q / -v also after the command's name
        add_verbosity(command, default=argparse.SUPPRESS)
        command.formatter_class = TeachingFormatter  # every default shown, examples as written
    return parser


def add_verbosity(parser: argparse.ArgumentParser, default) -> None:
    """-q / -v; a subcommand's copies default to SUPPRESS so they never undo the main one's."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="quiet: only the result, warnings and errors (no settings, no "
                            "progress lines)")
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="also print every setting at the start of a training run")


def _subcommand_parsers(parser: argparse.ArgumentParser):
    """Every parser below ``parser`` (commands, and subcommands such as ``classify train``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases listed once
                yield child
                yield from _subcommand_parsers(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc's launcher
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    if args.quiet and args.verbose:  # one before the command, the other after it
        print("rnnkit: error: choose one of -q (quiet) and -v (verbose)", file=sys.stderr)
        return 2
    args.verbosity = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        status = int(args.handler(args) or 0)
        _leave_process_group()
        return status
    except UserError as error:
        # one write, the newline with it: the ranks of a group share stderr, unbuffered, and
        # print's separate newline could land after another rank's whole line
        sys.stderr.write(f"rnnkit: error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rnnkit: interrupted\n")
        return 130


def _leave_process_group() -> None:
    if "rnnkit.train.distributed" in sys.modules:
        sys.modules["rnnkit.train.distributed"].shutdown()


def run() -> None:
    """The ``rnnkit`` program: :func:`main`, then exit with its status.

    A process that joined a group of ranks ends without the interpreter's teardown
    (``os._exit``, after flushing its streams and logs; every file rnnkit writes is closed
    by then). In about one run in thirty, a rank that had finished its work and left the
    group aborted during that teardown inside torch's gloo backend ("terminate called
    without an active exception", SIGABRT with no Python frame left), and the launcher then
    reported a finished run as failed.
    """
    status = main()
    distributed = sys.modules.get("rnnkit.train.distributed")
    if distributed is not None and distributed.joined_a_group():
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
