"""`devmig mdevctl install-callout` / `uninstall-callout`: devmig's callout as a script in mdevctl's callout
directory.

mdevctl (>= 1.1) runs each executable of its callout directory around every operation with the same arguments,
`-t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT`, until one exits with a status other than 2. 1.3 and later
search /usr/lib/mdevctl/scripts.d/callouts (the distribution's) and then /etc/mdevctl.d/scripts.d/callouts (the
administrator's, deprecated but still read); Debian bookworm's 1.2.0 reads only the second, so it is the default.
mdevctl reads the directory on every run: nothing to restart.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Final

from devmig.dropin import DropIn, devmig_command
from devmig.mdevctl.callout import HANDLED

CALLOUTS_DIR: Final = Path("/etc/mdevctl.d/scripts.d/callouts")
NAME: Final = "devmig"
MARKER: Final = (
    "# devmig mdevctl callout: installed by `devmig mdevctl install-callout`, removed by `uninstall-callout`"
)


def callout_command(*, profiles_dir: str | None) -> list[str]:
    """This devmig's callout command line, by absolute paths (mdevctl runs it from wherever mdevctl ran)."""
    return devmig_command(["mdevctl", "callout"], (("--profiles-dir", profiles_dir),))


def script(command: list[str]) -> str:
    """The drop-in: mdevctl runs it for every operation on every device, so only the events devmig answers
    (callout.HANDLED) start devmig; any other, in mdevctl's argument order, costs a read of the JSON mdevctl writes
    (it must not meet a closed pipe) and exit 2, "not mine". Arguments in another order go to devmig, which reads
    any order or says what is wrong."""
    run = f'exec {shlex.join(command)} -- "$@"'
    cases = "|".join(f'"-e {event} -a {action}"' for event, action in sorted(HANDLED))
    return "\n".join(
        [
            "#!/bin/sh",
            MARKER,
            'case "$3 $4 $5 $6" in',
            f"    {cases}) {run} ;;",
            '    "-e "*" -a "*) cat >/dev/null; exit 2 ;;',
            "esac",
            run,
            "",
        ]
    )


def _dropin(callouts_dir: Path, name: str) -> DropIn:
    # mdevctl would run a hidden file too; devmig keeps hidden names for its own temporary file
    return DropIn(callouts_dir, name, MARKER, "callout", hidden_reason="devmig writes its temporary file so")


def install(command: list[str], *, callouts_dir: Path = CALLOUTS_DIR, name: str = NAME) -> Path:
    """Write the script (atomically, mode 0755); replacing devmig's own is fine, another file is refused."""
    return _dropin(callouts_dir, name).install(script(command))


def uninstall(*, callouts_dir: Path = CALLOUTS_DIR, name: str = NAME) -> Path | None:
    """Remove devmig's script; None when there is none; a file that is not devmig's is refused."""
    return _dropin(callouts_dir, name).uninstall()
