"""The simulated VFIO device: migration v2 from the driver's side, byte for byte, with the uAPI's errors."""

from __future__ import annotations

import errno
import itertools
import random
import struct
import zlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devmig.migrate.device import VfioError
from devmig.migrate.fsm import (
    ERROR,
    PRE_COPY,
    PRE_COPY_P2P,
    RESUMING,
    RUNNING,
    RUNNING_P2P,
    STOP,
    STOP_COPY,
    TransitionError,
)
from devmig.sim.vfio import (
    LOG_MAX_RANGES,
    DeviceState,
    ParamValue,
    SimDataFd,
    SimVfioDevice,
    StreamHeader,
)

KIB = 1024
PAGE = 4096
RECORD = struct.Struct("<B3xIIQ")  # the documented record layout, rebuilt here on purpose


def device(
    name: str,
    seed: int | None,
    *,
    flags: int = 7,
    model: str = "devmig.sim/gpu",
    version: str = "1.2.0",
    params: dict[str, ParamValue] | None = None,
    memory: int = 64 * KIB,
) -> SimVfioDevice:
    header = StreamHeader(model, version, {"pv_mode": "context", "compression": False} if params is None else params)
    return SimVfioDevice(
        name, DeviceState.create(memory=memory, seed=seed), migration_flags=flags, header=header, group=7
    )


def read_all(fd: SimDataFd, size: int = 10_000) -> bytes:
    """Read a STOP_COPY stream to its permanent end."""
    out = bytearray()
    while chunk := fd.read(size):
        out += chunk
    return bytes(out)


def saved_stream(src: SimVfioDevice) -> bytes:
    """The whole stream of a stopped source (RUNNING -> ... -> STOP_COPY, read to the end)."""
    fd = src.set_state(STOP_COPY)
    assert fd is not None
    data = read_all(fd)
    src.set_state(STOP)
    return data


def odd_chunks(data: bytes) -> Iterator[bytes]:
    sizes = itertools.cycle([1, 7, 19, 4093, 4097, 65537, 3])
    offset = 0
    while offset < len(data):
        size = next(sizes)
        yield data[offset : offset + size]
        offset += size


def record(kind: int, offset: int, payload: bytes = b"") -> bytes:
    return RECORD.pack(kind, len(payload), zlib.crc32(payload) if payload else 0, offset) + payload


# -- a whole migration ----------------------------------------------------------------------------------------------


def test_a_live_migration_with_pre_copy_moves_the_device_state_byte_for_byte() -> None:
    rng = random.Random(7)
    src, dst = device("src", seed=1, memory=1 << 20), device("dst", seed=2, memory=1 << 20)
    assert src.state.digest() != dst.state.digest()

    fd = src.set_state(PRE_COPY)
    assert fd is not None and src.get_state() == PRE_COPY
    header_len = len(src.header().encode())
    initial, dirty = fd.precopy_info()
    assert (initial, dirty) == (header_len + 256 * (RECORD.size + PAGE), 0)

    stream = bytearray()
    # round 0: the initial data, while the guest keeps dirtying pages; initial_bytes only shrinks
    while initial:
        src.guest_tick(rng)
        stream += fd.read(50_000)
        before, (initial, dirty) = initial, fd.precopy_info()
        assert initial < before and dirty > 0
    # further rounds: what the guest dirtied comes as records, until the stream is (for now) dry
    rounds = 0
    while True:
        if rounds < 5:
            src.guest_tick(rng)
        try:
            stream += fd.read(50_000)
        except VfioError as exc:
            assert exc.errno == errno.ENOMSG
            break
        rounds += 1
    assert rounds >= 5 and fd.precopy_info() == (0, 0)
    touched = src.guest_tick(rng)
    assert fd.precopy_info() == (0, len(touched) * (RECORD.size + PAGE))

    # stop: PRE_COPY -> PRE_COPY_P2P -> STOP_COPY keeps the session; MIG_DATA_SIZE was exact
    estimate = src.mig_data_size()
    assert src.set_state(STOP_COPY) is None and src.get_state() == STOP_COPY
    assert src.guest_tick(rng) == []  # a stopped device does not change
    rest = read_all(fd, 4093)
    assert len(rest) == estimate and fd.read() == b"" and fd.read() == b""  # the permanent end
    stream += rest
    source_digest = src.state.digest()

    # the destination: RUNNING -> RUNNING_P2P -> STOP -> RESUMING, writes cut anywhere, then back to RUNNING
    dst_fd = dst.set_state(RESUMING)
    assert dst_fd is not None and dst.get_state() == RESUMING
    for chunk in odd_chunks(bytes(stream)):
        assert dst_fd.write(chunk) == len(chunk)
    assert dst.set_state(RUNNING) is None and dst.get_state() == RUNNING
    assert dst.state.digest() == source_digest

    # STOP_COPY -> STOP and RESUMING -> STOP ended the sessions: both files are dead
    src.set_state(STOP)
    for call in (fd.read, lambda: dst_fd.write(b"x")):
        with pytest.raises(VfioError) as err:
            call()
        assert err.value.errno == errno.ENODEV


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 9000), min_size=1, max_size=40))
def test_any_segmentation_of_the_stream_loads_the_same_state(sizes: list[int]) -> None:
    src = device("src", seed=3, memory=16 * KIB)
    data = saved_stream(src)
    dst = device("dst", seed=None, memory=16 * KIB)
    fd = dst.set_state(RESUMING)
    assert fd is not None
    offset = 0
    for size in itertools.cycle(sizes):
        if offset >= len(data):
            break
        fd.write(data[offset : offset + size])
        offset += size
    dst.set_state(STOP)
    assert dst.state.digest() == src.state.digest()


