"""What the commit step's fault matrices share (tests/sim/test_commit.py, tests/sim/test_kill.py): the small simulated
devices a session moves, and the channels it runs over."""

from __future__ import annotations

import os
import socket

from devmig.migrate import transport
from devmig.migrate.stream import CHUNK
from devmig.migrate.tls.channel import TlsConfig
from devmig.migrate.tls.psk import PSK_MIN
from devmig.migrate.transport import SocketChannel
from devmig.sim.vfio import DeviceState, SimVfioDevice, StreamHeader

#: the channels a session can run over: a socket pair, TCP on loopback, mutual TLS (a lab's pre-shared key)
VIAS = ("pair", "tcp", "tls")
#: seconds either side waits for the other before it takes it for gone (a test that hangs fails instead)
PATIENCE = 10.0


def device(name: str, seed: int | None, memory: int = 3 * CHUNK) -> SimVfioDevice:
    """No PRE_COPY (flags 3): a fixed number of records (4 DATA for 3 chunks of memory and the device's header), so
    every boundary is reached by index."""
    dev = SimVfioDevice(
        name, DeviceState.create(memory=memory, seed=seed), migration_flags=3, header=StreamHeader("m", "1.0.0")
    )
    dev.open()
    return dev


class Link:
    """How the sender and the receiver of one session reach each other over `via`: the two ends of a socket pair, or
    a listener on loopback that the receiver accepts on (mutual TLS with a fresh pre-shared key for "tls").

    Made before the sides start, so they can be threads or forked processes; a process keeps only its own end
    (`keep`), or a peer that dies would not be seen to hang up."""

    def __init__(self, via: str) -> None:
        self.pair: tuple[socket.socket, socket.socket] | None = None
        self.listener: socket.socket | None = None
        self.address: transport.Address | None = None
        self.tls: tuple[TlsConfig, TlsConfig] | tuple[None, None] = (None, None)
        if via == "pair":
            self.pair = socket.socketpair()
            for sock in self.pair:
                sock.settimeout(PATIENCE)
            return
        if via == "tls":
            secret = os.urandom(PSK_MIN)
            self.tls = TlsConfig.from_psk("server", secret), TlsConfig.from_psk("client", secret)
        self.listener = transport.listen(transport.Address("127.0.0.1", 0))
        self.address = transport.Address("127.0.0.1", self.listener.getsockname()[1])

    def sender(self) -> SocketChannel:
        if self.pair is not None:
            return SocketChannel(self.pair[0], "sender")
        assert self.address is not None
        return transport.connect(self.address, PATIENCE, tls=self.tls[1])

    def receiver(self) -> SocketChannel:
        """The receiver's channel: for TCP the first connection, accepted (and authenticated for TLS)."""
        if self.pair is not None:
            return SocketChannel(self.pair[1], "receiver")
        assert self.listener is not None
        with self.listener:
            return transport.accept(self.listener, PATIENCE, PATIENCE, tls=self.tls[0])

    def keep(self, role: str) -> None:
        """In a forked side: close what the other side uses ("sender" keeps the pair's first end and connects)."""
        if self.pair is not None:
            self.pair[1 if role == "sender" else 0].close()
        elif role == "sender" and self.listener is not None:
            self.listener.close()

    def close(self) -> None:
        """The parent's copies, once the sides have started (or ended)."""
        for sock in (*(self.pair or ()), self.listener):
            if sock is not None:
                sock.close()
