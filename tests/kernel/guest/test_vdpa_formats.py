"""vDPA devices of the real kernel in devmig's formats: list, describe, capabilities and check on vdpa_sim."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devmig.compat import check
from devmig.model import DeviceDescriptor, TypeCapability
from devmig.vdpa.netlink import NetlinkVdpa
from tests.kernel.guest.conftest import devmig

pytestmark = pytest.mark.kernel

MAC = "52:54:00:aa:bb:cc"


@pytest.fixture
def kernel() -> Iterator[NetlinkVdpa]:
    with NetlinkVdpa() as backend:
        yield backend
        for dev in backend.devices():
            if dev.name.startswith("fmt"):
                backend.delete(dev.name)


def test_a_vdpa_sim_device_is_listed_described_and_checked(kernel: NetlinkVdpa) -> None:
    kernel.add("fmt0", "vdpasim_net", mac=MAC, mtu=9000)
    listed = json.loads(devmig("list", "-j").out)["devices"]
    (entry,) = [d for d in listed if d["kind"] == "vdpa"]
    assert (entry["name"], entry["mgmtdev"], entry["type"]) == ("fmt0", "vdpasim_net", "network")
    described = devmig("describe", "fmt0")
    assert described.code == 0, described.err
    descriptor = DeviceDescriptor.model_validate_json(described.out)
    assert descriptor.type == "vdpasim_net-net" and descriptor.api == {"class": "net"}
    assert descriptor.params["mac"] == MAC and descriptor.params["mtu"] == 9000
    assert descriptor.params["feature_mac"] is True and "feature_mq" not in descriptor.params
    net = devmig("capabilities", "-t", "vdpasim_net-net", "-j")
    blk = devmig("capabilities", "-t", "vdpasim_blk-block", "-j")
    assert net.code == 0 and blk.code == 0, net.err + blk.err
    assert check(descriptor, TypeCapability.model_validate_json(net.out)).compatible
    to_blk = check(descriptor, TypeCapability.model_validate_json(blk.out))
    assert not to_blk.compatible and "api-mismatch" in {f.code for f in to_blk.errors}
