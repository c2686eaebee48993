"""The blob device of the benchmark: a pds-like driver that checks only the size, at RESUMING -> STOP."""

from __future__ import annotations

import errno

import pytest

from devmig.migrate import transport
from devmig.migrate.device import VfioError
from devmig.migrate.fsm import RESUMING, RUNNING, STOP, STOP_COPY
from devmig.migrate.session import accept_all
from devmig.sim.bulk import BulkDevice


def test_a_blob_moves_whole_through_a_session() -> None:
    src = BulkDevice("src", bytearray(range(256)) * 9000)
    dst = BulkDevice("dst", bytearray(len(src.blob)))
    sent, got = transport.migrate_local(src, dst, judge=accept_all)
    assert dst.blob == src.blob and sent.bytes == len(src.blob) == got.bytes
    assert (src.get_state(), dst.get_state()) == (STOP, RUNNING)


def test_a_short_or_long_blob_is_refused_as_pds_firmware_would() -> None:
    dev = BulkDevice("dst", bytearray(100))
    fd = dev.set_state(RESUMING)
    assert fd is not None
    fd.write(b"x" * 60)
    with pytest.raises(VfioError) as info:
        dev.set_state(STOP)
    assert info.value.errno == errno.EINVAL and "60 of 100 bytes arrived" in str(info.value)
    dev.reset()
    fd = dev.set_state(RESUMING)
    assert fd is not None
    with pytest.raises(VfioError) as info:
        fd.write(b"x" * 101)
    assert info.value.errno == errno.ENOMEM


def test_a_session_file_ends_with_its_session() -> None:
    dev = BulkDevice("src", bytearray(b"state"))
    fd = dev.set_state(STOP_COPY)
    assert fd is not None and fd.read() == b"state" and fd.read() == b""
    dev.set_state(STOP)
    with pytest.raises(VfioError) as info:
        fd.read()
    assert info.value.errno == errno.ENODEV
