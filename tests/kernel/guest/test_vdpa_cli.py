"""`devmig vdpa` against iproute2's own `vdpa` on the same kernel: Linux 6.12 with vdpa_sim_net and vdpa_sim_blk.

Each command of the script runs with both, as text, `-j` and `-j -p`, and they must print the same stdout and
stderr and exit with the same code. Commands that change the host run with one tool, are undone, and run with the
other, so both meet the same state.

The peer is whichever iproute2 the machine has: 6.15 where the kernel lab's prepare could install it (Debian 12's
backports, Debian 13), else Debian 12's own 6.1.0 (or the `vdpa` named by DEVMIG_PEER_VDPA). With 6.15 `dev set`
and `device_features` are compared byte for byte like every other command. Where 6.1 differs from 6.15:
- it has no `dev set` (6.13) and no `device_features` (6.2): for those, devmig's result is checked by the kernel's
  effect as iproute2 6.1 shows it (`dev config show`), and iproute2's refusal is asserted as it is;
- its `dev help` does not list device_features: `dev help` is compared with 6.15 only;
- a kernel error in `dev vstats show` exits 0 (fixed upstream by b2c6613e "vstats error not propagated"; 6.15
  exits 1, as devmig does); stdout and stderr are the same.
devmig's additions are checked as additions: a number iproute2 refuses silently gets one more "devmig: " line,
without CAP_NET_ADMIN a "devmig: hint: " line follows iproute2's, the main usage gets devmig's `--host` line and
`dev help` a `dev set` line (iproute2 6.15 has `dev set` but its help does not list it).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.kernel.guest.conftest import Run, devmig, run

pytestmark = pytest.mark.kernel

#: the peer: the machine's own iproute2, or another build's `vdpa` (e.g. an unpacked older .deb) to compare with it
VDPA = os.environ.get("DEVMIG_PEER_VDPA", "/usr/sbin/vdpa")
#: the output modes each command is compared in
MODES: tuple[tuple[str, ...], ...] = ((), ("-j",), ("-j", "-p"))


def iproute2(*args: str) -> Run:
    return run(VDPA, *args)


@functools.cache
def peer_version() -> tuple[int, ...]:
    """iproute2's version, from `vdpa -V` ("vdpa utility, iproute2-6.15.0")."""
    shown = iproute2("-V")
    found = re.search(r"iproute2-(\d+)\.(\d+)", shown.out)
    assert shown.code == 0 and found, shown
    return tuple(int(n) for n in found.groups())


def peer_has_dev_set() -> bool:
    """`vdpa dev set`: iproute2 6.13 and later (6.15 where the lab installed it)."""
    return peer_version() >= (6, 13)


def peer_has_device_features() -> bool:
    """`vdpa dev add ... device_features`: iproute2 6.2 and later."""
    return peer_version() >= (6, 2)


def ours(*args: str) -> Run:
    return devmig("vdpa", *args)


def devices() -> list[str]:
    listed = iproute2("-j", "dev", "show")
    assert listed.code == 0, listed.err
    return list(json.loads(listed.out)["dev"])


def delete_all() -> None:
    for name in devices():
        assert iproute2("dev", "del", name).code == 0


@pytest.fixture(autouse=True)
def _clean_host() -> Iterator[None]:
    delete_all()
    yield
    delete_all()


def same(*args: str, modes: tuple[tuple[str, ...], ...] = MODES) -> Run:
    """The command in each mode with both tools: identical stdout, stderr and exit code. devmig's text run."""
    first: Run | None = None
    for mode in modes:
        theirs, mine = iproute2(*mode, *args), ours(*mode, *args)
        assert mine == theirs, f"vdpa {' '.join((*mode, *args))}"
        first = first or mine
    assert first is not None
    return first


def same_change(args: tuple[str, ...], undo: Callable[[], None]) -> None:
    """A command that changes the host: in each mode, devmig's run and iproute2's from the same state."""
    for mode in MODES:
        mine = ours(*mode, *args)
        undo()
        theirs = iproute2(*mode, *args)
        undo()
        assert mine == theirs, f"vdpa {' '.join((*mode, *args))}"
        assert mine.code == 0, mine.err


