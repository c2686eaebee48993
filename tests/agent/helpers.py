"""Running agents in tests: in a thread of this process, or as a `devmig agent` process; waiting for what they
publish to show (polls with a generous timeout: nothing here asserts a time)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devmig.agent.config import AgentConfig
from devmig.agent.loop import Agent
from devmig.fleet.store import FleetStore
from devmig.model import DeviceDescriptor

T = TypeVar("T")
Popen = subprocess.Popen[str]
#: how long a test waits for an agent's publish to show before it fails: generous, a loaded CI machine is slow
PATIENCE = 60.0
REPO = Path(__file__).resolve().parents[2]


def eventually(check: Callable[[], T | None], what: str, timeout: float = PATIENCE) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the store may be mid-change or down: try again
            last = exc
        else:
            if value:
                return value
        time.sleep(0.02)
    raise AssertionError(f"not seen within {timeout:g} s: {what}" + (f" (last error: {last})" if last else ""))


def fast(**settings: object) -> AgentConfig:
    """An agent's settings with short intervals, for tests."""
    base: dict[str, object] = {
        "debounce": 0.02,
        "max_delay": 0.2,
        "heartbeat_interval": 30.0,
        "resync_interval": 0.0,
        "retry_initial": 0.05,
        "retry_max": 0.5,
        "stop_timeout": 5.0,
    }
    base.update(settings)
    return AgentConfig(**base)  # type: ignore[arg-type]


@dataclass
class Running:
    agent: Agent
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def stop(self) -> None:
        self.agent.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the agent did not stop"


@contextlib.contextmanager
def agent_thread(config: AgentConfig, **kwargs: object) -> Iterator[Running]:
    agent = Agent(config, **kwargs)  # type: ignore[arg-type]
    running = Running(agent, threading.Thread(target=lambda: None))

    def run() -> None:
        try:
            agent.run(install_signals=False)
        except BaseException as exc:
            running.errors.append(exc)
            agent.ready.set()

    running.thread = threading.Thread(target=run, daemon=True)
    running.thread.start()
    assert agent.ready.wait(30), "the agent did not start"
    assert not running.errors, running.errors
    try:
        yield running
    finally:
        if running.thread.is_alive():
            running.stop()
    assert not running.errors, running.errors


def candidates(store: FleetStore, source: DeviceDescriptor, **kwargs: object) -> set[str]:
    """The hosts `place` offers for `source` (the clock is now)."""
    return {c.host for c in store.place(source, limit=100, **kwargs).candidates}  # type: ignore[arg-type]


def agent_process(*args: str, env: dict[str, str] | None = None, stderr: Any = subprocess.PIPE) -> Popen:
    """`devmig agent ARGS` as a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "devmig", "agent", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


class Proxy:
    """A TCP forwarder on 127.0.0.1 to a real server, to play a store that is down (not listening, or every
    connection cut) and comes back, without touching the server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

        # the old listener's accept() may hold the port a moment after down(): until its timeout returns
        def bound() -> bool:
            listener.bind(("127.0.0.1", self.port))
            return True

        eventually(bound, f"port {self.port} free again", 10)
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        self._stop.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every connection (the server went away)."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        a.settimeout(None)
        b.settimeout(None)
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                if self._stop.is_set() and not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
