"""Discovery on the real /sys agrees with Debian's mdevctl, before and after creating devices."""

from __future__ import annotations

import json

import pytest

from tests.kernel.guest.conftest import devmig, devmig_process, mdevctl

pytestmark = pytest.mark.kernel


def test_types_agree_with_mdevctl() -> None:
    theirs = mdevctl("types", "--dumpjson")
    assert theirs.code == 0, theirs.err
    ours = devmig_process("types", "--format", "mdevctl")
    assert ours.code == 0 and ours.err == ""
    assert ours.out == theirs.out
    # devmig's own JSON says the same things
    native = json.loads(devmig("types", "-j").out)
    (parents,) = json.loads(theirs.out)
    mtty = next(p for p in native["parents"] if p["name"] == "mtty")
    assert {t["id"]: t["available_instances"] for t in mtty["types"]} == {
        next(iter(t)): next(iter(t.values()))["available_instances"] for t in parents["mtty"]
    }
    assert {t["id"]: t["name"] for t in mtty["types"]} == {"mtty-1": "Single port serial", "mtty-2": "Dual port serial"}


def test_list_agrees_with_mdevctl_before_and_after_creating(cleanup: list[str]) -> None:
    assert devmig("list", "--format", "mdevctl").out == mdevctl("list", "--dumpjson").out
    for mtype in ("mtty-1", "mtty-2", "mtty-2"):
        created = devmig("mdev", "create", "mtty", mtype)
        assert created.code == 0, created.err
        cleanup.append(created.out.strip())
    theirs = mdevctl("list", "--dumpjson")
    assert theirs.code == 0 and len(json.loads(theirs.out)[0]["mtty"]) == 3
    assert devmig("list", "--format", "mdevctl").out == theirs.out
    assert devmig("types", "--format", "mdevctl").out == mdevctl("types", "--dumpjson").out
    listed = json.loads(devmig("list", "-j").out)["devices"]
    assert sorted(d["uuid"] for d in listed if d["kind"] == "mdev") == sorted(cleanup)
    assert all(d["driver"] == "mtty" and d["iommu_group"] is not None for d in listed if d["kind"] == "mdev")
    for uuid in cleanup:
        assert devmig("mdev", "remove", uuid).code == 0
    assert devmig("list", "--format", "mdevctl").out == mdevctl("list", "--dumpjson").out == "[]\n"
