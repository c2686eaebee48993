"""`devmig vdpa`'s reading of iproute2's command line: options, the command tree, keyword arguments, values, and
what each outcome prints, on the simulated vdpa family in this process.

The expected texts are what /usr/sbin/vdpa (iproute2 6.1.0) printed for the same command lines on Linux 6.12 with
vdpa_sim (tests/kernel/guest/test_vdpa_cli.py compares the two there), and reference/vdpa-netlink.md §3."""

from __future__ import annotations

import errno

import pytest

from devmig import __version__
from devmig.errors import InputError
from devmig.sim.vdpa import SimVdpa
from devmig.vdpa.backend import VdpaBackend, VdpaError, VdpaUnavailableError
from devmig.vdpa.family import U64_MAX, format_mac
from devmig.vdpa.iproute2 import grammar
from devmig.vdpa.iproute2.commands import Args
from devmig.vdpa.iproute2.options import getopt
from devmig.vdpa.iproute2.outcome import Refused, Say
from devmig.vdpa.iproute2.parser import Call, parse
from devmig.vdpa.iproute2.run import Result, vdpa_main
from devmig.vdpa.iproute2.values import get_unsigned, ll_addr, strtoul
from tests.golden import assert_golden

USAGE = (
    "Usage: vdpa [ OPTIONS ] OBJECT { COMMAND | help }\n"
    "where  OBJECT := { mgmtdev | dev }\n"
    "       OPTIONS := { -V[ersion] | -n[o-nice-names] | -j[son] | -p[retty] }\n"
)
DEVMIG_USAGE = "".join(f"{line}\n" for line in grammar.DEVMIG_USAGE)
DEV_A = "a: type network mgmtdev vdpasim_net vendor_id 0 max_vqs 3 max_vq_size 256\n"
DEV_A_JSON = '"a":{"type":"network","mgmtdev":"vdpasim_net","vendor_id":0,"max_vqs":3,"max_vq_size":256}'
ENODEV_DEV = "Error: vdpa: device not found.\nkernel answers: No such device\n"


@pytest.fixture
def sim() -> SimVdpa:
    return SimVdpa()


def run(sim: VdpaBackend, *argv: str, json: bool = False, pretty: bool = False) -> Result:
    return vdpa_main(list(argv), lambda: sim, json=json, pretty=pretty)


def no_kernel() -> VdpaBackend:
    raise AssertionError("the family was asked for")


# --- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["-V"], ["--Version"], ["--V"], ["--Vers"], ["-Vj"], ["-jV"], ["dev", "show", "-V"]])
def test_version(argv: list[str]) -> None:
    result = vdpa_main(argv, no_kernel)
    assert (result.out, result.err, result.code) == (f"vdpa utility, devmig-{__version__}\n", "", 0)


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["--h"], ["--he"], [], ["help"], ["h"], ["hel"], ["-jh"]])
def test_help_needs_no_kernel(argv: list[str]) -> None:
    result = vdpa_main(argv, no_kernel)
    assert (result.err, result.code) == (USAGE + DEVMIG_USAGE, 0)
    # -h stops before the JSON writer exists; `help` is a command run with it
    assert result.out == ("\n" if argv == ["-j", "help"] else "")


def test_json_help_prints_the_writers_newline() -> None:
    result = vdpa_main(["-j", "help"], no_kernel)
    assert (result.out, result.err, result.code) == ("\n", USAGE + DEVMIG_USAGE, 0)


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        (["-x"], "devmig vdpa: invalid option -- 'x'\n"),
        (["-n"], "devmig vdpa: invalid option -- 'n'\n"),
        (["-jx", "dev"], "devmig vdpa: invalid option -- 'x'\n"),
        (["--foo"], "devmig vdpa: unrecognized option '--foo'\n"),
        (["--version"], "devmig vdpa: unrecognized option '--version'\n"),
        (["--json=1"], "devmig vdpa: option '--json' doesn't allow an argument\n"),
        (["--js=1"], "devmig vdpa: option '--json' doesn't allow an argument\n"),
        (["dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", "-1"], "devmig vdpa: invalid option -- '1'\n"),
        (["-s"], ""),  # in iproute2's optstring, but no case handles it
    ],
)
def test_bad_options_print_unknown_option_and_the_usage(argv: list[str], first: str) -> None:
    result = vdpa_main(argv, no_kernel)
    assert (result.out, result.err, result.code) == ("", first + "Unknown option.\n" + USAGE + DEVMIG_USAGE, 1)


