"""Help that teaches: every option's default shown, and examples kept as written.

``rnnkit.cli`` gives every parser :class:`TeachingFormatter`. It appends ``(default: X)`` to
an option whose help does not already say its default (a flag that takes no value, a
required option and one whose default is None or empty need no such note, or must say in
words what leaving them out does), and it keeps indented blocks of the description and the
epilog (the examples) line for line while wrapping prose as argparse does.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

SAYS_DEFAULT = re.compile(r"\(default|default:")


def default_text(value) -> str | None:
    """A default as the help shows it, or None where it cannot be shown as a value."""
    if value is None or value is argparse.SUPPRESS or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    if isinstance(value, Path):
        return str(value)
    return str(value)


def with_default(text: str, value, percent: bool = False) -> str:
    """``text`` saying its default ``value`` (a trailing ``(value)`` becomes
    ``(default: value)``); as it is when it says one already or the value has no text.
    ``percent``: the text is an argparse help string, so a ``%`` added is written ``%%``."""
    shown = default_text(value)
    if SAYS_DEFAULT.search(text) or shown is None:
        return text
    if percent:
        shown = shown.replace("%", "%%")
    if text.endswith(f"({shown})"):
        return text[: -len(f"({shown})")] + f"(default: {shown})"
    return f"{text} (default: {shown})" if text else f"default: {shown}"


def takes_value(action: argparse.Action) -> bool:
    """An option given with a value (not a switch, not help/version)."""
    return bool(action.option_strings) and action.nargs != 0 and action.help != argparse.SUPPRESS


def examples(*commands: str) -> str:
    """An epilog of example commands, one per line."""
    return "examples:\n" + "\n".join(f"  {command}" for command in commands)


class TeachingFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if takes_value(action) and not action.required and "%(default)" not in text:
            return with_default(text, action.default, percent=True)
        return text

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.strip("\n").split("\n\n"):
            lines = block.splitlines()
            if len(lines) > 1 and all(line.startswith("  ") for line in lines[1:]):
                blocks.append("\n".join(indent + line for line in lines))  # a heading + lines
            else:  # prose (a docstring's ``code`` marks read as plain text here)
                blocks.append(super()._fill_text(block.replace("``", ""), width, indent))
        return "\n\n".join(blocks)


BACKEND_HELP = ("where the layers run: fused (the C++ kernels), reference (PyTorch operations) "
                "or auto (fused when the kernels are built)")
CHECKPOINT_HELP = "best (the lowest validation loss) or last (the latest saved)"
