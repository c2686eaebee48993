"""What every part of the kernel lab raises when it cannot do its work here."""

from __future__ import annotations


class LabUnavailable(Exception):  # noqa: N818 - the name callers catch
    """The kernel lab cannot be prepared or run here; the message says why in one line."""
