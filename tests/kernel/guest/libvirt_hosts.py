"""Two libvirt "hosts" inside the kernel lab's guest: each a monolithic libvirtd in its own mount and UTS namespace
(its own hostname, host UUID, configuration, state, runtime, cache and log directories), both on the guest's one
kernel, so an mtty mdev made by one is real for the other. QEMU 10 and libvirt 11 come from the host root the
guest runs (bookworm-backports on Debian 12). The recipe and its reasons: docs/kernel-lab.md.

Everything a host keeps lives under ROOT/<name>, which the test process sees too (its hooks, devmig's state,
libvirt's logs and QEMU's pid files), so assertions read them without entering the namespace.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/tmp/devmig-libvirt")
#: the directories libvirt writes, each bound over by the host's own (relative to the host's directory)
BOUND = {
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "run": "/run/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
#: libvirt refuses a host UUID whose hex digits are all the same; two distinct ones
HOST_UUIDS = {"hosta": "8d2f4c1a-1b3e-4f5a-9c7d-0e1f2a3b4c5d", "hostb": "3e9a7b2c-4d5f-4a6b-8c9d-1f2e3d4c5b6a"}
QEMU_CONF = """\
# no SELinux/AppArmor, no cgroups, no virtlogd and no private /dev in the guest (its /dev/vfio nodes would be missing)
security_driver = "none"
user = "root"
group = "root"
cgroup_controllers = [ ]
stdio_handler = "file"
namespaces = [ ]
"""
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


@dataclass
class Virsh:
    code: int
    out: str
    err: str
    seconds: float


@dataclass
class LibvirtHost:
    name: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def dir(self) -> Path:
        return ROOT / self.name

    @property
    def uri(self) -> str:
        """The daemon's socket through the remote driver (qemu+unix): a plain qemu:/// URI given to the other daemon
        for a peer-to-peer migration would open that daemon's own QEMU driver ("migrate guest to the same host")."""
        return f"qemu+unix:///system?socket={self.dir / 'sock' / 'libvirt-sock'}"

    @property
    def hooks_dir(self) -> Path:
        return self.dir / "etc" / "hooks"

    @property
    def state_dir(self) -> Path:
        """devmig's state directory for this host (its hook's claims, journals, records)."""
        return self.dir / "devmig"

    def claims(self) -> list[Path]:
        return sorted((self.state_dir / "hosts" / "local" / "claims").glob("*.json"))

    def records(self) -> list[Path]:
        return sorted((self.state_dir / "hosts" / "local" / "prepared").glob("*.json"))

    def journals(self) -> list[Path]:
        return sorted(p for p in (self.state_dir / "hosts" / "local" / "journal").glob("*") if p.is_file())

    def qemu_log(self, domain: str) -> Path:
        return self.dir / "log" / "qemu" / f"{domain}.log"

    def qemu_pid(self, domain: str) -> int | None:
        try:
            return int((self.dir / "run" / "qemu" / f"{domain}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        for sub in (*BOUND, "sock", "devmig", "etc/hooks/qemu.d"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "etc" / "libvirtd.conf").write_text(
            f'host_uuid = "{HOST_UUIDS[self.name]}"\n'
            f'unix_sock_dir = "{self.dir / "sock"}"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            # errors, and every hook call libvirt makes (util.hook at debug)
            'log_level = 3\nlog_filters = "1:util.hook"\n'
            f'log_outputs = "1:file:{self.dir / "log" / "libvirtd.log"}"\n'
        )
        (self.dir / "etc" / "qemu.conf").write_text(QEMU_CONF)
        Path("/run/libvirt").mkdir(parents=True, exist_ok=True)
        binds = " && ".join(f"mount --bind {self.dir / sub} {target}" for sub, target in BOUND.items())
        daemon = f"libvirtd -f {self.dir / 'etc' / 'libvirtd.conf'} -p {self.dir / 'libvirtd.pid'}"
        script = f"hostname {self.name} && {binds} && exec {daemon}"
        with (self.dir / "daemon.out").open("ab") as out:
            self.process = subprocess.Popen(
                ["unshare", "-m", "-u", "sh", "-c", script], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"libvirtd {self.name} exited {self.process.returncode}: {self.daemon_output()}")
            if self.virsh("version").code == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"libvirtd {self.name} did not answer within 90 s: {self.daemon_output()}")

    def daemon_output(self) -> str:
        return (self.dir / "daemon.out").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        for domain in self.domains():
            self.virsh("destroy", domain)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def virsh(self, *args: str, timeout: float = 180) -> Virsh:
        started = time.perf_counter()
        done = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True, timeout=timeout)
        return Virsh(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)

    def domains(self, *, inactive: bool = False) -> list[str]:
        listed = self.virsh("list", "--name", *(["--all"] if inactive else []))
        return [line.strip() for line in listed.out.splitlines() if line.strip()]

    def forget(self, domain: str) -> None:
        """The domain gone from this host whatever state it is in."""
        self.virsh("destroy", domain)
        self.virsh("undefine", domain)

    def migrate_argv(self, domain: str, dest: LibvirtHost, port: int, *extra: str) -> list[str]:
        """`virsh migrate --live` to `dest` as an operator types it, the state over the guest's loopback (libvirt
        refuses a local address as migration_host, so the URI and listen address are given)."""
        return [
            "virsh",
            "-c",
            self.uri,
            "migrate",
            "--live",
            domain,
            dest.uri,
            "--migrateuri",
            f"tcp://127.0.0.1:{port}",
            "--listen-address",
            "127.0.0.1",
            *extra,
        ]


#: QEMU's trace events of VFIO device state saved and loaded (Debian's QEMU logs them to the domain's log file)
TRACED = ("vfio_save_complete_precopy", "vfio_load_state_device_data")


def mtty_domain(name: str, uuid: str, mdevs: list[str]) -> str:
    """A firmware-only VM (no disk, no OS) with one mtty mdev hostdev per UUID, each with the two vfio-pci
    properties Debian's kernel needs for migration (it has no IOMMUFD, so no device dirty-page reports), and QEMU
    tracing the VFIO device state it saves and loads."""
    hostdevs, overrides = [], []
    for n, mdev in enumerate(mdevs):
        hostdevs.append(
            f"<hostdev mode='subsystem' type='mdev' model='vfio-pci' managed='no'>"
            f"<source><address uuid='{mdev}'/></source><alias name='ua-mtty{n}'/></hostdev>"
        )
        overrides.append(
            f"<qemu:device alias='ua-mtty{n}'><qemu:frontend>"
            "<qemu:property name='x-device-dirty-page-tracking' type='string' value='off'/>"
            "<qemu:property name='enable-migration' type='string' value='on'/>"
            "</qemu:frontend></qemu:device>"
        )
    return f"""<domain type='qemu' xmlns:qemu='{QEMU_NS}'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {"".join(hostdevs)}
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>{"".join(f"<qemu:arg value='-trace'/><qemu:arg value='{e}'/>" for e in TRACED)}</qemu:commandline>
  <qemu:override>{"".join(overrides)}</qemu:override>
</domain>
"""


def shown(argv: list[str]) -> str:
    return shlex.join(argv)