def test_options_are_permuted_as_gnu_getopt_does() -> None:
    opts = getopt(["dev", "-j", "show", "-p", "a"])
    assert (opts.json, opts.pretty, opts.operands) == (True, True, ["dev", "show", "a"])
    opts = getopt(["dev", "show", "--", "-j", "--", "-"])
    assert (opts.json, opts.operands) == (False, ["dev", "show", "-j", "--", "-"])
    opts = getopt(["-", "-pj"])
    assert (opts.json, opts.pretty, opts.operands) == (True, True, ["-"])
    # with POSIXLY_CORRECT the first operand ends the options
    opts = getopt(["-j", "dev", "show", "-p"], permute=False)
    assert (opts.json, opts.pretty, opts.operands) == (True, False, ["dev", "show", "-p"])


def test_a_device_named_like_an_option_after_double_dash(sim: SimVdpa) -> None:
    sim.add("-j", "vdpasim_net")
    assert run(sim, "dev", "show", "--", "-j").out.startswith("-j: type network")


# --- iproute2's value parsers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base", "limit", "value"),
    [
        ("1500", 10, 0xFFFF, 1500),
        (" 1500", 10, 0xFFFF, 1500),
        ("+1500", 10, 0xFFFF, 1500),
        ("\t7", 10, 0xFFFF, 7),
        ("65535", 10, 0xFFFF, 65535),
        ("65536", 10, 0xFFFF, None),
        ("70000", 10, 0xFFFF, None),
        ("-1", 10, 0xFFFF, None),  # wraps around to ULONG_MAX, too large
        ("-0", 10, 0xFFFF, 0),
        ("abc", 10, 0xFFFF, None),
        ("", 10, 0xFFFF, None),
        (" ", 10, 0xFFFF, None),
        ("1500x", 10, 0xFFFF, None),
        ("0x10", 10, 0xFFFF, None),
        ("4294967295", 10, 0xFFFF_FFFF, 4294967295),
        ("4294967296", 10, 0xFFFF_FFFF, None),
        ("0x308830028", 16, U64_MAX, 0x308830028),
        ("308830028", 16, U64_MAX, 0x308830028),
        ("0X10", 16, U64_MAX, 16),
        ("0x", 16, U64_MAX, None),  # "0" then a stray "x"
        ("-1", 16, U64_MAX, U64_MAX),
        ("1" * 17, 16, U64_MAX, None),  # overflow: ERANGE
        ("fffffffffffffffff", 16, U64_MAX, None),
        ("g", 16, U64_MAX, None),
    ],
)
def test_get_unsigned(text: str, base: int, limit: int, value: int | None) -> None:
    assert get_unsigned(text, base, limit) == value


