"""devmig's callout with Debian's mdevctl (1.2.0) as the caller, on the fixture host of tests/mdevctl/hosts.py.

mdevctl 1.2.0 reads only the real /sys and /etc/mdevctl.d (MDEVCTL_ENV_ROOT came in 1.3.0, for its own tests), so
each command runs in a private mount namespace with the tree bind mounted over both (as tests/host/
test_mdevctl_peer.py does). The callout mdevctl finds is the script `devmig mdevctl install-callout` wrote into the
tree's etc/mdevctl.d/scripts.d/callouts; it runs this devmig, which reads the same /sys mdevctl reads.

What the fixture tree cannot do: a `start` writes the UUID into the type's plain `create` file and no device appears
(no kernel behind it), so mdevctl's attribute writes fail after the callout let it through; the tests check the
callout's part (the UUID written, or not) and leave the device's creation to the kernel tier
(tests/kernel/guest/test_mdevctl_callout.py). The simulator's hosts cannot be used at all: its sysfs lives in a
Python process, not in a filesystem mdevctl could read.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devmig.mdevctl.install import callout_command, install
from devmig.testing.sysfs_tree import SysfsTree
from tests.host.test_mdevctl_peer import NAMESPACE_SCRIPT, PEER_MISSING
from tests.mdevctl.hosts import GPU, NEW, NIC, NIC_TYPE, RUNNING, UNKNOWN_TYPE, callout_host, config

pytestmark = pytest.mark.prerequisite(PEER_MISSING and f"mdevctl as the callout's caller: {PEER_MISSING}")
OTHER = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    tree = callout_host(tmp_path / "host")
    install(callout_command(profiles_dir=None), callouts_dir=tree.root / "etc/mdevctl.d/scripts.d/callouts")
    return tree


def mdevctl(tree: SysfsTree, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["unshare", "-m", "sh", "-c", NAMESPACE_SCRIPT, "sh", str(tree.root), "mdevctl", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def jsonfile(tree: SysfsTree, name: str, doc: object) -> str:
    path = tree.root.parent / f"{name}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def definition(tree: SysfsTree, parent: str, uuid: str) -> Path:
    return tree.root / "etc/mdevctl.d" / parent / uuid


def test_a_define_devmig_accepts_is_written(tree: SysfsTree) -> None:
    doc = config(NIC_TYPE, ("migration/num-resources", "32"), ("migration/mode", "safe"))
    done = mdevctl(tree, "define", "-u", NEW, "-p", NIC, "--jsonfile", jsonfile(tree, "ok", doc))
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(definition(tree, NIC, NEW).read_text()) == doc


def test_a_define_devmig_refuses_is_not_written_and_mdevctl_shows_why(tree: SysfsTree) -> None:
    doc = config(NIC_TYPE, ("migration/num-resources", "99"), ("migration/mode", "turbo"))
    done = mdevctl(tree, "define", "-u", NEW, "-p", NIC, "--jsonfile", jsonfile(tree, "bad", doc))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    # mdevctl prefixes the script's stderr with its name, then gives its own error
    assert lines[
        0
    ] == f"devmig: mdev {NEW} (type {NIC_TYPE} on {NIC}): define refused by devmig, the type does not " + (
        "take these attributes:"
    )
    assert "num-resources=99 is not allowed for type my-nic-vf (allowed: 16-64) [param-value-not-allowed]" in lines[1]
    assert "mode='turbo' is not allowed" in lines[2]
    assert lines[3] == 'Error: callout script "/etc/mdevctl.d/scripts.d/callouts/devmig" failed with return code 1'
    assert not definition(tree, NIC, NEW).exists()


def test_a_modify_devmig_refuses_leaves_the_definition_as_it_was(tree: SysfsTree) -> None:
    doc = config(NIC_TYPE, ("migration/mode", "safe"))
    assert mdevctl(tree, "define", "-u", NEW, "-p", NIC, "--jsonfile", jsonfile(tree, "ok", doc)).returncode == 0
    before = definition(tree, NIC, NEW).read_text()
    done = mdevctl(tree, "modify", "-u", NEW, "--addattr", "migration/num-resources", "--value", "8")
    assert done.returncode == 1 and "num-resources=8 is not allowed" in done.stderr
    assert definition(tree, NIC, NEW).read_text() == before
    done = mdevctl(tree, "modify", "-u", NEW, "--addattr", "migration/num-resources", "--value", "48")
    assert (done.returncode, done.stderr) == (0, "")
    assert {"migration/num-resources": "48"} in json.loads(definition(tree, NIC, NEW).read_text())["attrs"]


def test_a_start_devmig_refuses_never_reaches_the_kernel(tree: SysfsTree) -> None:
    create = tree.root / f"sys/devices/pci0000:05/{NIC}/mdev_supported_types/{NIC_TYPE}/create"
    # a definition written by hand (no pre define judged it)
    tree.mdevctl_config(NIC, OTHER, config(NIC_TYPE, ("migration/new-feature", "perhaps")))
    done = mdevctl(tree, "start", "-u", OTHER)
    assert done.returncode == 1 and "[param-type-mismatch]" in done.stderr
    assert create.read_text() == ""
    tree.mdevctl_config(NIC, NEW, config(NIC_TYPE, ("migration/new-feature", "1")))
    done = mdevctl(tree, "start", "-u", NEW)
    # past the callout, mdevctl asked the "kernel" for the device (the fixture tree makes none: see above)
    assert create.read_text() == NEW and "devmig" not in done.stderr


def test_mdevctl_lists_a_running_device_with_devmig_s_live_attributes(tree: SysfsTree) -> None:
    done = mdevctl(tree, "list", "--dumpjson")
    assert done.returncode == 0
    assert json.loads(done.stdout) == [
        {
            NIC: [
                {
                    RUNNING: {
                        "mdev_type": NIC_TYPE,
                        "start": "manual",
                        "attrs": [
                            {"migration/new-feature": "0"},
                            {"migration/num-resources": "32"},
                            {"migration/mode": "safe"},
                        ],
                    }
                }
            ]
        }
    ]


def test_defining_a_running_device_records_devmig_s_attributes(tree: SysfsTree) -> None:
    done = mdevctl(tree, "define", "-u", RUNNING)
    assert (done.returncode, done.stderr) == (0, "")
    attrs = json.loads(definition(tree, NIC, RUNNING).read_text())["attrs"]
    assert attrs == [{"migration/new-feature": "0"}, {"migration/num-resources": "32"}, {"migration/mode": "safe"}]


def test_a_type_devmig_does_not_know_passes_through(tree: SysfsTree) -> None:
    # a logging script beside devmig's that answers 2: mdevctl runs every script until one answers otherwise, so
    # devmig's ran too; an attribute devmig would refuse (param-unknown) for a type it knew shows it answered 2
    log = tree.root.parent / "calls.log"
    logger = tree.root / "etc/mdevctl.d/scripts.d/callouts/zz-log"
    logger.write_text(f'#!/bin/sh\necho "$*" >>{log}\ncat >/dev/null\nexit 2\n')
    logger.chmod(0o755)
    doc = config(UNKNOWN_TYPE, ("migration/anything", "at all"))
    done = mdevctl(tree, "define", "-u", NEW, "-p", GPU, "--jsonfile", jsonfile(tree, "unknown", doc))
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(definition(tree, GPU, NEW).read_text()) == doc
    assert f"-t {UNKNOWN_TYPE} -e pre -a define -s none -u {NEW} -p {GPU}" in log.read_text().splitlines()