def test_stop_to_stop_copy_streams_everything_at_once_and_mig_data_size_says_how_much() -> None:
    src = device("src", seed=4)
    src.set_state(STOP)
    expected = src.mig_data_size()
    assert len(saved_stream(src)) == expected


# -- the destination refuses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        (device("dst", None, model="devmig.sim/nic"), "model 'devmig.sim/gpu', this device is 'devmig.sim/nic'"),
        (device("dst", None, version="2.0.0"), "the major versions differ"),
        (device("dst", None, version="1.1.9"), "newer than this device's 1.1.9 (minor 2 > 1)"),
        (device("dst", None, version="1.2"), "software version '1.2' is not major.minor.bugfix"),
        (device("dst", None, params={"pv_mode": "ppgtt", "compression": False}), "pv_mode='context' in the stream"),
        (device("dst", None, params={"pv_mode": "context", "compression": 0}), "compression=False in the stream, 0"),
        (device("dst", None, params={"pv_mode": "context"}), "compression=False of the stream is unknown"),
        (device("dst", None, memory=32 * KIB), "the stream's memory is 65536 bytes, this device's is 32768"),
    ],
)
def test_a_header_mismatch_fails_the_write_that_completes_the_header(destination: SimVfioDevice, reason: str) -> None:
    data = saved_stream(device("src", seed=5))
    fd = destination.set_state(RESUMING)
    assert fd is not None
    fd.write(data[:10])  # the header is not complete yet: nothing to judge
    with pytest.raises(VfioError) as err:
        fd.write(data[10:200])
    assert err.value.errno == errno.EINVAL and reason in str(err.value)
    assert "refusing the incoming stream" in str(err.value)
    # the session is refused for good; leaving RESUMING fails and leaves the device in ERROR until a reset
    with pytest.raises(VfioError, match="the stream was refused"):
        fd.write(data[200:])
    with pytest.raises(VfioError) as stop:
        destination.set_state(RUNNING)
    assert stop.value.errno == errno.EINVAL and reason in str(stop.value)
    assert destination.get_state() == ERROR
    with pytest.raises(TransitionError):
        destination.set_state(RUNNING)
    destination.reset()
    assert destination.get_state() == RUNNING


def test_a_newer_destination_takes_an_older_stream_and_the_drivers_hook_decides() -> None:
    data = saved_stream(device("src", seed=6, version="1.1.0"))
    newer = device("dst", None, version="1.3.2")
    fd = newer.set_state(RESUMING)
    assert fd is not None
    fd.write(data)
    newer.set_state(RUNNING)

    def no_gpu_from_tuesday(incoming: StreamHeader, own: StreamHeader) -> str | None:
        return f"{own.model} takes no stream from {incoming.software_version}"

    picky = SimVfioDevice("picky", DeviceState.create(memory=64 * KIB), check_incoming=no_gpu_from_tuesday)
    fd = picky.set_state(RESUMING)
    assert fd is not None
    with pytest.raises(VfioError, match=r"devmig.sim/device takes no stream from 1\.1\.0"):
        fd.write(data)