def test_strtoul_base_0_reads_c_literals() -> None:
    assert strtoul("0x1f.", 0) == (31, ".")
    assert strtoul("017", 0) == (15, "")
    assert strtoul("09", 0) == (0, "9")
    assert strtoul("x", 0) == (None, "x")


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("00:11:22:33:44:55", "00:11:22:33:44:55"),
        ("0:1:a:B:c:D", "00:01:0a:0b:0c:0d"),
        ("02:11:22:33:44", "02:11:22:33:44:00"),  # fewer bytes: the rest stay zero
        ("00:11:22:33:44:55:66", "00:11:22:33:44:55"),  # more: ignored
        ("0x2:2:3:4:5:6", "02:02:03:04:05:06"),
        (" 2:1g:3:4:5:6", "02:01:03:04:05:06"),  # sscanf skips space and stops at "g"
        ("1.2.3.4", "01:02:03:04:00:00"),  # with a dot: an IPv4 address
        ("1.2", "01:02:00:00:00:00"),
        ("0x10.010.3.4", "10:08:03:04:00:00"),
        ("01:00:00:00:00:00", "01:00:00:00:00:00"),  # multicast: the kernel decides
    ],
)
def test_ll_addr_accepts(text: str, mac: str) -> None:
    assert format_mac(ll_addr(text)) == mac


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zz:11:22:33:44:55", '"zz" is invalid lladdr.'),
        ("00:11:zz:33:44:55", '"zz" is invalid lladdr.'),
        ("100:2:3:4:5:6", '"100" is invalid lladdr.'),
        ("2::3:4:5:6", '"" is invalid lladdr.'),
        ("", '"" is invalid lladdr.'),
        ("ffffffff:1:2:3:4:5", '"ffffffff" is invalid lladdr.'),
        ("1.2.3.400", '"1.2.3.400" is invalid lladdr.'),
        ("1.2.3.4.5", '"1.2.3.4.5" is invalid lladdr.'),
        ("1.", '"1." is invalid lladdr.'),
        ("1.2:3", '"1.2:3" is invalid lladdr.'),
        ("1.x", '"1.x" is invalid lladdr.'),
    ],
)
def test_ll_addr_refuses(text: str, message: str) -> None:
    with pytest.raises(Refused) as refused:
        ll_addr(text)
    assert refused.value.lines == (message,)


# --- the command tree -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operands", "command"),
    [
        (["mgmtdev", "show"], grammar.MGMTDEV_SHOW),
        (["m", "s"], grammar.MGMTDEV_SHOW),
        (["mgmt", "li"], grammar.MGMTDEV_SHOW),
        (["dev"], grammar.DEV_SHOW),
        (["d", "s"], grammar.DEV_SHOW),
        (["dev", "l"], grammar.DEV_SHOW),
        (["de", "a", "name", "x", "m", "vdpasim_net"], grammar.DEV_ADD),
        (["dev", "d", "x"], grammar.DEV_DEL),
        (["dev", "c"], grammar.CONFIG_SHOW),
        (["dev", "conf", "s", "x"], grammar.CONFIG_SHOW),
        (["dev", "vstats", "show", "x", "qidx", "0"], grammar.VSTATS_SHOW),
        (["dev", "set", "name", "x", "mac", "00:11:22:33:44:55"], grammar.DEV_SET),
    ],
)
def test_commands_and_their_prefixes(operands: list[str], command: grammar.Command) -> None:
    outcome = parse(operands)
    assert isinstance(outcome, Call) and outcome.command is command


@pytest.mark.parametrize(
    ("operands", "lines", "code"),
    [
        (["foo"], ('Object "foo" not found',), 1),
        ([""], ('Object "" not found',), 1),
        (["devs"], ('Object "devs" not found',), 1),
        (["mgmtdev"], grammar.MGMTDEV_USAGE, 0),
        (["mgmtdev", "help"], grammar.MGMTDEV_USAGE, 0),
        (["mgmtdev", "foo"], ('Command "foo" not found',), 1),
        (["dev", "help"], grammar.DEV_USAGE, 0),
        (["d", "h"], grammar.DEV_USAGE, 0),
        (["dev", "foo"], ('Command "foo" not found',), 1),
        (["dev", "se"], ('Command "se" not found',), 1),  # set must be exact
        (["dev", "vst"], ('Command "vst" not found',), 1),  # so must vstats
        (["dev", "config", "help"], grammar.CONFIG_USAGE, 0),
        (["dev", "config", "foo"], ('Command "foo" not found',), 1),
        (["dev", "vstats"], grammar.VSTATS_USAGE, 1),
        (["dev", "vstats", "help"], grammar.VSTATS_USAGE, 0),
        (["dev", "vstats", "h"], ('Command "h" not found',), 1),
        (["dev", "vstats", "sh", "a"], ('Command "sh" not found',), 1),
        (["dev", "vstats", "show"], grammar.VSTATS_USAGE, 1),
        (["dev", "vstats", "show", "a", "qidx"], grammar.VSTATS_USAGE, 1),
        (["dev", "vstats", "show", "a", "qidx", "0", "x"], grammar.VSTATS_USAGE, 1),
    ],
)
def test_help_and_unknown_words(operands: list[str], lines: tuple[str, ...], code: int) -> None:
    assert parse(operands) == Say(lines, code)


