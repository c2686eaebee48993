"""The agent's small parts, each on its own: bursts, backoff, the notification socket (a real AF_UNIX datagram
socket), the journal's log format, the settings (file and command line), the uevent table, the simulated kernel's
uevents."""

from __future__ import annotations

import io
import logging
import os
import socket
from pathlib import Path

import pytest

from devmig.agent import logs
from devmig.agent.backoff import Backoff
from devmig.agent.coalesce import Burst, Coalescer
from devmig.agent.config import AgentConfig, load
from devmig.agent.events import ALL_PARTS, OVERFLOW, Uevent
from devmig.agent.hooks import published_hooks
from devmig.agent.notify import Notifier, watchdog_interval
from devmig.errors import InputError
from devmig.machine.lab import open_lab_host
from devmig.sim.persist import HostLog


def test_a_burst_is_read_once_quiet_or_at_its_deadline() -> None:
    c = Coalescer(window=1.0, max_delay=3.0)
    assert c.due() is None and c.take(0.0) is None
    c.add(10.0, {"sysfs"})
    c.add(10.5, {"vdpa"})
    assert c.due() == 11.5 and c.take(11.4) is None
    assert c.take(11.5) == Burst(frozenset({"sysfs", "vdpa"}), 2)
    assert c.due() is None
    # events that never stop: read at the first one's deadline all the same
    for t in range(20, 30):
        c.add(t * 0.5, {"sysfs"})
    assert c.due() == 10.0 + 3.0


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    b = Backoff(initial=1.0, maximum=8.0)
    assert [b.delay(n, lambda: 0.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [b.delay(n, lambda: 0.999) for n in range(1, 7)] == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0, 8.0], 0.01)
    assert b.delay(10**6, lambda: 0.5) == 6.0  # no overflow, however many failures
    assert b.delay(0, lambda: 0.5) == 0.0


def test_notifications_reach_a_real_datagram_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(path)})
        assert notifier.ready("watching")
        assert server.recv(4096) == b"READY=1\nSTATUS=watching"
        assert notifier.reloading()
        lines = server.recv(4096).decode().split("\n")
        assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=") and lines[1][15:].isdigit()
        for send, expected in ((notifier.stopping, b"STOPPING=1"), (notifier.watchdog, b"WATCHDOG=1")):
            assert send()
            assert server.recv(4096) == expected
    assert not notifier.send("STATUS=gone")  # the socket went: reported, not raised


def test_notifications_to_the_abstract_namespace() -> None:
    name = f"devmig-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(5)
        assert Notifier.from_environ({"NOTIFY_SOCKET": f"@{name}"}).status("hello")
        assert server.recv(4096) == b"STATUS=hello"
    assert not Notifier.from_environ({}).ready("x")  # not under systemd: nothing sent


