from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.domains.driver import TEST_URI


@pytest.fixture
def conn() -> Iterator[Any]:
    """A connection to libvirt's test driver; the domains a test makes are taken away after it."""
    import libvirt

    connection = libvirt.open(TEST_URI)
    before = {d.name() for d in connection.listAllDomains()}
    yield connection
    for dom in connection.listAllDomains():
        if dom.name() not in before:
            persistent = dom.isPersistent()  # a transient domain is gone once destroyed
            if dom.isActive():
                dom.destroy()
            if persistent:
                dom.undefine()
    connection.close()


@pytest.fixture
def name() -> str:
    """A domain name of this test's own (the test driver's domains live as long as the process)."""
    return f"vm-{uuid.uuid4().hex[:8]}"


Define = Callable[..., Any]


@pytest.fixture
def running(conn: Any) -> Define:
    """Define and start a domain (persistent), or create it (transient), from its XML."""

    def make(xml: str, persistent: bool = True) -> Any:
        if not persistent:
            return conn.createXML(xml, 0)
        dom = conn.defineXML(xml)
        dom.create()
        return dom

    return make
