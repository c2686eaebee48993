"""The guest's serial console as text: terminal noise removed (at once or chunk by chunk), the command's output and
exit code found between the markers /init prints.
"""

from __future__ import annotations

import codecs
import re

from tests.kernel.lab.guest import BEGIN_MARKER, EXIT_MARKER

_EXIT_RE = re.compile(rf"^{re.escape(EXIT_MARKER)}(\d+)\s*$", re.MULTILINE)


def parse_exit_marker(console: str) -> int | None:
    found = _EXIT_RE.findall(console)
    return int(found[-1]) if found else None


def command_output(console: str) -> str:
    start = console.find(BEGIN_MARKER + "\n")
    if start < 0:
        return ""
    start += len(BEGIN_MARKER) + 1
    matches = list(_EXIT_RE.finditer(console, start))
    if not matches:
        return console[start:]
    # /init prints a newline before the marker, in case the command's output did not end with one.
    return console[start : matches[-1].start()].removesuffix("\n")


_ANSI_RE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")


def clean_console(raw: bytes) -> str:
    """Serial console bytes as text: CRLF/CR to LF, terminal escapes (SeaBIOS clears the screen) removed."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
    return _ANSI_RE.sub("", text)


class ConsoleStream:
    """`clean_console` for a console read in chunks: holds back a split UTF-8 character, CRLF or escape sequence."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> str:
        text = self._pending + self._decoder.decode(chunk)
        cut = len(text)
        escape = text.rfind("\x1b")
        if escape >= 0 and not _ANSI_RE.match(text, escape) and len(text) - escape < 32:
            cut = escape
        if text[:cut].endswith("\r"):
            cut -= 1
        self._pending = text[cut:]
        return self._clean(text[:cut])

    def flush(self) -> str:
        text, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return self._clean(text)

    @staticmethod
    def _clean(text: str) -> str:
        return _ANSI_RE.sub("", text.replace("\r\n", "\n").replace("\r", ""))