def test_a_stream_of_another_driver_is_refused_from_its_first_bytes() -> None:
    fd = device("dst", None).set_state(RESUMING)
    assert fd is not None
    with pytest.raises(VfioError, match="not a stream of this driver") as err:
        fd.write(b"QEMU")
    assert err.value.errno == errno.EINVAL


def test_an_incomplete_stream_fails_resuming_to_stop() -> None:
    data = saved_stream(device("src", seed=8))
    for cut, reason in [(0, "inside its header"), (60, "inside its header"), (len(data) - 5, "no end record")]:
        dst = device("dst", None)
        fd = dst.set_state(RESUMING)
        assert fd is not None
        fd.write(data[:cut])
        with pytest.raises(VfioError, match=reason) as err:
            dst.set_state(STOP)
        assert err.value.errno == errno.EINVAL and dst.get_state() == ERROR


def header_of(src: SimVfioDevice) -> bytes:
    return src.header().encode()


@pytest.mark.parametrize(
    ("records", "err", "reason"),
    [
        # a stream that never carried the memory
        (lambda s: record(1, 0, bytes(256)) + record(2, 0, bytes(1024)) + record(255, 2), errno.EINVAL, "page 0"),
        (lambda s: record(3, 0, bytes(PAGE)) + record(255, 7), errno.EINVAL, "the end record counts 7 records"),
        (lambda s: record(9, 0, b"x"), errno.EOPNOTSUPP, "unknown kind 9"),
        (lambda s: record(3, 100, bytes(PAGE)), errno.EINVAL, "is not one of the 16 pages"),
        (lambda s: record(1, 0, bytes(255)), errno.EINVAL, "does not cover the 256-byte registers block"),
        (lambda s: RECORD.pack(3, PAGE, 0, 0) + bytes(PAGE), errno.EINVAL, "fails its crc"),
        (lambda s: record(255, 0) + b"junk", errno.EINVAL, "4 bytes follow the end record"),
    ],
)
def test_inconsistent_streams_are_refused_with_the_reason(
    records: Callable[[SimVfioDevice], bytes], err: int, reason: str
) -> None:
    dst = device("dst", None)
    fd = dst.set_state(RESUMING)
    assert fd is not None
    try:
        fd.write(header_of(dst) + records(dst))
    except VfioError as exc:  # refused while writing
        assert exc.errno == err and reason in str(exc)
        return
    with pytest.raises(VfioError) as stop:  # or when the driver validates on RESUMING -> STOP
        dst.set_state(STOP)
    assert stop.value.errno == err and reason in str(stop.value) and "inconsistent" in str(stop.value)


# -- the state machine's rules on the device ------------------------------------------------------------------------


@pytest.mark.parametrize("target", [PRE_COPY, PRE_COPY_P2P])
def test_stop_copy_cannot_go_back_to_pre_copy(target: int) -> None:
    src = device("src", seed=9)
    fd = src.set_state(PRE_COPY)
    assert fd is not None and src.set_state(STOP_COPY) is None
    with pytest.raises(TransitionError) as err:
        src.set_state(target)
    assert err.value.errno == errno.EINVAL
    assert src.get_state() == STOP_COPY and fd.read(10)  # refused before any arc: the session goes on


def test_error_cannot_be_requested_and_bad_numbers_are_einval() -> None:
    dev = device("d", seed=None)
    for target in (ERROR, 8, -1):
        with pytest.raises(TransitionError) as err:
            dev.set_state(target)
        assert err.value.errno == errno.EINVAL and dev.get_state() == RUNNING


def test_precopy_info_only_in_pre_copy() -> None:
    src = device("src", seed=10)
    fd = src.set_state(PRE_COPY)
    assert fd is not None
    fd.precopy_info()
    src.set_state(PRE_COPY_P2P)
    fd.precopy_info()
    src.set_state(STOP_COPY)
    with pytest.raises(VfioError, match="in STOP_COPY, not in PRE_COPY") as err:
        fd.precopy_info()
    assert err.value.errno == errno.EINVAL
    src.set_state(STOP)
    with pytest.raises(VfioError) as ended:
        fd.precopy_info()
    assert ended.value.errno == errno.ENODEV
    resuming = src.set_state(RESUMING)
    assert resuming is not None
    with pytest.raises(VfioError) as notty:
        resuming.precopy_info()
    assert notty.value.errno == errno.ENOTTY


