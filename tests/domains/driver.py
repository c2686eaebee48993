"""libvirt's own test driver (test:///default, in libvirt0): a real libvirt, with domains that run nowhere."""

from __future__ import annotations

from typing import Any

import pytest

TEST_URI = "test:///default"


def _missing() -> str | None:
    """Why the binding or its test driver cannot be used here, or None."""
    try:
        import libvirt
    except ImportError as exc:
        return (
            f"the libvirt Python binding is not installed ({exc}): scripts/setup installs it (Debian's libvirt-dev "
            "and pkg-config, then pip install -e '.[test]')"
        )
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    try:
        libvirt.open(TEST_URI).close()
    except libvirt.libvirtError as exc:
        return f"libvirt's test driver ({TEST_URI}) cannot be opened: {exc}"
    return None


LIBVIRT_MISSING = _missing()
#: a test that needs the binding and the test driver: skipped without them, failed in CI
needs_libvirt = pytest.mark.prerequisite(LIBVIRT_MISSING)


def metadata_text(dom: Any, config: bool = False) -> str | None:
    """devmig's element as the API returns it (live, or the persistent definition's), or None when it has none."""
    import libvirt

    from devmig.libvirt.metadata import NAMESPACE

    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else libvirt.VIR_DOMAIN_AFFECT_LIVE
    try:
        text: str = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return text
