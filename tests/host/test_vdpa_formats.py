"""vDPA devices and management devices in devmig's formats, and `devmig check` on them (devmig.host.vdpa)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from devmig.cli import main
from devmig.compat import check
from devmig.host import vdpa
from devmig.machine import open_host
from devmig.model import DeviceDescriptor, TypeCapability
from devmig.sim.vdpa import SimVdpa, pci_net, vdpasim_blk, vdpasim_net
from devmig.vdpa.virtio import F_NET_MQ, F_NET_MTU

MAC = "52:54:00:12:34:56"


def net_capability(backend: SimVdpa, handle: str) -> TypeCapability:
    (cap,) = [c for c in vdpa.capabilities(backend.mgmtdev(handle)) if c.api["class"] == "net"]
    return cap


def test_a_management_device_offers_exactly_its_features() -> None:
    backend = SimVdpa()
    cap = net_capability(backend, "vdpasim_net")
    assert (cap.device_api, cap.type, cap.api, list(cap.models)) == (
        "vdpa",
        "vdpasim_net-net",
        {"class": "net"},
        ["oasis-open.org/virtio-net"],
    )
    specs = cap.param_specs()
    assert specs["feature_mac"].allowed_values == [True, False]
    assert specs["feature_mq"].allowed_values == [False]  # vdpasim_net cannot offer MQ
    assert specs["max_vqp"].allowed_values == [1] and specs["mtu"].allowed_values == ["68-65535"]
    assert all(s.off_value is not None for s in specs.values())  # everything can be switched off
    (blk,) = vdpa.capabilities(backend.mgmtdev("vdpasim_blk"))
    assert blk.type == "vdpasim_blk-block" and "mac" not in blk.param_specs()
    TypeCapability.model_validate_json(cap.model_dump_json())  # a valid document, round trip


def test_a_device_describes_its_features_and_configuration() -> None:
    backend = SimVdpa()
    dev = backend.add("v0", "vdpasim_net", mac=MAC, mtu=9000)
    descriptor = vdpa.descriptor(dev, backend.config("v0"))
    assert descriptor.params["mac"] == MAC and descriptor.params["mtu"] == 9000
    assert descriptor.params["feature_mac"] is True and "feature_mq" not in descriptor.params
    assert "max_vqp" not in descriptor.params  # 1 is the off value
    DeviceDescriptor.model_validate_json(descriptor.model_dump_json())
    verdict = check(descriptor, net_capability(backend, "vdpasim_net"))
    assert verdict.compatible and verdict.plan is not None and verdict.plan["mtu"] == 9000


def test_negotiated_features_are_what_must_be_kept() -> None:
    backend = SimVdpa()
    backend.add("v0", "vdpasim_net")
    backend.negotiate("v0", features=1 << 32 | 1 << 5)  # VERSION_1 and MAC only
    descriptor = vdpa.descriptor(backend.device("v0"), backend.config("v0"))
    assert {k for k, v in descriptor.params.items() if k.startswith("feature_")} == {
        "feature_mac",
        "feature_version_1",
    }


def test_another_class_or_a_missing_feature_is_refused_with_reasons() -> None:
    backend = SimVdpa([pci_net("0000:03:00.2", max_vqp=8), vdpasim_net(), vdpasim_blk()])
    dev = backend.add("big", "pci/0000:03:00.2", max_vqp=4, mtu=9000, mac=MAC)
    descriptor = vdpa.descriptor(dev, backend.config("big"))
    assert descriptor.type == "pci:0000:03:00.2-net" and descriptor.params["max_vqp"] == 4
    to_sim = check(descriptor, net_capability(backend, "vdpasim_net"))
    codes = {(f.code, f.field) for f in to_sim.errors}
    assert ("param-value-not-allowed", "params.feature_mq") in codes
    assert ("param-value-not-allowed", "params.max_vqp") in codes
    assert any(f.code == "type-differs" for f in to_sim.warnings)  # another mgmtdev, the same virtio model
    (blk,) = vdpa.capabilities(backend.mgmtdev("vdpasim_blk"))
    to_blk = check(descriptor, blk)
    assert {"api-mismatch", "model-mismatch"} <= {f.code for f in to_blk.errors}
    back = check(
        vdpa.descriptor(backend.add("small", "vdpasim_net"), backend.config("small")),
        net_capability(backend, "pci/0000:03:00.2"),
    )
    assert back.compatible  # a vdpasim_net device fits the bigger management device


def test_max_vqp_allows_half_the_queues_with_mq() -> None:
    backend = SimVdpa([pci_net("0000:03:00.2", max_vqp=8)])
    mgmt = backend.mgmtdev("pci/0000:03:00.2")
    assert mgmt.dev_features is not None and mgmt.dev_features >> F_NET_MQ & 1 and mgmt.dev_features >> F_NET_MTU & 1
    specs = net_capability(backend, "pci/0000:03:00.2").param_specs()
    assert specs["max_vqp"].allowed_values == [f"1-{(mgmt.max_supported_vqs or 0) // 2}"]


def test_a_vdpa_descriptor_needs_its_class() -> None:
    with pytest.raises(ValueError, match=r"api\.class is required for device_api vdpa"):
        DeviceDescriptor.model_validate({"device_api": "vdpa", "type": "x-net", "software_version": "1.0.0"})
    with pytest.raises(ValueError, match="net or block"):
        DeviceDescriptor.model_validate(
            {"device_api": "vdpa", "type": "x-net", "software_version": "1.0.0", "api": {"class": "gpu"}}
        )


def devmig(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_list_describe_capabilities_and_check_on_a_lab_host() -> None:
    backend = open_host("sim:alpha").vdpa()
    backend.add("vdpa0", "vdpasim_net", mac=MAC)
    code, out, _ = devmig("list", "--host", "sim:alpha")
    assert code == 0 and any(line.split()[:3] == ["vdpa", "vdpa0", "vdpasim_net"] for line in out.splitlines())
    code, out, _ = devmig("list", "--host", "sim:alpha", "-j")
    (entry,) = [d for d in json.loads(out)["devices"] if d["kind"] == "vdpa"]
    assert entry["name"] == "vdpa0" and entry["type"] == "network" and entry["max_vqs"] == 3
    code, described, _ = devmig("describe", "vdpa0", "--host", "sim:alpha")
    assert code == 0 and json.loads(described)["params"]["mac"] == MAC
    code, capability, _ = devmig("capabilities", "--host", "sim:beta", "-t", "vdpasim_net-net", "-j")
    assert code == 0
    verdict = check(DeviceDescriptor.model_validate_json(described), TypeCapability.model_validate_json(capability))
    assert verdict.compatible
    code, _, err = devmig("describe", "vdpa9", "--host", "sim:alpha")
    assert code == 2 and "vdpa9: not found" in err