def delete(name: str) -> Callable[[], None]:
    return lambda: assert_ok(iproute2("dev", "del", name))


def add(*args: str) -> Callable[[], None]:
    return lambda: assert_ok(iproute2("dev", "add", *args))


def renew(name: str, mgmtdev: str) -> Callable[[], None]:
    """Undo a change to the device: delete it and add it afresh (a MAC cannot be set back to zero)."""
    return lambda: (delete(name)(), add("name", name, "mgmtdev", mgmtdev)())[-1]


def assert_ok(result: Run) -> None:
    assert result.code == 0, result.err


def test_mgmtdev_show() -> None:
    shown = same("mgmtdev", "show")
    assert shown.out.startswith("vdpasim_net: \n  supported_classes net\n  max_supported_vqs 3\n")
    same("mgmtdev", "list")
    same("m", "s", "vdpasim_net")
    same("mgmtdev", "show", "vdpasim_blk")
    same("mgmtdev", "show", "vdpasim_net", "extra")  # a lone last argument is ignored
    nope = same("mgmtdev", "show", "nope")
    assert nope.code == 1 and nope.err.startswith("Error: vdpa: Fail to find the specified mgmt device.")
    same("mgmtdev", "show", "pci/0000:03:00.2")
    same("mgmtdev", "show", "a/b/c")


def test_the_device_lifecycle() -> None:
    same("dev", "show")
    same("dev")
    same("dev", "config", "show")
    # dev add without and with mac/mtu, and the prefixes iproute2 accepts
    same_change(("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net"), delete("vdpa0"))
    same_change(
        ("dev", "add", "name", "vdpa1", "mgmtdev", "vdpasim_net", "mac", "00:11:22:33:44:55", "mtu", "9000"),
        delete("vdpa1"),
    )
    same_change(("d", "a", "n", "vdpa2", "m", "vdpasim_net", "mac", "02:11:22:33:44"), delete("vdpa2"))
    same_change(("dev", "add", "name", "blk0", "mgmtdev", "vdpasim_blk"), delete("blk0"))
    for args in (
        ("name", "vdpa0", "mgmtdev", "vdpasim_net"),
        ("name", "vdpa1", "mgmtdev", "vdpasim_net", "mac", "00:11:22:33:44:55", "mtu", "9000"),
        ("name", "vdpa2", "mgmtdev", "vdpasim_net", "mac", "1.2.3.4"),
        ("name", "blk0", "mgmtdev", "vdpasim_blk"),
        ("name", "q'u\"o\\te\tx", "mgmtdev", "vdpasim_net"),  # every character json_writer escapes
    ):
        assert_ok(ours("dev", "add", *args))
    listed = same("dev", "show")
    assert listed.out.startswith("vdpa0: type network mgmtdev vdpasim_net vendor_id 0 max_vqs 3 max_vq_size 256\n")
    same("dev", "list")
    same("dev", "show", "vdpa1")
    same("dev", "s", "blk0")
    same("dev", "show", "vdpa1", "extra")
    config = same("dev", "config", "show")
    assert "vdpa1: mac 00:11:22:33:44:55 link up link_announce false mtu 9000 \n" in config.out
    same("dev", "config")
    same("dev", "config", "show", "vdpa1")
    same("dev", "c", "s", "blk0")
    # dev del, and the device is gone
    same_change(("dev", "del", "vdpa2"), add("name", "vdpa2", "mgmtdev", "vdpasim_net"))
    assert_ok(ours("dev", "del", "vdpa2"))
    same("dev", "show", "vdpa2")
    same("dev", "del", "vdpa2")