def test_pre_copy_reads_end_for_now_with_enomsg() -> None:
    rng = random.Random(11)
    src = device("src", seed=11)
    fd = src.set_state(PRE_COPY)
    assert fd is not None
    initial, _ = fd.precopy_info()
    assert len(fd.read(initial + 1000)) == initial
    for state in (PRE_COPY, PRE_COPY_P2P):
        src.set_state(state)
        with pytest.raises(VfioError, match="no pre-copy data pending") as err:
            fd.read(100)
        assert err.value.errno == errno.ENOMSG
    pages = src.guest_tick(rng)  # PRE_COPY_P2P still executes
    assert len(fd.read(1 << 20)) == len(pages) * (RECORD.size + PAGE)


def test_leaving_pre_copy_for_running_ends_the_session_and_a_new_one_starts_over() -> None:
    src = device("src", seed=12)
    first = src.set_state(PRE_COPY)
    assert first is not None and src.set_state(RUNNING) is None
    with pytest.raises(VfioError) as err:
        first.read(10)
    assert err.value.errno == errno.ENODEV
    second = src.set_state(PRE_COPY)
    assert second is not None and second is not first
    assert second.read(8) == b"DEVMIGSD"


def test_a_saving_fd_is_read_only_and_a_resuming_fd_write_only() -> None:
    src, dst = device("src", seed=13), device("dst", seed=None)
    save, load = src.set_state(PRE_COPY), dst.set_state(RESUMING)
    assert save is not None and load is not None
    with pytest.raises(VfioError) as err:
        save.write(b"x")
    assert err.value.errno == errno.EBADF
    with pytest.raises(VfioError) as err:
        load.read(1)
    assert err.value.errno == errno.EBADF
    with load:
        pass
    with pytest.raises(VfioError) as err:
        load.write(b"x")
    assert err.value.errno == errno.EBADF


def test_a_failed_arc_leaves_the_device_in_error_until_reset() -> None:
    src = device("src", seed=14)
    fd = src.set_state(PRE_COPY)
    assert fd is not None
    src.fail_next(PRE_COPY_P2P, STOP_COPY)
    with pytest.raises(VfioError) as err:
        src.set_state(STOP_COPY)
    assert err.value.errno == errno.EIO and src.get_state() == ERROR
    with pytest.raises(VfioError) as dead:
        fd.read(1)
    assert dead.value.errno == errno.ENODEV
    with pytest.raises(TransitionError):
        src.set_state(RUNNING)
    src.reset()
    assert src.get_state() == RUNNING and src.set_state(STOP_COPY) is not None


def test_mig_data_size_is_allowed_in_every_state() -> None:
    src = device("src", seed=15)
    full = src.mig_data_size()
    for state in (RUNNING_P2P, STOP, RESUMING):
        src.set_state(state)
        assert src.mig_data_size() == full
    with pytest.raises(VfioError, match="inside its header"):
        src.set_state(STOP)  # nothing was written
    assert src.get_state() == ERROR and src.mig_data_size() == full
    src.reset()
    fd = src.set_state(STOP_COPY)
    assert fd is not None and src.mig_data_size() == full
    fd.read(1000)
    assert src.mig_data_size() == full - 1000


def test_open_and_close_hooks_and_the_last_close() -> None:
    events: list[tuple[str, int]] = []
    dev = SimVfioDevice(
        "d",
        DeviceState.create(memory=16 * KIB),
        on_open=lambda d: events.append(("open", d.open_count)),
        on_close=lambda d: events.append(("close", d.open_count)),
    )
    dev.open()
    dev.open()
    fd = dev.set_state(PRE_COPY)
    assert fd is not None
    dev.dma_logging_start([(0, 16 * KIB)], PAGE)
    dev.close()
    fd.read(1)  # still open once
    dev.close()
    assert events == [("open", 1), ("open", 2), ("close", 1), ("close", 0)]
    with pytest.raises(VfioError) as err:
        fd.read(1)
    assert err.value.errno == errno.ENODEV
    with pytest.raises(VfioError, match="not started"):
        dev.dma_logging_report(0, 16 * KIB, PAGE)
    with pytest.raises(VfioError) as closed:
        dev.close()
    assert closed.value.errno == errno.EBADF
    dev.open()
    assert dev.get_state() == RUNNING


# -- devices without migration, or with fewer features --------------------------------------------------------------


