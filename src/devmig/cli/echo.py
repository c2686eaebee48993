"""`click.echo` for the commands that run without click (devmig.cli.quick): the same bytes, without loading it.

click.echo writes the text and flushes; before that it strips ANSI escapes when the stream is not a terminal, and it
rewraps a stream whose encoding is ASCII. Text without an escape on an ordinary text stream is written as it is;
anything else goes to click.echo itself, so the output never differs.
"""

from __future__ import annotations

import codecs
import io
import sys


def _plain(stream: object) -> bool:
    """A text stream click.echo would write to unchanged: not replaced by its own UTF-8 wrapper."""
    if not isinstance(stream, io.TextIOWrapper) or stream.errors is None:
        return False
    try:
        return codecs.lookup(stream.encoding).name != "ascii"
    except LookupError:
        return True


def echo(text: str, *, nl: bool = True, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if "\x1b" in text or not _plain(stream):
        import click

        click.echo(text, nl=nl, err=err)
        return
    if nl:
        text += "\n"
    if text:
        stream.write(text)
    stream.flush()
