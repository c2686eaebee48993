"""The netlink client (devmig.vdpa.netlink) against the real vdpa family with vdpa_sim, and the simulator held to it.

Every request goes to the kernel and to a fresh `SimVdpa()`: both must return the same data or refuse with the same
(errno, extack). The expected values are what Linux 6.12's vdpa_sim answered (docs/vdpa.md lists them). The guest
has no virtio_vdpa or vhost_vdpa, so no driver ever negotiates features: vstats can only be refused with EAGAIN.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devmig.sim.vdpa import VDPASIM_BLK_FEATURES, VDPASIM_NET_FEATURES, SimVdpa
from devmig.vdpa.backend import VdpaBackend, VdpaError
from devmig.vdpa.netlink import NetlinkVdpa
from devmig.vdpa.records import MgmtDev, NetConfig, VdpaDev
from devmig.vdpa.virtio import F_ACCESS_PLATFORM, F_NET_MAC, F_NET_MQ, F_VERSION_1

pytestmark = pytest.mark.kernel


@dataclass(frozen=True)
class Refused:
    errno: int
    extack: str | None


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except VdpaError as exc:
        return Refused(exc.errno, exc.extack)


class Both:
    """The kernel and the simulator, asked the same things."""

    def __init__(self, kernel: NetlinkVdpa) -> None:
        self.kernel = kernel
        self.sim = SimVdpa()
        self.added: list[str] = []

    def same(self, call: Callable[[VdpaBackend], Any]) -> Any:
        theirs = outcome(lambda: call(self.kernel))
        ours = outcome(lambda: call(self.sim))
        assert ours == theirs, f"the simulator answers {ours}, the kernel {theirs}"
        return theirs

    def add(self, name: str, mgmtdev: str = "vdpasim_net", **options: Any) -> Any:
        self.added.append(name)
        return self.same(lambda b: b.add(name, mgmtdev, **options))


@pytest.fixture
def both() -> Iterator[Both]:
    with NetlinkVdpa() as kernel:
        pair = Both(kernel)
        yield pair
        for name in pair.added:  # whatever the test did, leave no device behind
            try:
                kernel.delete(name)
            except VdpaError as exc:
                assert exc.errno == errno.ENODEV


def net_dev(name: str) -> VdpaDev:
    return VdpaDev(name, "vdpasim_net", vendor_id=0, device_id=1, max_vqs=3, max_vq_size=256, min_vq_size=1)


def bits(*numbers: int) -> int:
    return sum(1 << n for n in set(numbers))


# --- management devices ------------------------------------------------------------------------------------------


def test_mgmtdevs(both: Both) -> None:
    net = MgmtDev(None, "vdpasim_net", ["net"], max_supported_vqs=3, dev_features=0x308830028)
    blk = MgmtDev(None, "vdpasim_blk", ["block"], max_supported_vqs=0, dev_features=0)
    assert VDPASIM_NET_FEATURES == 0x308830028
    assert both.same(lambda b: b.mgmtdevs()) == [net, blk]
    assert both.same(lambda b: b.mgmtdev("vdpasim_net")) == net
    assert both.same(lambda b: b.mgmtdev("vdpasim_blk")) == blk


@pytest.mark.parametrize("handle", ["nosuch", "pci/vdpasim_net"])
def test_unknown_mgmtdev(both: Both, handle: str) -> None:
    # a bus-less mgmtdev is not found under a bus name (mgmtdev_handle_match)
    assert both.same(lambda b: b.mgmtdev(handle)) == Refused(
        errno.ENODEV, "vdpa: Fail to find the specified mgmt device"
    )


# --- devices -----------------------------------------------------------------------------------------------------


def test_add_show_config_delete(both: Both) -> None:
    assert both.same(lambda b: b.devices()) == []
    assert both.add("vn0") == net_dev("vn0")  # min_vq_size: vdpa_sim has no minimum, the core sends 1
    assert both.same(lambda b: b.device("vn0")) == net_dev("vn0")
    assert both.same(lambda b: b.devices()) == [net_dev("vn0")]
    config = both.same(lambda b: b.config("vn0"))
    assert (config.name, config.device_id) == ("vn0", 1)
    assert config.device_features == 0x308830028
    assert config.negotiated_features is None  # no driver: FEATURES_OK never set
    assert config.net == NetConfig(mac="00:00:00:00:00:00", mtu=1500, status=1, max_vqp=None)  # no MQ: no max_vqp
    assert config.blk is None
    assert both.same(lambda b: b.delete("vn0")) is None
    assert both.same(lambda b: b.devices()) == []
    gone = Refused(errno.ENODEV, "vdpa: device not found")
    assert both.same(lambda b: b.delete("vn0")) == gone
    assert both.same(lambda b: b.device("vn0")) == gone
    assert both.same(lambda b: b.config("vn0")) == gone


def test_add_with_mac_and_mtu(both: Both) -> None:
    assert both.add("vn1", mac="00:11:22:33:44:55", mtu=9000) == net_dev("vn1")
    net = both.same(lambda b: b.config("vn1")).net
    assert (net.mac, net.mtu, net.status) == ("00:11:22:33:44:55", 9000, 1)


def test_add_with_device_features(both: Both) -> None:
    features = bits(F_NET_MAC, F_VERSION_1, F_ACCESS_PLATFORM)
    assert both.add("vn2", device_features=features, mac="02:00:00:00:00:02") == net_dev("vn2")
    config = both.same(lambda b: b.config("vn2"))
    assert config.device_features == features == 0x300000020
    # only the provisioned features' fields are reported: MAC, not MTU or STATUS
    assert config.net == NetConfig(mac="02:00:00:00:00:02")


def test_add_mtu_boundary_and_a_multicast_mac(both: Both) -> None:
    # the policy's minimum is 68 inclusive; DEV_NEW does not check the mac (only `dev set` does)
    assert both.add("vn3", mtu=68) == net_dev("vn3")
    assert both.add("vn4", mac="01:00:00:00:00:01") == net_dev("vn4")
    assert both.same(lambda b: b.config("vn3")).net.mtu == 68
    assert both.same(lambda b: b.config("vn4")).net.mac == "01:00:00:00:00:01"
    assert [d.name for d in both.same(lambda b: b.devices())] == ["vn3", "vn4"]


ADD_REFUSALS: dict[str, tuple[dict[str, Any], Refused]] = {
    "bad mgmtdev": ({"mgmtdev": "nosuch"}, Refused(errno.ENODEV, "vdpa: Fail to find the specified management device")),
    "bus mgmtdev": (
        {"mgmtdev": "pci/vdpasim_net"},
        Refused(errno.ENODEV, "vdpa: Fail to find the specified management device"),
    ),
    "max_vqp": ({"max_vqp": 2}, Refused(errno.EOPNOTSUPP, "vdpa: Some provided attributes are not supported: 0x1000")),
    "max_vqp 0": ({"max_vqp": 0}, Refused(errno.EINVAL, "vdpa: At least one pair of VQs is required")),
    "mtu 67": ({"mtu": 67}, Refused(errno.ERANGE, "integer out of range")),
    "mtu 0": ({"mtu": 0}, Refused(errno.ERANGE, "integer out of range")),
    "features without MTU": (
        {"device_features": 0x300000020, "mtu": 1400},
        Refused(errno.EINVAL, "vdpa: Missing features 0x8 for provided attributes"),
    ),
    # vdpasim_create refuses features beyond its own, without an extack
    "features beyond": ({"device_features": 0x300000020 | bits(F_NET_MQ)}, Refused(errno.EINVAL, None)),
    "blk mac": (
        {"mgmtdev": "vdpasim_blk", "mac": "00:11:22:33:44:55"},
        Refused(errno.EOPNOTSUPP, "vdpa: Some provided attributes are not supported: 0x400"),
    ),
    "blk features": (
        {"mgmtdev": "vdpasim_blk", "device_features": bits(F_VERSION_1)},
        Refused(errno.EOPNOTSUPP, "vdpa: Some provided attributes are not supported: 0x100000"),
    ),
}


@pytest.mark.parametrize("case", ADD_REFUSALS)
def test_add_refused(both: Both, case: str) -> None:
    options, refused = ADD_REFUSALS[case]
    assert both.add("vbad", **options) == refused
    assert both.same(lambda b: b.devices()) == []


def test_duplicate_add(both: Both) -> None:
    both.add("vdup")
    assert both.add("vdup") == Refused(errno.EEXIST, None)  # the bus refuses the name: no extack


def test_block_device(both: Both) -> None:
    dev = both.add("vb0", "vdpasim_blk")
    assert dev == VdpaDev("vb0", "vdpasim_blk", vendor_id=0, device_id=2, max_vqs=1, max_vq_size=256, min_vq_size=1)
    config = both.same(lambda b: b.config("vb0"))
    assert config.device_features == VDPASIM_BLK_FEATURES == 0x308007646
    assert config.net is None and config.blk is not None
    assert (config.blk.capacity, config.blk.read_only, config.blk.flush) == (0x40000, False, True)
    assert (config.blk.size_max, config.blk.seg_max, config.blk.blk_size, config.blk.num_queues) == (4096, 32, 512, 1)
    assert config.blk.max_discard_sec == config.blk.max_write_zeroes_sec == 0xFFFF_FFFF
    assert both.same(lambda b: b.vstats("vb0", 0)) == Refused(errno.EOPNOTSUPP, None)
    # accepted, with a warning in the ack: vdpasim_blk cannot set a mac
    assert both.same(lambda b: b.set("vb0", mac="00:aa:bb:cc:dd:ee")) == "vdpa: vb0 device not supported"


# --- vstats and set ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qidx", "refused"),
    [
        (0, Refused(errno.EAGAIN, "vdpa: feature negotiation not complete")),
        (2, Refused(errno.EAGAIN, "vdpa: feature negotiation not complete")),
        (3, Refused(errno.EAGAIN, "vdpa: feature negotiation not complete")),  # the range is checked first...
        (0x8000, Refused(errno.EAGAIN, "vdpa: feature negotiation not complete")),
        (0x8001, Refused(errno.ERANGE, "vdpa: queue index exceeds max value")),  # ...against 0x8000 only
    ],
)
def test_vstats_before_negotiation(both: Both, qidx: int, refused: Refused) -> None:
    both.add("vs0")
    assert both.same(lambda b: b.vstats("vs0", qidx)) == refused


def test_vstats_unknown_device(both: Both) -> None:
    assert both.same(lambda b: b.vstats("nosuch", 0)) == Refused(errno.ENODEV, "vdpa: device not found")


def test_set_mac(both: Both) -> None:
    both.add("vm0")
    assert both.same(lambda b: b.set("vm0", mac="00:aa:bb:cc:dd:ee")) is None
    assert both.same(lambda b: b.config("vm0")).net.mac == "00:aa:bb:cc:dd:ee"
    invalid = Refused(errno.EOPNOTSUPP, "vdpa: Invalid MAC address")
    assert both.same(lambda b: b.set("vm0", mac="01:aa:bb:cc:dd:ee")) == invalid  # multicast
    assert both.same(lambda b: b.set("vm0", mac="00:00:00:00:00:00")) == invalid  # zero
    assert both.same(lambda b: b.set("vm0")) == Refused(errno.EOPNOTSUPP, None)
    assert both.same(lambda b: b.set("nosuch", mac="00:aa:bb:cc:dd:ee")) == Refused(
        errno.ENODEV, "vdpa: device not found"
    )
    assert both.same(lambda b: b.config("vm0")).net.mac == "00:aa:bb:cc:dd:ee"


# --- without CAP_NET_ADMIN, outside the initial network namespace -------------------------------------------------

PROBE = """
import json, sys
from devmig.vdpa.backend import VdpaError, VdpaUnavailableError
from devmig.vdpa.netlink import NetlinkVdpa
try:
    nl = NetlinkVdpa()
