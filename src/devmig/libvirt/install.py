"""`devmig libvirt install-hook` / `uninstall-hook`: devmig's hook as a drop-in of libvirt's qemu hook directory.

libvirt (>= 6.5) runs every executable in <hooks>/qemu.d/ in alphabetical order, each a filter of the domain XML,
and only those present when the daemon starts: so the hook is a small script there that runs this devmig by its
absolute path (libvirt gives hooks PATH=/sbin:/usr/sbin:/bin:/usr/bin and HOME=/), and the daemon must be restarted
once after it is installed or removed. The script carries a marker line: uninstall removes only a file that has it.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devmig.dropin import DropIn, devmig_command

HOOKS_DIR: Final = Path("/etc/libvirt/hooks")
#: the drop-in's default name (libvirt orders drop-ins by name; devmig rewrites the XML, others may too)
NAME: Final = "devmig"
MARKER: Final = "# devmig libvirt hook: installed by `devmig libvirt install-hook`, removed by `uninstall-hook`"
#: libvirt looks for hooks/qemu and hooks/qemu.d/ when it starts, and lists qemu.d/ at every call after that (seen
#: with libvirt 11.3 in the kernel lab: a drop-in removed and installed again took effect without a restart)
RESTART: Final = (
    "restart libvirtd (or virtqemud) once if its hooks/qemu.d/ did not exist when it started: libvirt looks for hooks "
    "then, and reads the directory at every call after that"
)


@dataclass(frozen=True)
class Installed:
    path: Path
    command: list[str]


def script(command: list[str], claims: Path | None = None) -> str:
    """The drop-in: libvirt runs it for every operation of every domain, so only the operations devmig acts on
    (hook.OPERATIONS) start devmig, and those that concern only a domain devmig prepared devices for
    (hook.CLAIMED_ONLY) only while `claims` (the host's claims directory) holds one; any other costs libvirt a read
    of the XML it writes, and exit 0."""
    from devmig.libvirt.hook import CLAIMED_ONLY, OPERATIONS

    run = f'exec {shlex.join(command)} -- "$@"'
    always = [op for op in OPERATIONS if claims is None or op not in CLAIMED_ONLY]
    lines = ["#!/bin/sh", MARKER, 'case "$2 $3" in', f"    {_cases(always)}) {run} ;;"]
    if claims is not None:
        glob = f"{shlex.quote(str(claims))}/*.json"
        lines.append(f'    {_cases(CLAIMED_ONLY)}) for c in {glob}; do [ -e "$c" ] && {run}; done ;;')
    return "\n".join([*lines, "esac", "cat >/dev/null", "exit 0", ""])


def _cases(operations: Iterable[tuple[str, str]]) -> str:
    return "|".join(f'"{operation} {sub}"' for operation, sub in sorted(operations))


def hook_command(*, host: str | None, state_dir: str | None, config: str | None) -> list[str]:
    """This devmig's hook command line, by absolute paths (the hook's PATH is libvirt's, not the user's)."""
    options = (("--host", host), ("--state-dir", state_dir), ("--config", config))
    return devmig_command(["libvirt", "hook"], options, literal=["--host"])


def _dropin(hooks_dir: Path, name: str) -> DropIn:
    return DropIn(hooks_dir / "qemu.d", name, MARKER, "hook", hidden_reason="libvirt skips hidden files")


def install(
    command: list[str], *, hooks_dir: Path = HOOKS_DIR, name: str = NAME, claims: Path | None = None
) -> Installed:
    """Write the drop-in (atomically, mode 0755); replacing devmig's own is fine, another file is refused."""
    return Installed(_dropin(hooks_dir, name).install(script(command, claims)), command)


def uninstall(*, hooks_dir: Path = HOOKS_DIR, name: str = NAME) -> Path | None:
    """Remove devmig's drop-in; None when there is none; a file that is not devmig's is refused."""
    return _dropin(hooks_dir, name).uninstall()
