"""The committed tree itself: no merge left half-done in any text file (a conflict marker once reached the docs)."""

from __future__ import annotations

import re
import subprocess

from tests.paths import ROOT

MARKER = re.compile(rb"^(<{7}|>{7}) |^={7}$", re.MULTILINE)


def test_no_file_holds_a_conflict_marker() -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [name for name in listed.decode().split("\0") if name]
    assert files, "git ls-files listed nothing"
    found = [name for name in files if (ROOT / name).is_file() and MARKER.search((ROOT / name).read_bytes())]
    assert found == [], f"conflict markers in {found}"
