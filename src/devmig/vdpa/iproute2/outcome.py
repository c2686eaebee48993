"""What a command line comes to when it runs nothing: lines for stderr and an exit code (`Say`), and the exception
a value parser raises for an argument iproute2 refuses before asking the kernel (`Refused`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Say:
    """Lines for stderr and the exit code: a help text (0) or an error iproute2 finds itself (1)."""

    lines: tuple[str, ...]
    code: int = 1


class Refused(Exception):  # noqa: N818 - a parse outcome, not a failure of devmig
    """An argument iproute2 refuses before asking the kernel: what it prints (maybe nothing), and devmig's line."""

    def __init__(self, *lines: str, note: str | None = None) -> None:
        super().__init__(*lines)
        self.lines = lines
        self.note = note

    def say(self) -> Say:
        return Say((*self.lines, *([f"devmig: {self.note}"] if self.note else [])))


__all__ = ["Refused", "Say"]
