"""One lock per parent device: the capacity a prepare counts on cannot be taken by another prepare meanwhile.

The lock is an flock on `hosts/<host>/locks/<parent>.lock`, so it holds between processes and between threads
(each acquisition opens its own file description), and the kernel drops it when its holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from devmig.host.ops import RefusedError
from devmig.provision.journal import HostState
from devmig.state import safe_name

#: How long a prepare waits for another one on the same parent (each holds it for a few sysfs writes).
LOCK_TIMEOUT = 30.0


@contextlib.contextmanager
def parent_lock(state: HostState, parent: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    path = state.locks / f"{safe_name(parent)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RefusedError(
                        f"parent {parent}: another devmig prepare has held its lock ({path}) for {timeout:.0f} s"
                    ) from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)