def test_refusals() -> None:
    assert_ok(ours("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net"))
    duplicate = same("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net")
    assert (duplicate.code, duplicate.err) == (1, "kernel answers: File exists\n")
    bad_mgmtdev = same("dev", "add", "name", "x", "mgmtdev", "nope")
    assert bad_mgmtdev.err.startswith("Error: vdpa: Fail to find the specified management device.")
    same("dev", "add", "name", "x", "mgmtdev", "pci/nope")
    bad_mac = same("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mac", "zz:11:22:33:44:55")
    assert (bad_mac.code, bad_mac.err) == (1, '"zz" is invalid lladdr.\n')
    for mac in ("00:11:zz:33:44:55", "100:2:3:4:5:6", "2::3:4:5:6", "1.2.3.400"):
        same("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mac", mac)
    same("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", "10")  # the policy's minimum 68
    same("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "max_vqp", "0")
    same("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "ma", "2")  # vdpa_sim takes no max_vqp
    same("dev", "add", "name", "x", "mgmtdev", "vdpasim_blk", "mac", "00:11:22:33:44:55")
    same("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "bogus", "1")
    same("dev", "add", "name", "x", "mgmtdev", "a/b/c")
    same("dev", "add", "name", "x")
    same("dev", "add", "mgmtdev", "vdpasim_net")
    same("dev", "add")
    same("dev", "del")
    same("dev", "del", "nope")
    same("dev", "show", "nope")
    same("dev", "config", "show", "nope")
    same("foo")
    same("dev", "foo")
    same("mgmtdev", "foo")
    same("dev", "config", "foo")
    same("dev", "vst")
    same("dev", "vstats")
    same("dev", "vstats", "show")
    same("dev", "vstats", "show", "vdpa0", "qidx")
    same("dev", "vstats", "show", "vdpa0", "foo", "1")
    # help texts that are the same in iproute2 6.1, 6.15 and HEAD; the main usage is a prefix of devmig's
    same("mgmtdev", "help")
    same("mgmtdev")
    same("dev", "config", "help")
    same("dev", "vstats", "help")
    if peer_has_dev_set():  # 6.1's dev help has no device_features line
        theirs, mine = iproute2("dev", "help"), ours("dev", "help")
        assert (mine.code, mine.out) == (theirs.code, theirs.out) == (0, "")
        assert mine.err == theirs.err + "Usage: vdpa dev set name NAME mac MACADDR\n"
    main_usage = iproute2("help")
    for args in (["help"], ["-h"], ["--help"], []):
        mine = ours(*args)
        assert (mine.code, mine.out) == (main_usage.code, main_usage.out) == (0, "")
        assert mine.err.startswith(main_usage.err) and mine.err != main_usage.err
    assert same("-j", "foo", modes=((),)).out == "\n"


def test_numbers_iproute2_refuses_silently_get_one_devmig_line() -> None:
    for mtu in ("abc", "70000", "1500x", "0x10"):
        theirs = iproute2("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", mtu)
        mine = ours("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", mtu)
        assert (theirs.code, theirs.out, theirs.err) == (1, "", "")
        assert (mine.code, mine.out, mine.err) == (
            1,
            "",
            f'devmig: mtu "{mtu}": not a decimal number from 0 to 65535\n',
        )
    if peer_has_device_features():
        for features in ("zz", "0x1ffffffffffffffff"):
            args = ("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "device_features", features)
            assert iproute2(*args) == Run(1, "", "")
            said = f'devmig: device_features "{features}": not a hexadecimal number from 0 to {2**64 - 1}\n'
            assert ours(*args) == Run(1, "", said)
    assert devices() == []


def test_vstats_errors_are_iproute2s_with_exit_code_1() -> None:
    assert_ok(ours("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net"))
    assert_ok(ours("dev", "add", "name", "blk0", "mgmtdev", "vdpasim_blk"))
    # no guest driver binds vdpa_sim here: feature negotiation never completes, so every query is refused
    for args in (
        ("vdpa0", "qidx", "0"),
        ("vdpa0",),
        ("blk0", "qidx", "0"),
        ("nope", "qidx", "0"),
        ("vdpa0", "qidx", "99999"),
    ):
        for mode in MODES:
            theirs, mine = iproute2(*mode, "dev", "vstats", "show", *args), ours(*mode, "dev", "vstats", "show", *args)
            assert (mine.out, mine.err) == (theirs.out, theirs.err), args
            assert theirs.err.endswith("\n") and "kernel answers: " in theirs.err
            # iproute2 6.1 exits 0 here; 6.15, HEAD and devmig exit 1
            assert (theirs.code, mine.code) == (1 if peer_version() >= (6, 15) else 0, 1)


def test_dev_set_mac() -> None:
    """Byte for byte with an iproute2 that has `dev set` (6.13+); with 6.1, by the kernel's effect as 6.1 shows it."""
    assert_ok(ours("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net"))
    assert_ok(ours("dev", "add", "name", "blk0", "mgmtdev", "vdpasim_blk"))
    set_mac = ("dev", "set", "name", "vdpa0", "mac", "02:00:00:00:00:01")
    if peer_has_dev_set():
        same_change(set_mac, renew("vdpa0", "vdpasim_net"))
        for args in (
            ("dev", "set", "name", "vdpa0", "mac", "01:00:00:00:00:00"),
            ("dev", "set", "name", "nope", "mac", "02:00:00:00:00:01"),
            ("dev", "set", "name", "blk0", "mac", "02:00:00:00:00:01"),
            ("dev", "set", "name", "vdpa0"),
            ("dev", "set", "name", "vdpa0", "mtu", "1000"),
            ("dev", "set", "name", "vdpa0", "mac", "zz"),
            ("dev", "set", "vdpa0", "mac", "02:00:00:00:00:01"),
            ("dev", "set"),
        ):
            same(*args)
    else:
        assert iproute2(*set_mac) == Run(1, "", 'Command "set" not found\n')
    # devmig's answers, whichever iproute2 this is (with 6.13+ they are also iproute2's, as compared above)
    assert ours(*set_mac) == Run(0, "", "")
    assert iproute2("dev", "config", "show", "vdpa0").out.startswith("vdpa0: mac 02:00:00:00:00:01 link up")
    refused = ours("dev", "set", "name", "vdpa0", "mac", "01:00:00:00:00:00")
    assert refused == Run(1, "", "Error: vdpa: Invalid MAC address.\nkernel answers: Operation not supported\n")
    missing = ours("-j", "dev", "set", "name", "nope", "mac", "02:00:00:00:00:01")
    assert missing == Run(1, "\n", "Error: vdpa: device not found.\nkernel answers: No such device\n")
    warned = ours("dev", "set", "name", "blk0", "mac", "02:00:00:00:00:01")
    assert warned == Run(0, "", "Warning: vdpa: blk0 device not supported.\n")


def test_device_features() -> None:
    """Byte for byte with an iproute2 that has `device_features` (6.2+); with 6.1, by the kernel's effect."""
    args = ("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net", "device_features", "300000028")
    # a feature vdpa_sim_net does not offer: its driver refuses (EINVAL, no message)
    more = ("dev", "add", "name", "vdpa1", "mgmtdev", "vdpasim_net", "device_features", "0x400000")
    missing = ("dev", "add", "name", "vdpa1", "mgmtdev", "vdpasim_net", "device_features", "8", "mac", "0:1:2:3:4:5")
    if peer_has_device_features():
        same_change(args, delete("vdpa0"))
        same(*more)
        same(*missing)
    else:
        assert iproute2(*args) == Run(1, "", 'Unknown option "device_features"\n')
    assert ours(*args) == Run(0, "", "")
    # MTU and MAC but no STATUS: the kernel reports no link state
    assert iproute2("dev", "config", "show", "vdpa0").out == "vdpa0: mac 00:00:00:00:00:00 mtu 1500 \n"
    assert ours("dev", "config", "show", "vdpa0") == iproute2("dev", "config", "show", "vdpa0")
    assert ours(*more) == Run(1, "", "kernel answers: Invalid argument\n")
    assert ours(*missing) == Run(
        1, "", "Error: vdpa: Missing features 0x20 for provided attributes.\nkernel answers: Invalid argument\n"
    )


def test_without_cap_net_admin_devmig_adds_a_hint() -> None:
    drop = ("setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin")
    args = ("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net")
    theirs = run(*drop, VDPA, *args)
    assert theirs == Run(1, "", "kernel answers: Operation not permitted\n")
    mine = run(*drop, sys.executable, "-m", "devmig", "vdpa", *args)
    assert (mine.code, mine.out) == (1, "")
    assert mine.err.startswith(theirs.err + "devmig: hint: dev add vdpa0 needs CAP_NET_ADMIN")
    # reading needs no privilege: the same answer
    assert run(*drop, sys.executable, "-m", "devmig", "vdpa", "mgmtdev", "show") == run(*drop, VDPA, "mgmtdev", "show")
    assert devices() == []
