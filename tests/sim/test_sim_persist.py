"""A simulated host keeps the changes made through the seam between processes, and says so when it cannot."""

from __future__ import annotations

import json

import pytest

from devmig.errors import InputError
from devmig.host.inventory import Inventory
from devmig.host.ops import create_mdev
from devmig.machine import open_host
from devmig.machine.lab import forget_labs, sim_state_file
from devmig.sim.persist import StaleSimHostError

NEW = "11111111-2222-4333-8444-555555555555"


def test_changes_are_replayed_when_the_host_is_opened_again() -> None:
    beta = open_host("sim:beta")
    create_mdev(beta.sysfs, "0000:00:02.0", "simgpu-2G", NEW)
    beta.sysfs.write(f"sys/bus/mdev/devices/{NEW}/migration/aggregator", "2")
    beta.sysfs.write_file("etc/mdevctl.d/0000:00:02.0/x", "{}\n")
    forget_labs()
    again = open_host("sim:beta")
    assert again.sysfs is not beta.sysfs
    assert [m.uuid for m in Inventory.scan(again.sysfs).mdevs] == [NEW]
    assert again.sysfs.read(f"sys/bus/mdev/devices/{NEW}/migration/aggregator") == "2"
    assert again.sysfs.read("etc/mdevctl.d/0000:00:02.0/x") == "{}"
    assert open_host("sim:gamma").sysfs.listdir("sys/bus/mdev/devices") == []  # other hosts untouched


def test_a_log_that_no_longer_applies_is_one_clear_error() -> None:
    log = sim_state_file("default", "beta")
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"op": "write", "path": "sys/nowhere", "text": "1"}) + "\n")
    with pytest.raises(InputError, match=r"change 1 in .* no longer applies .*devmig lab --reset"):
        open_host("sim:beta")


def test_a_torn_last_line_is_a_change_never_made() -> None:
    log = sim_state_file("default", "beta")
    log.parent.mkdir(parents=True)
    log.write_text('{"op": "write", "path": "sys/bus/pci/drivers_pro')
    assert Inventory.scan(open_host("sim:beta").sysfs).mdevs == []


def test_two_processes_changing_one_host_is_refused_not_lost() -> None:
    beta = open_host("sim:beta")
    log = sim_state_file("default", "beta")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as other:  # another process appended meanwhile
        other.write(json.dumps({"op": "write_file", "path": "etc/x", "text": "1"}) + "\n")
    with pytest.raises(StaleSimHostError, match="changed by another devmig process"):
        create_mdev(beta.sysfs, "0000:00:02.0", "simgpu-2G", NEW)


def test_vdpa_changes_are_replayed_too() -> None:
    alpha = open_host("sim:alpha").vdpa()
    alpha.add("a", "vdpasim_net", mac="02:00:00:00:00:01", mtu=9000)
    alpha.add("b", "vdpasim_blk")
    alpha.set("a", mac="02:00:00:00:00:02")
    alpha.delete("b")
    forget_labs()
    again = open_host("sim:alpha").vdpa()
    assert again is not alpha
    assert [d.name for d in again.devices()] == ["a"]
    net = again.config("a").net
    assert net is not None and (net.mac, net.mtu) == ("02:00:00:00:00:02", 9000)
    assert open_host("sim:beta").vdpa().devices() == []  # other hosts untouched
    lines = [json.loads(line) for line in sim_state_file("default", "alpha").read_text().splitlines()]
    assert [(line["op"], line["path"]) for line in lines] == [
        ("vdpa", "add"),
        ("vdpa", "add"),
        ("vdpa", "set"),
        ("vdpa", "delete"),
    ]


def test_a_refused_vdpa_request_is_not_logged() -> None:
    from devmig.vdpa.backend import VdpaError

    alpha = open_host("sim:alpha").vdpa()
    alpha.add("a", "vdpasim_net")
    with pytest.raises(VdpaError):
        alpha.add("a", "vdpasim_net")
    assert len(sim_state_file("default", "alpha").read_text().splitlines()) == 1


def test_a_vdpa_change_that_no_longer_applies_is_one_clear_error() -> None:
    log = sim_state_file("default", "alpha")
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"op": "vdpa", "path": "add", "text": '{"name":"a","mgmtdev":"pci/gone"}'}) + "\n")
    with pytest.raises(
        InputError, match=r"(?s)change 1 in .* no longer applies \(dev add a: .*management device.*devmig lab --reset"
    ):
        open_host("sim:alpha")
    log.write_text(json.dumps({"op": "vdpa", "path": "rename", "text": "{}"}) + "\n")
    forget_labs()
    with pytest.raises(InputError, match="unknown vdpa request 'rename'"):
        open_host("sim:alpha")