def test_a_device_without_migration_answers_enotty() -> None:
    dev = SimVfioDevice("ccw", DeviceState.create(memory=0), migration_flags=0, device_api="vfio-ccw")
    info = dev.describe()
    assert info.flags == ["RESET", "CCW"] and info.migration is None and "ENOTTY" in (info.migration_error or "")
    calls = [
        dev.migration_flags,
        dev.get_state,
        lambda: dev.set_state(STOP),
        dev.mig_data_size,
        lambda: dev.dma_logging_start([(0, PAGE)], PAGE),
        lambda: dev.dma_logging_report(0, PAGE, PAGE),
        dev.dma_logging_stop,
    ]
    for call in calls:
        with pytest.raises(VfioError) as err:
            call()
        assert err.value.errno == errno.ENOTTY
    dev.reset()  # a reset still works


def test_describe_reports_the_migration_flags() -> None:
    info = device("d", seed=None, flags=5).describe()
    assert (info.name, info.group, info.flags, info.num_regions, info.num_irqs) == ("d", 7, ["RESET", "PCI"], 9, 5)
    assert info.migration == ["STOP_COPY", "PRE_COPY"] and info.migration_error is None
    assert device("d", seed=None, flags=7).migration_flags() == 7
    with pytest.raises(ValueError, match="defines 0, 1, 3, 5 and 7"):
        device("d", seed=None, flags=2)


def test_stop_copy_only_devices_skip_p2p_and_pre_copy() -> None:
    src, dst = device("src", seed=16, flags=1), device("dst", seed=None, flags=1)
    assert src.describe().migration == ["STOP_COPY"]
    for target in (RUNNING_P2P, PRE_COPY, PRE_COPY_P2P):
        with pytest.raises(TransitionError, match="not supported by migration flags 0x1"):
            src.set_state(target)
    fd = src.set_state(STOP_COPY)  # RUNNING -> STOP -> STOP_COPY
    assert fd is not None
    data = read_all(fd)
    load = dst.set_state(RESUMING)  # RUNNING -> STOP -> RESUMING
    assert load is not None
    load.write(data)
    assert dst.set_state(RUNNING) is None  # RESUMING -> STOP -> RUNNING
    assert dst.state.digest() == src.state.digest()


def test_pre_copy_without_p2p_goes_straight_to_stop_copy() -> None:
    rng = random.Random(17)
    src, dst = device("src", seed=17, flags=5), device("dst", seed=None, flags=5)
    fd = src.set_state(PRE_COPY)
    assert fd is not None
    stream = fd.read(1 << 22)
    src.guest_tick(rng)
    assert src.set_state(STOP_COPY) is None  # PRE_COPY -> STOP_COPY, same session
    stream += read_all(fd)
    load = dst.set_state(RESUMING)
    assert load is not None
    load.write(stream)
    dst.set_state(RUNNING)
    assert dst.state.digest() == src.state.digest()


def test_p2p_devices_can_stop_in_running_p2p() -> None:
    dev = device("d", seed=None, flags=3)
    assert dev.set_state(RUNNING_P2P) is None and dev.get_state() == RUNNING_P2P
    with pytest.raises(TransitionError):
        dev.set_state(PRE_COPY)


# -- DMA logging ----------------------------------------------------------------------------------------------------