# --- keyword arguments ------------------------------------------------------------------------------------------


def args_of(*operands: str) -> Args:
    outcome = parse(operands)
    assert isinstance(outcome, Call), outcome
    return outcome.args


def test_dev_add_arguments() -> None:
    assert args_of("dev", "add", "name", "a", "mgmtdev", "pci/0000:03:00.2") == {
        "name": "a",
        "mgmtdev": "pci/0000:03:00.2",
    }
    assert args_of(
        "dev", "add", "n", "a", "m", "vdpasim_net", "mac", "0:1:2:3:4:5", "mtu", "9000", "max", "2",
        "device_features", "308830028",
    ) == {"name": "a", "mgmtdev": "vdpasim_net", "mac": "00:01:02:03:04:05", "mtu": 9000, "max_vqp": 2,
          "device_features": 0x308830028}  # fmt: skip
    # "ma" is max_vqp (mac must be exact); a repeated keyword keeps the last value
    assert args_of("dev", "add", "name", "a", "name", "b", "mgmtdev", "x", "ma", "4") == {
        "name": "b",
        "mgmtdev": "x",
        "max_vqp": 4,
    }


def test_a_lone_last_argument_is_ignored_as_iproute2_does() -> None:
    assert args_of("dev", "add", "name", "a", "mgmtdev", "x", "foo") == {"name": "a", "mgmtdev": "x"}
    assert args_of("dev", "add", "name", "a", "mgmtdev", "x", "mac") == {"name": "a", "mgmtdev": "x"}
    assert args_of("dev", "show", "a", "extra") == {"dev": "a"}
    assert args_of("mgmtdev", "show", "vdpasim_net", "extra") == {"mgmtdev": "vdpasim_net"}


