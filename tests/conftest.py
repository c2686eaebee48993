from __future__ import annotations

from pathlib import Path

import pytest

from devmig.testing.sysfs_tree import SysfsTree
from tests.labs import build_lab


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return SysfsTree(tmp_path / "root")


@pytest.fixture
def lab(tree: SysfsTree) -> SysfsTree:
    return build_lab(tree)
