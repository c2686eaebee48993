"""The reference drivers parse and check `migration/<param>` writes as the kernel's helpers do, in their own code."""

from __future__ import annotations

import errno
import json

import pytest

from devmig.host.sysfs import SysfsError
from devmig.sim.lab import load_lab
from devmig.sim.params import DriverCapability, DriverParam, kstrtobool, kstrtoint


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("1", True), ("Y\n", True), ("yes", True), ("true", True), ("on", True), ("ON", True), ("0", False)],
        *[("n", False), ("False", False), ("off", False), ("oFf", False), ("1garbage", True)],
    ],
)
def test_kstrtobool_reads_the_first_characters(text: str, value: bool) -> None:
    assert kstrtobool(text) is value


@pytest.mark.parametrize("text", ["", "2", "o", "ok", " 1", "\n", "enabled"])
def test_kstrtobool_refuses_the_rest(text: str) -> None:
    with pytest.raises(ValueError):
        kstrtobool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("0", 0), ("42", 42), ("42\n", 42), ("+7", 7), ("-7", -7), ("0x10", 16), ("0X1f", 31), ("010", 8)],
        *[("2147483647", 2**31 - 1), ("-2147483648", -(2**31))],
    ],
)
def test_kstrtoint_base_0(text: str, value: int) -> None:
    assert kstrtoint(text) == value


@pytest.mark.parametrize("text", ["", "+", "-", " 1", "1 ", "1\n\n", "1_000", "٣", "08", "0x", "0xg", "1.0", "abc"])
def test_kstrtoint_refuses_what_userspace_int_would_take(text: str) -> None:
    with pytest.raises(ValueError):
        kstrtoint(text)


def test_kstrtoint_out_of_s32_is_erange() -> None:
    with pytest.raises(OverflowError):
        kstrtoint("2147483648")


def test_allowed_values_and_ranges() -> None:
    queues = DriverParam("int", 4, allowed=((1, 16), 32))
    assert [queues.accepts(v) for v in (0, 1, 16, 17, 32)] == [False, True, True, False, True]
    assert not queues.accepts(True)  # a bool is no int to a driver's list
    mode = DriverParam("str", "none", off="none", allowed=("none", "ppgtt"))
    assert mode.parse("ppgtt\n") == "ppgtt" and mode.accepts("ppgtt") and not mode.accepts("PPGTT")
    assert DriverParam("bool", True).show(False) == "0\n" and queues.show(12) == "12\n"


def test_the_document_is_the_drivers_own() -> None:
    cap = DriverCapability(
        "vfio-pci", "t", "1.0.0", {"pci_id": "1af4:10f2"}, "m", {"q": DriverParam("int", 4, allowed=((1, 16),))}
    )
    assert json.loads(cap.document()) == {
        "device_api": "vfio-pci",
        "type": "t",
        "software_version": "1.0.0",
        "api": {"pci_id": "1af4:10f2"},
        "models": {"m": {"params": {"q": {"type": "int", "init_value": 4, "allowed_values": ["1-16"]}}}},
    }


def test_a_vf_parameter_write_goes_through_the_drivers_parser() -> None:
    fs = load_lab("default").host("alpha").kernel.fs
    queues = "sys/bus/pci/devices/0000:3b:00.3/migration/queues"
    fs.write(queues, "0x8")
    assert fs.read(queues).strip() == "8"
    for bad, code in (("17", errno.EINVAL), (" 8", errno.EINVAL), ("9999999999", errno.ERANGE)):
        with pytest.raises(SysfsError) as caught:
            fs.write(queues, bad)
        assert caught.value.errno == code, bad
    assert fs.read(queues).strip() == "8"
