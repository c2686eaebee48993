"""`devmig --help` without click: the page click prints for the group (devmig.cli.group), at the same width.

Loading click costs more than the rest of `devmig --help`. The page is made here from the same texts (ABOUT and
COMMANDS) laid out as click lays them out: the width is the terminal's (or $COLUMNS) capped at 80, less 2, and never
under 50; paragraphs are wrapped with a 2-space indent; each list has its first column as wide as its widest term
(at most 30) and 2 spaces before the wrapped second. tests/cli/test_quick.py holds it equal to click's page at
every width.
"""

from __future__ import annotations

import os
import sys
import textwrap

from devmig.cli import ABOUT, COMMANDS

USAGE = "Usage: devmig [OPTIONS] COMMAND [ARGS]..."
#: the group's options as click lists them (devmig.cli.group declares them)
OPTIONS: tuple[tuple[str, str], ...] = (
    ("-j, --json", "Output JSON for programs."),
    ("-p, --pretty", "Indent JSON output."),
    ("--debug", "Show a traceback on errors."),
    ("-V, --version", "Show the version and exit."),
    ("-h, --help", "Show this message and exit."),
)
INDENT = 2
MAX_TERM = 30
GAP = 2


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Each paragraph (split at blank lines) joined into one line and wrapped; a blank line between them."""
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("")
        wrapper = textwrap.TextWrapper(width, initial_indent=indent, subsequent_indent=indent, replace_whitespace=False)
        lines += wrapper.wrap(" ".join(paragraph.split("\n")))
    return lines


def _definitions(rows: tuple[tuple[str, str], ...], width: int) -> list[str]:
    term_width = min(max(len(term) for term, _ in rows), MAX_TERM) + GAP
    text_width = max(width - term_width - 2, 10)
    lines: list[str] = []
    for term, text in rows:
        wrapped = _wrap(text, text_width)
        if len(term) <= term_width - GAP:
            first = " " * INDENT + term.ljust(term_width)
        else:  # a term too wide for the column: its text starts on the next line
            lines.append(" " * INDENT + term)
            first = " " * (INDENT + term_width)
        lines.append(first + wrapped[0])
        lines += [" " * (INDENT + term_width) + line for line in wrapped[1:]]
    return lines


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size gives it to click: $COLUMNS, else the terminal of
    standard output, else 80 (shutil itself would load bz2 and lzma)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def page() -> str:
    width = max(min(_columns(), 80) - 2, 50)
    lines = [USAGE, "", *_wrap(ABOUT, width, " " * INDENT), "", "Options:", *_definitions(OPTIONS, width)]
    commands = tuple((name, text) for name, (_, text) in COMMANDS.items())
    return "\n".join([*lines, "", "Commands:", *_definitions(commands, width)])
