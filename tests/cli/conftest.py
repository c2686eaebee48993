from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from tests.paths import ROOT


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_devmig(*args: str, stdin: str | None = None) -> Result:
    """Run the real command in a child process, as a user or a script would."""
    proc = subprocess.run(
        [sys.executable, "-m", "devmig", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