@pytest.mark.parametrize(
    ("operands", "lines"),
    [
        (["dev", "add"], ("management device handle not set.",)),
        (["dev", "add", "name"], ("management device handle not set.",)),
        (["dev", "add", "name", "x"], ("management device handle not set.",)),
        (["dev", "add", "name", "x", "mgmtdev"], ("management device handle not set.",)),
        (["dev", "add", "mgmtdev", "vdpasim_net"], ("device name is not set.",)),
        (["dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "foo", "1"], ('Unknown option "foo"',)),
        (["dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "qidx", "1"], ('Unknown option "qidx"',)),
        (["dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mac", "zz"], ('"zz" is invalid lladdr.',)),
        (
            ["dev", "add", "name", "x", "mgmtdev", "a/b/c"],
            (
                "Wrong vdpa mgmtdev identification string format",
                'Expected "mgmtdev_bus_name/mgmtdev_name"',
                'Expected "mgmtdev_name"',
            ),
        ),
        (
            ["mgmtdev", "show", "a/b/c"],
            (
                "Wrong vdpa mgmtdev identification string format",
                'Expected "mgmtdev_bus_name/mgmtdev_name"',
                'Expected "mgmtdev_name"',
            ),
        ),
        (["dev", "del"], ("String parameter expected",)),
        (["dev", "del", "a", "name", "b"], ('Unknown option "name"',)),
        (["dev", "show", "a", "b", "c"], ('Unknown option "b"',)),
        (["dev", "vstats", "show", "a", "foo", "1"], ('Unknown option "foo"',)),
        (["dev", "set"], ("device name is not set.",)),
        (["dev", "set", "mac", "00:11:22:33:44:55"], ("device name is not set.",)),
        (["dev", "set", "name", "a", "m", "00:11:22:33:44:55"], ('Unknown option "m"',)),
        (["dev", "set", "name", "a", "mtu", "1500"], ('Unknown option "mtu"',)),
    ],
)
def test_argument_errors(operands: list[str], lines: tuple[str, ...]) -> None:
    assert parse(operands) == Say(lines, 1)


@pytest.mark.parametrize(
    ("operands", "note"),
    [
        (["dev", "add", "name", "x", "mgmtdev", "y", "mtu", "abc"], 'mtu "abc": not a decimal number from 0 to 65535'),
        (
            ["dev", "add", "name", "x", "mgmtdev", "y", "mtu", "70000"],
            'mtu "70000": not a decimal number from 0 to 65535',
        ),
        (
            ["dev", "add", "name", "x", "mgmtdev", "y", "max_vqp", ""],
            'max_vqp "": not a decimal number from 0 to 65535',
        ),
        (
            ["dev", "add", "name", "x", "mgmtdev", "y", "device_features", "xyz"],
            'device_features "xyz": not a hexadecimal number from 0 to 18446744073709551615',
        ),
        (["dev", "vstats", "show", "a", "qidx", "abc"], 'qidx "abc": not a decimal number from 0 to 4294967295'),
    ],
)
def test_numbers_iproute2_refuses_without_a_word_get_devmigs_line(operands: list[str], note: str) -> None:
    assert parse(operands) == Say((f"devmig: {note}",), 1)


# --- whole runs on the simulated family -------------------------------------------------------------------------


def test_mgmtdev_show_every_form(sim: SimVdpa) -> None:
    shown = run(sim, "mgmtdev", "show")
    assert (shown.err, shown.code) == ("", 0)
    assert_golden("vdpa/mgmtdev-show.txt", shown.out)
    assert run(sim, "-p", "m", "l") == shown  # -p alone does not mean JSON
    assert run(sim, "mgmtdev", "show", "vdpasim_blk").out == (
        "vdpasim_blk: \n  supported_classes block\n  max_supported_vqs 0\n  dev_features\n"
    )
    assert run(sim, "-j", "mgmtdev", "show", "vdpasim_blk").out == (
        '{"mgmtdev":{"vdpasim_blk":{"supported_classes":["block"],"max_supported_vqs":0,"dev_features":[]}}}\n'
    )
    assert_golden(
        "vdpa/mgmtdev-show-vdpasim_blk.pretty.json",
        run(sim, "mgmtdev", "show", "vdpasim_blk", json=True, pretty=True).out,
    )


@pytest.mark.parametrize("handle", ["nope", "pci/x"])
def test_a_mgmtdev_the_kernel_does_not_know(sim: SimVdpa, handle: str) -> None:
    error = "Error: vdpa: Fail to find the specified mgmt device.\nkernel answers: No such device\n"
    assert run(sim, "mgmtdev", "show", handle) == Result("", error, 1)
    assert run(sim, "-j", "mgmtdev", "show", handle) == Result('{"mgmtdev":{}}\n', error, 1)
    assert run(sim, "-jp", "mgmtdev", "show", handle) == Result('{\n    "mgmtdev": {}\n}\n', error, 1)


def test_a_handle_with_an_empty_part_is_refused_by_the_backend(sim: SimVdpa) -> None:
    # iproute2 sends "/vdpasim_net" and the kernel finds nothing (ENODEV); devmig's backends refuse to encode it
    result = run(sim, "-j", "mgmtdev", "show", "/vdpasim_net")
    assert (result.out, result.code) == ('{"mgmtdev":{}}\n', 1)
    assert result.err.startswith("devmig: error: management device '/vdpasim_net': wrong vdpa mgmtdev identification")


def test_dev_add_show_config_del(sim: SimVdpa) -> None:
    assert run(sim, "dev") == Result("", "", 0)
    assert run(sim, "-j", "dev") == Result('{"dev":{}}\n', "", 0)
    assert run(sim, "-j", "-p", "dev", "show") == Result('{\n    "dev": {}\n}\n', "", 0)
    assert run(sim, "dev", "add", "name", "a", "mgmtdev", "vdpasim_net") == Result("", "", 0)
    assert run(sim, "-j", "dev", "add", "name", "b", "mgmtdev", "vdpasim_net", "mac", "00:11:22:33:44:55", "mtu",
               "9000") == Result("\n", "", 0)  # fmt: skip
    assert run(sim, "dev", "show", "a") == Result(DEV_A, "", 0)
    assert run(sim, "-j", "dev", "s", "a").out == '{"dev":{' + DEV_A_JSON + "}}\n"
    assert run(sim, "dev", "list").out == DEV_A + DEV_A.replace("a:", "b:")
    assert run(sim, "dev", "config", "show").out == (
        "a: mac 00:00:00:00:00:00 link up link_announce false mtu 1500 \n"
        "b: mac 00:11:22:33:44:55 link up link_announce false mtu 9000 \n"
    )
    assert run(sim, "-j", "dev", "config").out == (
        '{"config":{"a":{"mac":"00:00:00:00:00:00","link ":"up","link_announce ":false,"mtu":1500},'
        '"b":{"mac":"00:11:22:33:44:55","link ":"up","link_announce ":false,"mtu":9000}}}\n'
    )
    assert run(sim, "dev", "del", "a") == Result("", "", 0)
    assert run(sim, "dev", "del", "a") == Result("", ENODEV_DEV, 1)
    assert run(sim, "-j", "dev", "del", "a") == Result("\n", ENODEV_DEV, 1)
    assert run(sim, "dev", "show", "a") == Result("", ENODEV_DEV, 1)
    assert run(sim, "-j", "dev", "config", "show", "a") == Result('{"config":{}}\n', ENODEV_DEV, 1)


def test_dev_add_errors_from_the_kernel(sim: SimVdpa) -> None:
    add = ("dev", "add", "name", "a", "mgmtdev")
    assert run(sim, *add, "vdpasim_net").code == 0
    assert run(sim, *add, "vdpasim_net") == Result("", "kernel answers: File exists\n", 1)
    assert run(sim, "-j", *add, "vdpasim_net") == Result("\n", "kernel answers: File exists\n", 1)
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "nope") == Result(
        "", "Error: vdpa: Fail to find the specified management device.\nkernel answers: No such device\n", 1
    )
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mtu", "10") == Result(
        "", "Error: integer out of range.\nkernel answers: Numerical result out of range\n", 1
    )
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "max_vqp", "0").err == (
        "Error: vdpa: At least one pair of VQs is required.\nkernel answers: Invalid argument\n"
    )
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "ma", "2").err == (
        "Error: vdpa: Some provided attributes are not supported: 0x1000.\nkernel answers: Operation not supported\n"
    )
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "vdpasim_blk", "mac", "00:11:22:33:44:55").err == (
        "Error: vdpa: Some provided attributes are not supported: 0x400.\nkernel answers: Operation not supported\n"
    )
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "device_features", "308830028").code == 0
    assert (
        run(sim, "dev", "add", "name", "y", "mgmtdev", "vdpasim_net", "device_features", "8", "mac", "0:1:2:3:4:5").err
        == "Error: vdpa: Missing features 0x20 for provided attributes.\nkernel answers: Invalid argument\n"
    )