def bits(bitmap: bytes) -> list[int]:
    return [i for i in range(len(bitmap) * 8) if bitmap[i // 8] >> (i % 8) & 1]


def test_dma_logging_start_errors() -> None:
    dev = device("d", seed=None, memory=128 * KIB)
    cases: list[tuple[list[tuple[int, int]], int, int, str]] = [
        ([], PAGE, errno.EINVAL, "no ranges"),
        ([(i * PAGE, PAGE) for i in range(LOG_MAX_RANGES + 1)], PAGE, errno.E2BIG, "at most 256"),
        ([(100, PAGE)], PAGE, errno.EINVAL, "not aligned"),
        ([(0, PAGE + 1)], PAGE, errno.EINVAL, "not aligned"),
        ([(0, 4 * PAGE), (2 * PAGE, 4 * PAGE)], PAGE, errno.EINVAL, "overlaps"),
        ([((1 << 64) - PAGE, 2 * PAGE)], PAGE, errno.EOVERFLOW, "overflows"),
        ([(0, 3 * PAGE)], 3 * PAGE, errno.EINVAL, "not a power of two"),
    ]
    for ranges, page_size, err, text in cases:
        with pytest.raises(VfioError, match=text) as exc:
            dev.dma_logging_start(ranges, page_size)
        assert exc.value.errno == err
    assert dev.dma_logging_start([(0, PAGE)], PAGE) == PAGE
    with pytest.raises(VfioError, match="already started") as again:
        dev.dma_logging_start([(0, PAGE)], PAGE)
    assert again.value.errno == errno.EINVAL
    dev.dma_logging_stop()
    assert dev.dma_logging_start([(0, 2048)], 2048) == PAGE  # the driver tracks 4 KiB pages at the least


def test_dma_logging_report_errors() -> None:
    dev = device("d", seed=None)
    with pytest.raises(VfioError, match="not started") as err:
        dev.dma_logging_report(0, 64 * KIB, PAGE)
    assert err.value.errno == errno.EINVAL
    dev.dma_logging_start([(0, 64 * KIB)], PAGE)
    for page_size in (2048, 3 * PAGE, 0):
        with pytest.raises(VfioError, match="power of two of at least 4 KiB") as bad:
            dev.dma_logging_report(0, 64 * KIB, page_size)
        assert bad.value.errno == errno.EINVAL
    with pytest.raises(VfioError) as over:
        dev.dma_logging_report((1 << 64) - PAGE, 2 * PAGE, PAGE)
    assert over.value.errno == errno.EOVERFLOW
    dev.dma_logging_stop()
    with pytest.raises(VfioError, match="not started"):
        dev.dma_logging_report(0, 64 * KIB, PAGE)


def test_dma_logging_bitmaps_report_written_pages_once() -> None:
    dev = device("d", seed=None, memory=128 * KIB)  # 32 pages
    assert dev.dma_logging_start([(0, 64 * KIB), (96 * KIB, 32 * KIB)], PAGE) == PAGE
    for page in (0, 5, 17, 25):  # 17 is outside the logged ranges
        dev.state.write(page * PAGE + 10, b"dma")
    dev.state.write(8 * PAGE - 2, b"span")  # crosses pages 7 and 8
    report = dev.dma_logging_report(0, 128 * KIB, PAGE)
    assert len(report) == 8 and bits(report) == [0, 5, 7, 8, 25]
    assert bits(dev.dma_logging_report(0, 128 * KIB, PAGE)) == []  # reported pages were cleared

    dev.state.write(2 * PAGE, b"a")
    dev.state.write(3 * PAGE, b"b")
    dev.state.write(26 * PAGE, b"c")
    assert bits(dev.dma_logging_report(0, 64 * KIB, 2 * PAGE)) == [1]  # pages 2-3 are one 8 KiB page
    assert bits(dev.dma_logging_report(96 * KIB, 32 * KIB, PAGE)) == [2]  # page 26, relative to the iova
    assert len(dev.dma_logging_report(0, 65 * 64 * PAGE, PAGE)) == 8 * 65  # one u64 per 64 pages

    touched = dev.guest_tick(random.Random(1), pages=6)
    logged = [p for p in touched if p < 16 or p >= 24]
    assert bits(dev.dma_logging_report(0, 128 * KIB, PAGE)) == logged
    dev.dma_logging_stop()
    dev.dma_logging_stop()  # stopping twice is harmless


# -- the device's contents and header -------------------------------------------------------------------------------


def test_device_state_digest_and_guest() -> None:
    state = DeviceState.create(memory=32 * KIB, seed=1)
    assert state.digest() == DeviceState.create(memory=32 * KIB, seed=1).digest()
    assert state.digest() != state.blank_like().digest()
    before = state.digest()
    pages = state.guest_tick(random.Random(2))
    assert pages and all(0 <= p < 8 for p in pages) and state.digest() != before
    with pytest.raises(ValueError, match="whole number"):
        DeviceState(bytearray(4), bytearray(4), bytearray(5000))
    with pytest.raises(ValueError, match="outside"):
        state.write(32 * KIB - 1, b"ab")


def test_stream_header_round_trip() -> None:
    header = StreamHeader("m", "1.2.3", {"a": True, "b": 7, "c": "x"}, 256, 1024, 65536, PAGE)
    data = header.encode() + b"records"
    assert StreamHeader.decode(data) == (header, len(data) - 7)
    assert StreamHeader.decode(data[:20]) is None
    assert StreamHeader.decode(data[:40]) is None  # the JSON is not complete yet
    bumped = bytearray(data)
    bumped[8] = 2
    with pytest.raises(ValueError, match="header version 2, this driver reads version 1"):
        StreamHeader.decode(bytes(bumped))
