"""Golden files: outputs held byte for byte to a peer (iproute2's `vdpa` text and JSON, mdevctl's JSON), kept under
tests/golden/ instead of as long literals inside the tests.

`assert_golden(name, actual)` compares `actual` with tests/golden/NAME byte for byte and shows a diff when they
differ. One switch regenerates every golden file from what the tests produce: `pytest --regen-golden` (registered
in tests/conftest.py) or DEVMIG_REGEN_GOLDEN=1. It is refused under CI (CI=true) so CI can never rewrite its own
expectations; a missing golden file is a failure unless regenerating. After regenerating, `git diff tests/golden`
is the review of what changed.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from devmig.testing.ci import in_ci

GOLDEN = Path(__file__).resolve().parent / "golden"
#: the environment switch (the same as --regen-golden)
ENV = "DEVMIG_REGEN_GOLDEN"
REGEN_HINT = f"pytest --regen-golden (or {ENV}=1)"

#: set by tests/conftest.py from --regen-golden
_option = False
#: the golden files this session rewrote (for the summary at the end)
written: list[str] = []


class GoldenRefusedError(RuntimeError):
    """Regeneration was asked for under CI."""


def regen_requested(option: bool = False) -> bool:
    return option or os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def configure(option: bool) -> None:
    """Called once per session by tests/conftest.py: refuses regeneration under CI before any test runs."""
    global _option
    if regen_requested(option) and in_ci():
        raise GoldenRefusedError(f"golden files are not regenerated under CI (CI=true): {REGEN_HINT} is for a checkout")
    _option = option


def regenerating() -> bool:
    # checked again at each use: CI must not rewrite expectations even if configure() was bypassed
    if regen_requested(_option) and in_ci():
        raise GoldenRefusedError("golden files are not regenerated under CI (CI=true)")
    return regen_requested(_option)


def path_of(name: str) -> Path:
    """tests/golden/NAME; NAME is a relative path that stays below tests/golden."""
    path = (GOLDEN / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(GOLDEN):
        raise ValueError(f"golden file name {name!r}: expected a relative path below tests/golden")
    return path


def _diff(name: str, expected: bytes, actual: bytes) -> str:
    # each line shown as repr() so trailing spaces, missing newlines and control characters are visible
    def lines(data: bytes) -> list[str]:
        return [repr(line) for line in data.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)]

    diff = difflib.unified_diff(
        lines(expected), lines(actual), f"tests/golden/{name} (expected)", "actual", lineterm=""
    )
    return "\n".join(diff)


def assert_golden(name: str, actual: str | bytes) -> None:
    """`actual` (text as UTF-8) must be tests/golden/NAME byte for byte; regenerating, it is written there."""
    __tracebackhide__ = True
    data = actual.encode() if isinstance(actual, str) else actual
    path = path_of(name)
    if regenerating():
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(name)
        return
    if not path.is_file():
        raise AssertionError(f"golden file tests/golden/{name} is missing: create it with {REGEN_HINT}")
    expected = path.read_bytes()
    if data != expected:
        raise AssertionError(
            f"output differs from golden file tests/golden/{name} (regenerate with {REGEN_HINT} if the change is "
            f"meant):\n{_diff(name, expected, data)}"
        )


__all__ = ["ENV", "GOLDEN", "GoldenRefusedError", "assert_golden", "configure", "path_of", "regenerating"]