def test_a_local_error_prints_no_section(sim: SimVdpa) -> None:
    assert run(sim, "-j", "mgmtdev", "show", "a/b/c").out == "\n"
    assert run(sim, "-j", "foo") == Result("\n", 'Object "foo" not found\n', 1)
    assert run(sim, "dev", "add", "name", "x", "mgmtdev", "vdpasim_net", "mac", "100:1:2:3:4:5") == Result(
        "", '"100" is invalid lladdr.\n', 1
    )


def test_vstats(sim: SimVdpa) -> None:
    sim.add("a", "vdpasim_net")
    negotiation = "Error: vdpa: feature negotiation not complete.\nkernel answers: Resource temporarily unavailable\n"
    assert run(sim, "dev", "vstats", "show", "a", "qidx", "0") == Result("", negotiation, 1)
    assert run(sim, "-j", "dev", "vstats", "show", "a", "qidx", "0") == Result('{"vstats":{}}\n', negotiation, 1)
    # without qidx iproute2 asks anyway, and the kernel says EINVAL
    assert run(sim, "dev", "vstats", "show", "a") == Result("", "kernel answers: Invalid argument\n", 1)
    sim.negotiate("a")
    sim.count("a", 0, "rx packets", 5)
    assert run(sim, "dev", "vstats", "show", "a", "qidx", "0").out == (
        "a: queue_type control_vq rx packets 5 rx bytes 0 rx errors 0 rx overruns 0 rx drops 0 \n"
    )
    assert run(sim, "-j", "dev", "vstats", "show", "a", "qidx", "1").out == (
        '{"vstats":{"a":{"queue_type":"tx","tx packets":0,"tx bytes":0,"tx errors":0,"tx drops":0}}}\n'
    )
    assert run(sim, "dev", "vstats", "show", "a", "qidx", "99999").err == (
        "Error: vdpa: queue index exceeds max value.\nkernel answers: Numerical result out of range\n"
    )


