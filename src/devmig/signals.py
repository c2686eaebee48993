"""Signals as exceptions, so whatever an operation changed on a host is undone before the process ends."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from devmig.errors import SignalledError

#: the signals that stop an operation (SIGINT as KeyboardInterrupt, the others as SignalledError)
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SignalledError (as SIGINT raises KeyboardInterrupt), so the journal unwinds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        raise SignalledError(f"stopped by {name}; the changes made so far were undone", name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A block that SIGINT, SIGTERM and SIGHUP do not cut short: they are ignored while it runs.

    For the few local steps that must be finished once begun: putting a device back after a failure (a second
    Ctrl-C must not leave it half-way, stopped), or where a success leaves it. The process ends anyway, on the first
    signal's exception or on the success; a signal could only cut the step, never undo what it protects. Keep such
    blocks short and free of waits on a peer. Nothing to do outside the main thread, where no handler runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOPPING}
    try:
        yield
    finally:
        for sig, previous in old.items():
            if previous is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(sig, previous)
