from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.model import SoftwareVersion


@pytest.mark.parametrize("text", ["1.x", "1.2", "1.2.3.4", "01.2.3", "", "v1.2.3", "1.2.-3", " 1.2.3", "1.2.3\n"])
def test_malformed_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"major\.minor\.bugfix"):
        SoftwareVersion.parse(text)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_round_trip(major: int, minor: int, bugfix: int) -> None:
    version = SoftwareVersion(major, minor, bugfix)
    assert SoftwareVersion.parse(str(version)) == version


def test_order_and_forward_compatibility() -> None:
    v = SoftwareVersion.parse
    assert v("1.2.3") < v("1.10.0") < v("2.0.0")
    assert v("1.3.0").accepts_from(v("1.2.9"))
    assert v("1.2.0").accepts_from(v("1.2.7"))  # bugfix never blocks
    assert not v("1.1.9").accepts_from(v("1.2.0"))
    assert not v("2.5.0").accepts_from(v("1.2.0"))
