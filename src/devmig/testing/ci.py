"""Whether this run is CI's, and what a test does when a prerequisite is missing: skip on a developer's machine,
fail in CI.

CI is told by the CI variable (`.ci/run` sets CI=true itself, whatever the runner set). In CI a missing tool,
package or privilege is a missing install step, and a skip would hide it behind a green run: so there the same
reason fails the test. Every tier asks here (the kernel tier, PostgreSQL, the fuzz profile, the mdevctl peer, the
ABI test, least privilege, golden files), so "in CI" has one meaning.

A skip that is not about a prerequisite (a test that only means something on a machine without the vdpa core, a
guest test collected on the host) stays a plain `pytest.skip`.
"""

from __future__ import annotations

import os
from typing import NoReturn

#: the environment variable CI runners set, and the values that mean "this is CI"
ENV = "CI"
TRUE_VALUES = frozenset({"true", "1", "yes"})


def in_ci() -> bool:
    """True when CI is "true", "1" or "yes" (any case): a missing prerequisite must fail, not skip."""
    return os.environ.get(ENV, "").strip().lower() in TRUE_VALUES


def missing_prerequisite(reason: str) -> NoReturn:
    """Skip the running test for `reason`, or fail it with the same reason in CI."""
    import pytest  # only a test calls this; devmig itself never needs pytest

    if in_ci():
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)
