"""`devmig list`, `types`, `describe`, `capabilities` as whole processes on a fixture host."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from devmig.testing.sysfs_tree import SysfsTree
from tests.cli.conftest import run_devmig
from tests.labs import MTTY_UUID
from tests.paths import ROOT


def test_list_text_and_json(lab: SysfsTree) -> None:
    root = str(lab.root)
    text = run_devmig("list", "--sysfs-root", root)
    assert text.code == 0 and text.err == ""
    assert text.out.splitlines() == [
        "KIND  DEVICE                                PARENT        TYPE       DRIVER         IOMMU_GROUP",
        f"mdev  {MTTY_UUID}  mtty          mtty-2     mtty           3",
        "pci   0000:00:03.0                          -             1234:11e8  vfio-pci       9",
        "pci   0000:3b:00.2                          0000:3b:00.0  15b3:101e  mlx5_vfio_pci  7",
    ]
    data = json.loads(run_devmig("list", "-j", "--sysfs-root", root).out)
    assert [d["kind"] for d in data["devices"]] == ["mdev", "pci", "pci"]
    assert data["devices"][2]["migration_driver"] is True and data["warnings"] == []


def test_types_text_and_json(lab: SysfsTree) -> None:
    root = str(lab.root)
    text = run_devmig("types", "--sysfs-root", root).out
    assert "  mtty-2\n    Available instances: 11\n    Device API: vfio-pci\n    Name: Dual port serial\n" in text
    assert "Description: low_gm_size: 128MB, high_gm_size: 512MB, fence: 4" in text
    data = json.loads(run_devmig("-j", "types", "--sysfs-root", root, "--parent", "mtty").out)
    assert [p["name"] for p in data["parents"]] == ["mtty"]
    assert [t["id"] for t in data["parents"][0]["types"]] == ["mtty-1", "mtty-2"]


def test_describe_then_check(lab: SysfsTree) -> None:
    env_root = {"DEVMIG_SYSFS_ROOT": str(lab.root)}
    desc = subprocess.run(
        [sys.executable, "-m", "devmig", "describe", MTTY_UUID],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env_root},
    )
    assert desc.returncode == 0, desc.stderr
    cap = run_devmig("capabilities", "--sysfs-root", str(lab.root), "-t", "mtty-1", "-j")
    assert json.loads(cap.out)["type"] == "mtty-1"
    source, dest = lab.root.parent / "src.json", lab.root.parent / "dst.json"
    source.write_text(desc.stdout)
    dest.write_text(cap.out)
    verdict = run_devmig("check", str(source), str(dest))
    assert verdict.code == 1 and "param-value-not-allowed" in verdict.out


def test_capabilities_table(lab: SysfsTree) -> None:
    out = run_devmig("capabilities", "--sysfs-root", str(lab.root)).out.splitlines()
    assert out[0].split() == ["TYPE", "DEVICE_API", "VERSION", "MODEL", "CONFIDENCE", "FREE"]
    assert any(
        line.split()[:5] == ["mtty-1", "vfio-pci", "0.1.0", "kernel.org/samples/mtty", "profile"] for line in out
    )
    missing = run_devmig("capabilities", "--sysfs-root", str(lab.root), "-t", "nope")
    assert missing.code == 1 and "type nope: not found" in missing.err


def test_warnings_go_to_stderr_and_the_rest_is_listed(lab: SysfsTree) -> None:
    lab.write("sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-1/available_instances", "lots")
    result = run_devmig("types", "-j", "--sysfs-root", str(lab.root))
    assert result.code == 0
    assert result.err == (
        "devmig: warning: mdev type mtty/mtty-1: available_instances: expected a whole number, found 'lots'\n"
    )
    assert len(json.loads(result.out)["warnings"]) == 1


def test_bad_arguments_exit_2(lab: SysfsTree) -> None:
    missing = run_devmig("describe", "0000:99:00.0", "--sysfs-root", str(lab.root))
    assert missing.code == 2 and missing.err.startswith("devmig: error: device 0000:99:00.0: not found")
    not_dir = run_devmig("list", "--sysfs-root", str(lab.root / "nope"))
    assert not_dir.code == 2 and "not a directory" in not_dir.err
    not_assignable = run_devmig("describe", "0000:3b:00.3", "--sysfs-root", str(lab.root))
    assert not_assignable.code == 2 and "bound to mlx5_core" in not_assignable.err
    assert "Traceback" not in missing.err + not_dir.err + not_assignable.err


def test_bad_profile_dir_is_one_line(lab: SysfsTree) -> None:
    bad = lab.root.parent / "profiles"
    bad.mkdir()
    (bad / "x.toml").write_text("[[profile]]\nid = 1\n")
    result = run_devmig("describe", MTTY_UUID, "--sysfs-root", str(lab.root), "--profiles-dir", str(bad))
    assert result.code == 2 and result.err.count("\n") == 1 and "x.toml: $.profile[0].id" in result.err
