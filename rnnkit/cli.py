"""The ``rnnkit`` command. Each subcommand lives in ``rnnkit.commands.<name>``.

A command module exposes ``register(subparsers)``, which adds its parser and sets
``handler=function(args) -> int``. User errors are raised as :class:`rnnkit.errors.UserError`
and printed here as one line with exit status 2; only this layer prints.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rnnkit import __version__
from rnnkit.errors import UserError

COMMAND_MODULES = (
    "rnnkit.commands.demo",
    "rnnkit.commands.longdep", "rnnkit.commands.gradflow", "rnnkit.commands.report",
    "rnnkit.commands.train", "rnnkit.commands.sample", "rnnkit.commands.eval",
    "rnnkit.commands.bench", "rnnkit.commands.export",
    "rnnkit.commands.forecast", "rnnkit.commands.classify", "rnnkit.commands.explore",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent networks (RNN, GRU, LSTM) you can read, run fast and look inside.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc's launcher
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
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
        print(f"rnnkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130


def _leave_process_group() -> None:
    if "rnnkit.train.distributed" in sys.modules:
        sys.modules["rnnkit.train.distributed"].shutdown()


if __name__ == "__main__":
    sys.exit(main())
