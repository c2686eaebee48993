"""`devmig vdpa` as whole processes on the default lab's alpha (vdpa_sim's two management devices): every command
in text, -j and -p, the errors and exit codes iproute2 gives, and a simulated host that keeps its vDPA devices from
one command to the next, as a real host does; and how --host is taken out of iproute2's arguments."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devmig.cli.vdpa import split_host
from devmig.errors import InputError
from tests.cli.conftest import Result, run_devmig
from tests.golden import assert_golden
from tests.paths import ROOT

ALPHA = ("--host", "sim:alpha")
USAGE_FIRST = "Usage: vdpa [ OPTIONS ] OBJECT { COMMAND | help }\n"
DEV_TEXT = "{}: type network mgmtdev vdpasim_net vendor_id 0 max_vqs 3 max_vq_size 256\n"
ENODEV = "Error: vdpa: device not found.\nkernel answers: No such device\n"


def vdpa(*args: str) -> Result:
    return run_devmig("vdpa", *args, *ALPHA)


def test_mgmtdev_show_text_json_pretty() -> None:
    text = vdpa("mgmtdev", "show")
    assert (text.code, text.err) == (0, "")
    assert_golden("vdpa/mgmtdev-show.txt", text.out)
    as_json = vdpa("-j", "mgmtdev", "show")
    assert (as_json.code, as_json.err) == (0, "")
    assert_golden("vdpa/mgmtdev-show.json", as_json.out)
    assert_golden("vdpa/mgmtdev-show.json", vdpa("-j", "mgmtdev", "list").out)
    pretty = vdpa("-jp", "m", "s", "vdpasim_blk")
    assert (pretty.code, pretty.err) == (0, "")
    assert_golden("vdpa/mgmtdev-show-vdpasim_blk.pretty.json", pretty.out)
    # iproute2's -p without -j prints text; devmig's own -p (before `vdpa`) means pretty JSON, as everywhere in devmig
    net = vdpa("-p", "mgmtdev", "show", "vdpasim_net")
    assert (net.code, net.err) == (0, "")
    assert_golden("vdpa/mgmtdev-show-vdpasim_net.txt", net.out)
    assert run_devmig("-p", "vdpa", "mgmtdev", "show", "vdpasim_blk", *ALPHA) == pretty
    assert run_devmig("-j", "vdpa", "mgmtdev", "show", *ALPHA) == as_json


def test_a_sequence_of_commands_sees_one_host() -> None:
    assert vdpa("dev", "add", "name", "vdpa0", "mgmtdev", "vdpasim_net") == Result(0, "", "")
    assert vdpa("-j", "dev", "add", "name", "vdpa1", "mgmtdev", "vdpasim_net", "mac", "00:11:22:33:44:55", "mtu",
                "9000") == Result(0, "\n", "")  # fmt: skip
    assert vdpa("dev", "add", "n", "blk0", "m", "vdpasim_blk") == Result(0, "", "")
    assert vdpa("dev", "show") == Result(
        0,
        DEV_TEXT.format("vdpa0")
        + DEV_TEXT.format("vdpa1")
        + "blk0: type block mgmtdev vdpasim_blk vendor_id 0 max_vqs 1 max_vq_size 256\n",
        "",
    )
    assert vdpa("-j", "dev", "show", "vdpa1") == Result(
        0,
        '{"dev":{"vdpa1":{"type":"network","mgmtdev":"vdpasim_net","vendor_id":0,"max_vqs":3,"max_vq_size":256}}}\n',
        "",
    )
    assert vdpa("dev", "config", "show") == Result(
        0,
        "vdpa0: mac 00:00:00:00:00:00 link up link_announce false mtu 1500 \n"
        "vdpa1: mac 00:11:22:33:44:55 link up link_announce false mtu 9000 \n"
        "blk0: \n",
        "",
    )
    assert vdpa("-j", "dev", "config", "show", "vdpa1") == Result(
        0, '{"config":{"vdpa1":{"mac":"00:11:22:33:44:55","link ":"up","link_announce ":false,"mtu":9000}}}\n', ""
    )
    assert vdpa("-j", "-p", "dev", "config", "show", "blk0") == Result(
        0, '{\n    "config": {\n        "blk0": {}\n    }\n}\n', ""
    )
    assert vdpa("dev", "set", "name", "vdpa0", "mac", "02:00:00:00:00:01") == Result(0, "", "")
    assert vdpa("dev", "config", "show", "vdpa0").out.startswith("vdpa0: mac 02:00:00:00:00:01 link up")
    assert vdpa("dev", "set", "name", "blk0", "mac", "02:00:00:00:00:01") == Result(
        0, "", "Warning: vdpa: blk0 device not supported.\n"
    )
    assert vdpa("dev", "del", "vdpa0") == Result(0, "", "")
    assert vdpa("dev", "del", "blk0") == Result(0, "", "")
    assert vdpa("dev", "list") == Result(0, DEV_TEXT.format("vdpa1"), "")
    # the other host of the lab with vdpa has its own devices
    assert run_devmig("vdpa", "dev", "show", "--host", "sim:beta") == Result(0, "", "")


def test_kernel_errors_as_iproute2_prints_them() -> None:
    assert vdpa("dev", "add", "name", "a", "mgmtdev", "vdpasim_net").code == 0
    assert vdpa("dev", "add", "name", "a", "mgmtdev", "vdpasim_net") == Result(1, "", "kernel answers: File exists\n")
    assert vdpa("-j", "dev", "add", "name", "a", "mgmtdev", "vdpasim_net") == Result(
        1, "\n", "kernel answers: File exists\n"
    )
    assert vdpa("dev", "add", "name", "x", "mgmtdev", "nope") == Result(
        1, "", "Error: vdpa: Fail to find the specified management device.\nkernel answers: No such device\n"
    )
    assert vdpa("dev", "show", "nope") == Result(1, "", ENODEV)
    assert vdpa("-j", "dev", "show", "nope") == Result(1, '{"dev":{}}\n', ENODEV)
    assert vdpa("-j", "-p", "dev", "config", "show", "nope") == Result(1, '{\n    "config": {}\n}\n', ENODEV)
    assert vdpa("dev", "del", "nope") == Result(1, "", ENODEV)
    assert vdpa("-j", "mgmtdev", "show", "pci/0000:03:00.2") == Result(
        1, '{"mgmtdev":{}}\n', "Error: vdpa: Fail to find the specified mgmt device.\nkernel answers: No such device\n"
    )
    assert vdpa("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", "10") == Result(
        1, "", "Error: integer out of range.\nkernel answers: Numerical result out of range\n"
    )
    # a simulated device's driver never negotiates features in another process: no vendor statistics yet
    assert vdpa("-j", "dev", "vstats", "show", "a", "qidx", "0") == Result(
        1,
        '{"vstats":{}}\n',
        "Error: vdpa: feature negotiation not complete.\nkernel answers: Resource temporarily unavailable\n",
    )
    assert vdpa("dev", "set", "name", "a", "mac", "01:00:00:00:00:00") == Result(
        1, "", "Error: vdpa: Invalid MAC address.\nkernel answers: Operation not supported\n"
    )


def test_local_errors_and_exit_codes() -> None:
    assert vdpa("foo") == Result(1, "", 'Object "foo" not found\n')
    assert vdpa("-j", "foo") == Result(1, "\n", 'Object "foo" not found\n')
    assert vdpa("dev", "foo") == Result(1, "", 'Command "foo" not found\n')
    assert vdpa("dev", "add", "name", "x") == Result(1, "", "management device handle not set.\n")
    assert vdpa("dev", "add", "mgmtdev", "vdpasim_net") == Result(1, "", "device name is not set.\n")
    assert vdpa("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "bogus", "1") == Result(
        1, "", 'Unknown option "bogus"\n'
    )
    assert vdpa("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mac", "zz:11:22:33:44:55") == Result(
        1, "", '"zz" is invalid lladdr.\n'
    )
    assert vdpa("dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", "abc") == Result(
        1, "", 'devmig: mtu "abc": not a decimal number from 0 to 65535\n'
    )
    assert vdpa("dev", "vstats", "show") == Result(1, "", "Usage: vdpa dev vstats show DEV [qidx QUEUE_INDEX]\n")
    assert vdpa("dev", "del") == Result(1, "", "String parameter expected\n")
    bad = vdpa("-x", "dev")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err.startswith("devmig vdpa: invalid option -- 'x'\nUnknown option.\n" + USAGE_FIRST)
    assert vdpa("dev", "show", "-V") == Result(0, f"vdpa utility, devmig-{version()}\n", "")


def version() -> str:
    from devmig import __version__

    return __version__


def test_help_works_without_any_vdpa_family() -> None:
    # no --host: this machine, whose kernel may have no vdpa at all; help never asks it
    for args in (["--help"], ["-h"], ["help"], []):
        result = run_devmig("vdpa", *args)
        assert (result.code, result.out) == (0, "")
        assert result.err.startswith(USAGE_FIRST) and "--host HOST" in result.err
    assert run_devmig("vdpa", "dev", "help").err.startswith("Usage: vdpa dev show [ DEV ]\n")
    assert run_devmig("vdpa", "mgmtdev", "help") == Result(0, "", "Usage: vdpa mgmtdev show [ DEV ]\n")
    assert run_devmig("vdpa", "-V") == Result(0, f"vdpa utility, devmig-{version()}\n", "")
    assert "vdpa" in run_devmig("--help").out


def test_a_host_without_vdpa_gets_devmigs_diagnosis() -> None:
    for args in (["dev", "show"], ["-j", "mgmtdev", "show"]):
        result = run_devmig("vdpa", *args, "--host", "sim:gamma")
        assert result == Result(
            1, "", "devmig: error: host sim:gamma has no vdpa family (its lab does not give it vdpa)\n"
        )


def test_host_options() -> None:
    assert run_devmig("vdpa", "--host=sim:alpha", "dev", "add", "name", "a", "mgmtdev", "vdpasim_net").code == 0
    env = {**os.environ, "DEVMIG_HOST": "sim:alpha"}
    proc = subprocess.run(
        [sys.executable, "-m", "devmig", "vdpa", "dev"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, DEV_TEXT.format("a"), "")
    bad = run_devmig("vdpa", "dev", "show", "--host", "nowhere")
    assert (bad.code, bad.out) == (2, "")
    assert bad.err.startswith("devmig: error: host 'nowhere': expected local, sim:HOST or sim:LAB/HOST")
    missing = run_devmig("vdpa", "dev", "show", "--host")
    assert (missing.code, missing.err) == (
        2,
        "devmig: error: devmig vdpa: option '--host' requires an argument (sim:LAB/HOST or sim:HOST)\n",
    )


def test_lab_reset_forgets_the_devices() -> None:
    assert vdpa("dev", "add", "name", "a", "mgmtdev", "vdpasim_net").code == 0
    assert vdpa("dev", "show").out == DEV_TEXT.format("a")
    assert run_devmig("lab", "--reset").code == 0
    assert vdpa("dev", "show") == Result(0, "", "")


def test_split_host() -> None:
    assert split_host(["dev", "--host", "sim:alpha", "show"]) == ("sim:alpha", ["dev", "show"])
    assert split_host(["--host=sim:beta", "-j", "dev"]) == ("sim:beta", ["-j", "dev"])
    assert split_host(["dev", "show", "--", "--host", "x"]) == (None, ["dev", "show", "--", "--host", "x"])
    with pytest.raises(InputError, match="requires an argument"):
        split_host(["dev", "--host"])