def test_dev_set(sim: SimVdpa) -> None:
    sim.add("a", "vdpasim_net")
    sim.add("blk0", "vdpasim_blk")
    assert run(sim, "dev", "set", "name", "a", "mac", "02:00:00:00:00:01") == Result("", "", 0)
    assert run(sim, "dev", "config", "show", "a").out.startswith("a: mac 02:00:00:00:00:01 ")
    assert run(sim, "dev", "set", "name", "a", "mac", "01:00:00:00:00:00") == Result(
        "", "Error: vdpa: Invalid MAC address.\nkernel answers: Operation not supported\n", 1
    )
    # the kernel accepts the request for a block device and warns: exit 0
    assert run(sim, "dev", "set", "name", "blk0", "mac", "02:00:00:00:00:01") == Result(
        "", "Warning: vdpa: blk0 device not supported.\n", 0
    )


class Refusing:
    """A backend whose every request is refused with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def __getattr__(self, name: str) -> object:
        def refuse(*args: object, **kwargs: object) -> object:
            raise self.error

        return refuse

    def close(self) -> None:
        self.closed = True


def test_a_kernel_error_with_a_hint_prints_it_after_iproute2s_lines() -> None:
    error = VdpaError(errno.EPERM, request="dev add a")
    error.hint = "needs CAP_NET_ADMIN: run it as root"  # the netlink client sets it
    backend = Refusing(error)
    result = vdpa_main(["dev", "add", "name", "a", "mgmtdev", "vdpasim_net"], lambda: backend)  # type: ignore[arg-type, return-value]
    assert result == Result(
        "", "kernel answers: Operation not permitted\ndevmig: hint: needs CAP_NET_ADMIN: run it as root\n", 1
    )
    assert backend.closed
    error.hint = "hint: dev add a needs CAP_NET_ADMIN"  # as devmig.vdpa.diagnose words it
    result = vdpa_main(["dev", "add", "name", "a", "mgmtdev", "vdpasim_net"], lambda: backend)  # type: ignore[arg-type, return-value]
    assert result.err.endswith("\ndevmig: hint: dev add a needs CAP_NET_ADMIN\n")


def test_a_missing_family_prints_devmigs_diagnosis_and_no_json() -> None:
    def unavailable() -> VdpaBackend:
        raise VdpaUnavailableError('no "vdpa" family: load vdpa')

    for argv in (["-j", "dev", "show"], ["mgmtdev", "show"]):
        assert vdpa_main(argv, unavailable) == Result("", 'devmig: error: no "vdpa" family: load vdpa\n', 1)
    late = Refusing(VdpaUnavailableError("the client is closed"))
    result = vdpa_main(["-j", "dev"], lambda: late)  # type: ignore[arg-type, return-value]
    assert result == Result("", "devmig: error: the client is closed\n", 1)


def test_an_argument_the_backend_cannot_send() -> None:
    backend = Refusing(InputError("device name is not set."))
    result = vdpa_main(["dev", "add", "name", "", "mgmtdev", "x"], lambda: backend)  # type: ignore[arg-type, return-value]
    assert result == Result("", "devmig: error: device name is not set.\n", 1)


def test_devmigs_own_json_options(sim: SimVdpa) -> None:
    sim.add("a", "vdpasim_net")
    assert run(sim, "dev", "show", json=True).out == '{"dev":{' + DEV_A_JSON + "}}\n"
    assert run(sim, "dev", "show", json=True, pretty=True).out.startswith('{\n    "dev": {\n        "a": {\n')
