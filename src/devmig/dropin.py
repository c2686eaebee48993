"""A script devmig drops into another program's directory of executables (libvirt's qemu.d, mdevctl's callouts),
and the devmig command line such a script runs.

The program runs the script with its own environment (libvirt's PATH is /sbin:/usr/sbin:/bin:/usr/bin, mdevctl's is
whatever ran it), so the script runs this devmig by absolute paths. It carries a marker line: devmig replaces or
removes only a file that has it, never another's file of the same name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from devmig.errors import InputError
from devmig.state import replace_file


def devmig_command(
    words: Iterable[str], options: Iterable[tuple[str, str | None]] = (), *, literal: Iterable[str] = ()
) -> list[str]:
    """`python -m devmig WORDS...` by this interpreter's absolute path, then each (option, value) given (None: left
    out), a value made an absolute path unless its option is `literal`: the script runs from another directory."""
    command = [str(Path(sys.executable).absolute()), "-m", "devmig", *words]
    keep = frozenset(literal)
    for option, value in options:
        if value is not None:
            command += [option, value if option in keep else str(Path(value).absolute())]
    return command


@dataclass(frozen=True)
class DropIn:
    """One script file: `directory/name`, recognised as devmig's by `marker` (a comment line of the script)."""

    directory: Path
    name: str
    marker: str
    #: what the script is, in messages: "hook", "callout"
    what: str
    #: why a name may not be hidden, in the message that refuses one
    hidden_reason: str = "the program skips hidden files"

    @property
    def path(self) -> Path:
        if not self.name or "/" in self.name or self.name.startswith(".") or "\x00" in self.name:
            raise InputError(
                f"{self.what} name {self.name!r}: expected a file name (no /, not hidden: {self.hidden_reason})"
            )
        return self.directory / self.name

    def _ours(self, path: Path) -> bool:
        try:
            return self.marker in path.read_text(errors="replace")
        except OSError as exc:
            raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from None

    def install(self, text: str) -> Path:
        """Write the script (atomically, mode 0755); replacing devmig's own is fine, another file is refused."""
        if self.marker not in text:
            raise ValueError("a drop-in's text must carry its marker line")
        path = self.path
        if path.exists() and not self._ours(path):
            raise InputError(f"{path}: exists and is not devmig's {self.what}: choose another --name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(path, text.encode(), 0o755)
        except OSError as exc:
            raise InputError(f"{path}: cannot write the {self.what}: {exc.strerror or exc} (as root?)") from None
        return path

    def uninstall(self) -> Path | None:
        """Remove devmig's script; None when there is none; a file that is not devmig's is refused."""
        path = self.path
        if not path.exists():
            return None
        if not self._ours(path):
            raise InputError(f"{path}: not devmig's {self.what} (no marker line): left in place")
        try:
            path.unlink()
        except OSError as exc:
            raise InputError(f"{path}: cannot remove the {self.what}: {exc.strerror or exc} (as root?)") from None
        return path