def test_the_watchdog_interval_is_systemds_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_journal_lines_carry_priorities_and_no_timestamps(tmp_path: Path) -> None:
    out_path = tmp_path / "err"
    with out_path.open("w") as out:
        st = os.fstat(out.fileno())
        logger = logs.setup("debug", out, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logger.info("published")
        logger.warning("two\nlines")
        logger.error("failed")
        logger.debug("detail")
    assert out_path.read_text().splitlines() == ["<6>published", "<4>two", "<4>lines", "<3>failed", "<7>detail"]
    # JOURNAL_STREAM inherited by a process whose stderr is elsewhere: plain lines, with timestamps
    plain = io.StringIO()
    logs.setup("info", plain, {"JOURNAL_STREAM": "1:2"}).info("published")  # StringIO has no fileno
    assert plain.getvalue().endswith("devmig-agent INFO: published\n") and plain.getvalue()[:4].isdigit()
    assert logs.priority(logging.CRITICAL + 5) == 2 and logs.priority(5) == 7


def test_settings_come_from_the_file_under_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('store = "sqlite:///x.db"\nheartbeat-interval = 5\nnfd-dir = "nfd"\nevents = "kernel"\n')
    loaded = load({"heartbeat_interval": 7.0, "debounce": None}, config)
    assert (loaded.store, loaded.heartbeat_interval, loaded.debounce, loaded.events) == (
        "sqlite:///x.db",
        7.0,
        0.2,
        "kernel",
    )
    assert loaded.nfd_dir == tmp_path / "nfd"  # a path in the file is taken from the file's directory
    assert loaded.origin == f"config file {config}"
    assert load({}, None) == AgentConfig() or Path("/etc/devmig/agent.toml").exists()
    for text, message in (
        ("heartbeat = 5\n", "unknown key 'heartbeat' (known: store, name,"),
        ("heartbeat-interval = 0\n", "heartbeat-interval = 0; expected a number of seconds above 0"),
        ('events = "dbus"\n', "events = 'dbus'; expected one of auto, udev, kernel, none"),
        ("debounce = 3\nmax-delay = 1\n", "max-delay 1 is shorter than debounce 3"),
        ("store = [\n", "not TOML"),
    ):
        config.write_text(text)
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
            load({}, config)
    with pytest.raises(InputError, match=r"cannot read config file .*missing\.toml: no such file"):
        load({}, tmp_path / "missing.toml")


def test_the_nfd_hook_needs_an_existing_directory(tmp_path: Path) -> None:
    assert published_hooks(AgentConfig()) == []
    assert len(published_hooks(AgentConfig(nfd_dir=tmp_path))) == 1
    with pytest.raises(InputError, match=r"nfd-dir .*missing \(the defaults or --nfd-dir\): no such directory"):
        published_hooks(AgentConfig(nfd_dir=tmp_path / "missing"))


@pytest.mark.parametrize(
    ("env", "parts"),
    [
        ({"ACTION": "add", "SUBSYSTEM": "mdev", "DEVPATH": "/devices/x/u"}, {"sysfs"}),
        ({"ACTION": "bind", "SUBSYSTEM": "pci", "DEVPATH": "/devices/p/0000:00:02.0", "DRIVER": "vfio-pci"}, {"sysfs"}),
        ({"ACTION": "add", "SUBSYSTEM": "vdpa", "DEVPATH": "/devices/vd0"}, {"vdpa"}),
        ({"ACTION": "add", "SUBSYSTEM": "module", "DEVPATH": "/module/simgpu"}, ALL_PARTS),
        ({"ACTION": "add", "SUBSYSTEM": "net", "DEVPATH": "/devices/virtual/net/tap0"}, set()),
        ({"ACTION": "overflow", "SUBSYSTEM": OVERFLOW}, ALL_PARTS),
    ],
)
def test_each_subsystem_names_the_parts_it_changes(env: dict[str, str], parts: set[str]) -> None:
    assert Uevent.of(env).parts() == parts


def test_the_simulated_kernel_announces_its_changes() -> None:
    host = open_lab_host("sim:beta")
    seen: list[dict[str, str]] = []
    stop = host.uevents().listen(seen.append)
    uuid = "dddddddd-0000-4000-8000-000000000001"
    gpu = "sys/class/mdev_bus/0000:00:02.0"
    host.sysfs.write(f"{gpu}/mdev_supported_types/simgpu-1G/create", uuid)
    host.sysfs.write(f"sys/bus/mdev/devices/{uuid}/remove", "1")
    host.sysfs.write("sys/bus/pci/drivers/simnic_vfio_pci/unbind", "0000:3b:00.2")
    host.vdpa().add("vd0", "vdpasim_net")
    host.vdpa().delete("vd0")
    host.sim.reload_driver("simgpu", "1.3.0")
    stop()
    host.vdpa().add("vd1", "vdpasim_net")  # not heard any more
    brief = [(e["ACTION"], e["SUBSYSTEM"], e["DEVPATH"], e.get("DRIVER")) for e in seen]
    dev = f"/devices/pci0000:00/0000:00:02.0/{uuid}"
    assert brief == [
        ("add", "mdev", dev, None),
        ("bind", "mdev", dev, "simgpu"),
        ("unbind", "mdev", dev, "simgpu"),
        ("remove", "mdev", dev, None),
        ("unbind", "pci", "/devices/pci0000:3b/0000:3b:00.2", "simnic_vfio_pci"),
        ("add", "vdpa", "/devices/vd0", None),
        ("remove", "vdpa", "/devices/vd0", None),
        ("unbind", "pci", "/devices/pci0000:00/0000:00:02.0", "simgpu"),
        ("remove", "module", "/module/simgpu", None),
        ("add", "module", "/module/simgpu", None),
        ("bind", "pci", "/devices/pci0000:00/0000:00:02.0", "simgpu"),
    ]
    assert [int(e["SEQNUM"]) for e in seen] == sorted(int(e["SEQNUM"]) for e in seen)


def test_a_reader_catches_up_with_changes_another_process_logged(state_dir: Path) -> None:
    writer = open_lab_host("sim:beta")
    uuid = "dddddddd-0000-4000-8000-000000000002"
    writer.sysfs.write("sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/simgpu-1G/create", uuid)
    writer.sim.reload_driver("simgpu", "1.3.0")
    # a second process: its own lab, built afresh, following the same log
    from devmig.sim.lab import load_lab

    other = load_lab("default").host("beta")
    assert writer.log is not None
    reader = HostLog(writer.log.path, "sim:beta")
    heard: list[str] = []
    other.kernel.uevents.listen(lambda e: heard.append(f"{e['ACTION']} {e['SUBSYSTEM']}"))
    assert reader.catch_up(other.kernel.fs) == 2
    assert heard[:2] == ["add mdev", "bind mdev"] and "add module" in heard
    assert reader.catch_up(other.kernel.fs) == 0  # nothing new: one stat
    assert writer.log.path.stat().st_size == reader.offset  # the reader wrote nothing
    assert other.kernel.fs.read("sys/module/simgpu/version").strip() == "1.3.0"
    assert uuid not in other.kernel.mdevs  # the reload removed it, as on the writer's side
    assert "remove mdev" in heard