except VdpaUnavailableError as exc:
    print(json.dumps({"unavailable": str(exc)}))
    sys.exit(0)
out = {"mgmtdevs": [m.handle for m in nl.mgmtdevs()]}
for name, call in [
    ("add", lambda: nl.add("vp0", "vdpasim_net")),
    ("del", lambda: nl.delete("vp0")),
    ("set", lambda: nl.set("vp0", mac="00:11:22:33:44:55")),
    ("vstats", lambda: nl.vstats("vp0", 0)),
    ("config", lambda: nl.config("vp0")),
]:
    try:
        call()
        out[name] = None
    except VdpaError as exc:
        out[name] = [exc.errno, exc.extack, exc.hint]
print(json.dumps(out))
"""


def probe(*wrapper: str) -> dict[str, Any]:
    proc = subprocess.run([*wrapper, sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_without_cap_net_admin() -> None:
    """Admin requests get EPERM without extack, as SimVdpa(privileged=False) says; devmig adds why."""
    got = probe("setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin")
    assert got["mgmtdevs"] == ["vdpasim_net", "vdpasim_blk"]  # reading needs no capability
    sim = SimVdpa(privileged=False)
    calls: dict[str, Callable[[], Any]] = {
        "add": lambda: sim.add("vp0", "vdpasim_net"),
        "del": lambda: sim.delete("vp0"),
        "set": lambda: sim.set("vp0", mac="00:11:22:33:44:55"),
        "vstats": lambda: sim.vstats("vp0", 0),
    }
    for name, call in calls.items():
        err, extack, hint = got[name]
        assert Refused(err, extack) == outcome(call) == Refused(errno.EPERM, None), name
        assert "needs CAP_NET_ADMIN" in hint and "this process does not have it" in hint
    # config is not an admin command: the device is simply not there
    assert got["config"] == [errno.ENODEV, "vdpa: device not found", None]


def test_family_missing_in_another_network_namespace() -> None:
    """The family is netnsok=false: a new network namespace does not see it, iproute2 neither; devmig says why."""
    got = probe("unshare", "--net")
    assert "network namespace" in got["unavailable"] and "netnsok=false" in got["unavailable"]
    assert "nsenter --net=/proc/1/ns/net" in got["unavailable"]
    theirs = subprocess.run(["unshare", "--net", "vdpa", "mgmtdev", "show"], capture_output=True, text=True)
    assert (theirs.returncode, theirs.stderr) == (1, "Failed to connect to vdpa Netlink\n")
