"""`devmig lab --lab variants`: the story of an Xe VF and a virtio-net VF across hosts that differ in one
variant-driver rule each, as whole processes."""

from __future__ import annotations

import json

from tests.cli.conftest import run_devmig


def _rows(out: str, hosts: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()[1:3]
        for line in out.splitlines()
        if line.startswith("   ") and line.split() and line.split()[0] in hosts
    }


def test_the_xe_vf_story() -> None:
    result = run_devmig("lab", "--lab", "variants")
    assert result.code == 0 and result.err == ""
    out = result.out
    assert "1. The device: on src, 0000:03:00.1 is running" in out
    assert "model kernel.org/vfio/xe" in out
    assert "its driver migrates with stop_copy, p2p; its DMA is tracked by: iommu." in out
    hosts = ("twin", "underscore", "stepping", "other-id", "old-guc", "no-dirty")
    assert _rows(out, hosts) == {
        "twin": ["xe-vfio-pci:8086:e20b", "identical"],
        "underscore": ["xe_vfio_pci:8086:e20b", "compatible"],
        "stepping": ["xe-vfio-pci:8086:e20b", "incompatible"],
        "other-id": ["-", "-"],
        "old-guc": ["xe-vfio-pci:8086:e20b", "incompatible"],
        "no-dirty": ["xe-vfio-pci:8086:e20b", "incompatible"],
    }
    assert "api.revision differs: source 00, destination 01" in out
    assert "no PCI function 8086:e20b" in out
    assert "the destination's driver implements no VFIO migration" in out
    assert "the destination cannot track the pages the device's DMA dirties" in out
    assert "3. Best destination: twin" in out and "the state arrived byte for byte." in out


def test_the_nic_story_in_json() -> None:
    result = run_devmig("lab", "--lab", "variants", "--device", "0000:5e:00.1", "-j")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["source"]["descriptor"]["migration"] == {
        "flags": ["stop_copy", "p2p"],
        "dirty_tracking": "iommu",
    }
    assert data["destination"] == "twin" and data["identical"] is True
