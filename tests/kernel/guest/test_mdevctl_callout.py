"""devmig's mdevctl callout on the real kernel, with Debian's mdevctl as the caller: installed into mdevctl's own
callout directory (/etc/mdevctl.d/scripts.d/callouts, a tmpfs in the lab's guest), it refuses a definition of a real
mtty type that writes a migration/ attribute mtty does not have, with its reason in mdevctl's error, and lets the
definitions and starts it has nothing to judge through: the mdev is created by the kernel. mdevctl's own time is
recorded with and without the callout."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmig.mdevctl.install import CALLOUTS_DIR
from tests.kernel.guest.conftest import devmig, mdevctl

pytestmark = pytest.mark.kernel

DEVICES = Path("/sys/bus/mdev/devices")
CONFIGS = Path("/etc/mdevctl.d/mtty")
RESULTS = Path("/tmp/devmig-results")
REFUSED_UUID = "6d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
DEFINED_UUID = "7e2f3a4b-5c6d-4e7f-8091-a2b3c4d5e6f7"
TRANSIENT_UUID = "8f3a4b5c-6d7e-4f80-91a2-b3c4d5e6f708"
PEER_UUID = "9a4b5c6d-7e8f-4091-a2b3-c4d5e6f70819"


@pytest.fixture
def callout(cleanup: list[str]) -> Iterator[Path]:
    done = devmig("mdevctl", "install-callout", "-j")
    assert done.code == 0, done.err
    path = Path(json.loads(done.out)["installed"])
    assert path.parent == CALLOUTS_DIR
    yield path
    for uuid in (REFUSED_UUID, DEFINED_UUID):
        mdevctl("undefine", "-u", uuid)
    assert devmig("mdevctl", "uninstall-callout").code == 0


def timed(*args: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    done = mdevctl(*args)
    return done.code, done.err, time.perf_counter() - started


def test_mdevctl_with_devmig_s_callout_on_real_mtty(tmp_path: Path, callout: Path, cleanup: list[str]) -> None:
    # a definition writing migration/nr_ports: mtty has no such attribute (devmig knows mtty from its profile)
    jsonfile = tmp_path / "mtty-1.json"
    jsonfile.write_text(json.dumps({"mdev_type": "mtty-1", "start": "manual", "attrs": [{"migration/nr_ports": "1"}]}))
    code, err, _ = timed("define", "-u", REFUSED_UUID, "-p", "mtty", "--jsonfile", str(jsonfile))
    assert code == 1, err
    assert err.startswith(f"devmig: mdev {REFUSED_UUID} (type mtty-1 on mtty): define refused by devmig"), err
    assert "the driver of type mtty-1 has no migration/ attributes" in err and "[param-not-writable]" in err
    assert not (CONFIGS / REFUSED_UUID).exists()

    # nothing of devmig's to judge: the callout answers 2 and mdevctl defines and starts a real mdev
    code, err, define_s = timed("define", "-u", DEFINED_UUID, "-p", "mtty", "-t", "mtty-2")
    assert code == 0, err
    cleanup.append(DEFINED_UUID)
    code, err, start_s = timed("start", "-u", DEFINED_UUID)
    assert code == 0, err
    assert (DEVICES / DEFINED_UUID / "mdev_type").resolve().name == "mtty-2"
    argv = ["-t", "mtty-2", "-e", "pre", "-a", "start", "-s", "none", "-u", DEFINED_UUID, "-p", "mtty"]
    stdin = (CONFIGS / DEFINED_UUID).read_text()
    direct = subprocess.run([str(callout), *argv], input=stdin, capture_output=True, text=True, timeout=120)
    assert (direct.returncode, direct.stderr) == (2, "")

    # get attributes: a running mtty device has no migration/ attributes to report; mdevctl lists it as before
    code, err, _ = timed("start", "-u", TRANSIENT_UUID, "-p", "mtty", "-t", "mtty-1")
    assert code == 0, err
    cleanup.append(TRANSIENT_UUID)
    listed = mdevctl("list", "--dumpjson")
    assert listed.code == 0, listed.err
    (devices,) = json.loads(listed.out)
    entries = {uuid: cfg for entry in devices["mtty"] for uuid, cfg in entry.items()}
    assert entries[TRANSIENT_UUID] == {"mdev_type": "mtty-1", "start": "manual", "attrs": []}
    assert mdevctl("stop", "-u", TRANSIENT_UUID).code == 0
    assert mdevctl("stop", "-u", DEFINED_UUID).code == 0

    # the peer: the same start and define without any callout
    assert devmig("mdevctl", "uninstall-callout").code == 0
    try:
        code, err, peer_start_s = timed("start", "-u", PEER_UUID, "-p", "mtty", "-t", "mtty-2")
        assert code == 0, err
        cleanup.append(PEER_UUID)
        assert mdevctl("stop", "-u", PEER_UUID).code == 0
        code, err, peer_define_s = timed("define", "-u", PEER_UUID, "-p", "mtty", "-t", "mtty-2")
        assert code == 0, err
        assert mdevctl("undefine", "-u", PEER_UUID).code == 0
    finally:
        assert devmig("mdevctl", "install-callout").code == 0  # for the fixture's uninstall
    if RESULTS.is_dir():
        figures = {"mdevctl define with devmig's callout": define_s, "mdevctl start with devmig's callout": start_s}
        figures |= {"mdevctl define, no callout": peer_define_s, "mdevctl start, no callout": peer_start_s}
        (RESULTS / "mdevctl-callout.json").write_text(json.dumps(figures))
