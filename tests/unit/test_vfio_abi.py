"""The VFIO and iommufd numbers and layouts devmig uses, against the kernel's own headers, compiled with gcc.

A C program is generated from devmig's tables (every structure of `uapi.UAPI_STRUCTS`: its size and each field's
offset; every number of `uapi.uapi_constants()`), compiled and run, and each value it prints is compared with
devmig's. Each item is guarded by `#ifdef` on the macro that introduced it, so one program serves two headers:
- the system's <linux/vfio.h> (Debian's linux-libc-dev, 6.1 on bookworm, older than PRE_COPY, MIG_DATA_SIZE and the
  iommufd cdev): what it lacks is reported as skipped, what it has must be equal;
- Linux 6.12's uapi tree (Debian's linux-headers-6.12.*-common), when installed: everything must be there and
  equal.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devmig.migrate import device, uapi

GCC = shutil.which("gcc")
UAPI_612 = sorted(Path("/usr/src").glob("linux-headers-6.12*-common/include/uapi/linux/vfio.h"))

#: The macro whose presence tells a header has the structure (a struct cannot be tested with #ifdef).
STRUCT_GUARDS: dict[str, str] = {
    "vfio_group_status": "VFIO_GROUP_GET_STATUS",
    "vfio_device_info": "VFIO_DEVICE_GET_INFO",
    "vfio_region_info": "VFIO_DEVICE_GET_REGION_INFO",
    "vfio_device_feature": "VFIO_DEVICE_FEATURE",
    "vfio_device_feature_migration": "VFIO_DEVICE_FEATURE_MIGRATION",
    "vfio_device_feature_mig_state": "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE",
    "vfio_device_feature_mig_data_size": "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE",
    "vfio_device_feature_dma_logging_control": "VFIO_DEVICE_FEATURE_DMA_LOGGING_START",
    "vfio_device_feature_dma_logging_range": "VFIO_DEVICE_FEATURE_DMA_LOGGING_START",
    "vfio_device_feature_dma_logging_report": "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT",
    "vfio_precopy_info": "VFIO_MIG_GET_PRECOPY_INFO",
    "vfio_device_bind_iommufd": "VFIO_DEVICE_BIND_IOMMUFD",
    "vfio_device_attach_iommufd_pt": "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    "vfio_device_detach_iommufd_pt": "VFIO_DEVICE_DETACH_IOMMUFD_PT",
    "iommu_ioas_alloc": "IOMMU_IOAS_ALLOC",
    "iommu_destroy": "IOMMU_DESTROY",
}
#: Fields a structure gained later, and a macro of the release that added them. vfio_device_info's pad came with
#: "vfio: align capability structures" (commit a881b496941f, Linux 6.5), the release of this capability macro;
#: the structure's size depends on it too.
FIELD_GUARDS: dict[tuple[str, str], str] = {("vfio_device_info", "pad"): "VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP"}
#: Enum values, and the macro that came with them (a macro is its own guard).
ENUM_GUARDS: dict[str, str] = {
    "VFIO_PCI_BAR0_REGION_INDEX": "VFIO_DEVICE_GET_REGION_INFO",
    "VFIO_PCI_CONFIG_REGION_INDEX": "VFIO_DEVICE_GET_REGION_INFO",
    "VFIO_PCI_NUM_REGIONS": "VFIO_DEVICE_GET_REGION_INFO",
    "IOMMUFD_CMD_DESTROY": "IOMMU_DESTROY",
    "IOMMUFD_CMD_IOAS_ALLOC": "IOMMU_IOAS_ALLOC",
    **{
        f"VFIO_DEVICE_STATE_{name}": "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE"
        for name in ("ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P")
    },
    "VFIO_DEVICE_STATE_PRE_COPY": "VFIO_MIGRATION_PRE_COPY",
    "VFIO_DEVICE_STATE_PRE_COPY_P2P": "VFIO_MIGRATION_PRE_COPY",
}


@dataclass(frozen=True)
class Item:
    what: str  # for people: "sizeof(struct x)", "offsetof(struct x, f)", "NAME"
    guards: tuple[str, ...]  # macros that must all be defined for the header to have it
    expr: str  # C
    value: int  # devmig's


def items() -> list[Item]:
    """Every size, offset and number devmig takes from the uAPI."""
    found: list[Item] = []
    for struct in uapi.UAPI_STRUCTS:
        name, guard = struct.__name__, STRUCT_GUARDS[struct.__name__]
        fields = [field_name for field_name, *_ in struct._fields_]
        later = tuple(FIELD_GUARDS[name, f] for f in fields if (name, f) in FIELD_GUARDS)
        expr = f"sizeof(struct {name})"
        found.append(Item(expr, (guard, *later), expr, ctypes.sizeof(struct)))
        for field_name in fields:
            expr = f"offsetof(struct {name}, {field_name})"
            extra = (FIELD_GUARDS[name, field_name],) if (name, field_name) in FIELD_GUARDS else ()
            found.append(Item(expr, (guard, *extra), expr, getattr(struct, field_name).offset))
    for name, value in sorted(uapi.uapi_constants().items()):
        found.append(Item(name, (ENUM_GUARDS.get(name, name),), f"({name})", value))
    return found


def program(checks: list[Item]) -> str:
    lines = [
        "#include <stddef.h>",
        "#include <stdio.h>",
        "#include <linux/vfio.h>",
        "#if __has_include(<linux/iommufd.h>)",
        "#include <linux/iommufd.h>",
        "#endif",
        "int main(void)",
        "{",
    ]
    for index, item in enumerate(checks):
        lines += [
            "#if " + " && ".join(f"defined({guard})" for guard in item.guards),
            f'    printf("{index} %lld\\n", (long long){item.expr});',
            "#else",
            f'    printf("{index} -\\n");',
            "#endif",
        ]
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    differ: list[str]
    skipped: list[str]
    checked: int


def compile_and_run(tmp: Path, checks: list[Item], include: Path | None = None) -> Outcome:
    assert GCC is not None
    source, binary = tmp / "abi.c", tmp / "abi"
    source.write_text(program(checks))
    # A uapi tree straight from the source still has the kernel's __user, which headers_install strips.
    flags = ["-I", str(include), "-D__user="] if include is not None else []
    built = subprocess.run(
        [GCC, "-std=gnu11", "-Wall", "-Werror", *flags, "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, f"gcc failed on the generated program:\n{built.stderr}"
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, check=True)
    outcome = Outcome([], [], 0)
    answers = dict(line.split(" ", 1) for line in ran.stdout.splitlines())
    assert len(answers) == len(checks), "the program printed one line per item"
    for index, item in enumerate(checks):
        answer = answers[str(index)]
        if answer == "-":
            outcome.skipped.append(f"{item.what} (needs {' and '.join(item.guards)})")
        elif int(answer) != item.value:
            outcome.differ.append(f"{item.what}: the header says {int(answer)}, devmig {item.value}")
        else:
            outcome.checked += 1
    return outcome


needs_gcc = pytest.mark.prerequisite(None if GCC else "gcc is not installed: cannot compile against <linux/vfio.h>")


def test_every_struct_has_a_guard_and_kernel_names() -> None:
    assert {s.__name__ for s in uapi.UAPI_STRUCTS} == set(STRUCT_GUARDS)
    assert all(name.startswith(("VFIO_", "IOMMU")) for name in uapi.uapi_constants())


@needs_gcc
def test_against_the_system_header(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    """linux-libc-dev's header: what it has must be equal; what it lacks is reported."""
    outcome = compile_and_run(tmp_path, items())
    record_property("skipped", "; ".join(outcome.skipped))
    print(f"system <linux/vfio.h>: {outcome.checked} equal, {len(outcome.skipped)} not in this header:")
    for line in outcome.skipped:
        print(f"  skipped: {line}")
    assert not outcome.differ, "\n".join(outcome.differ)
    assert outcome.checked > 0
    # Every header since migration v2 (5.18) has these; an older one is no reference for devmig.
    present = {"VFIO_DEVICE_FEATURE", "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", "sizeof(struct vfio_device_info)"}
    assert not [s for s in outcome.skipped if s.split(" ")[0] in present]


@needs_gcc
@pytest.mark.prerequisite(
    None
    if UAPI_612
    else "no Linux 6.12 uapi headers (/usr/src/linux-headers-6.12*-common; scripts/setup installs them as root)"
)
def test_against_linux_6_12_strictly(tmp_path: Path) -> None:
    """Linux 6.12's vfio.h and iommufd.h (copied alone into inc/linux, so <linux/types.h> is the system's)."""
    uapi = UAPI_612[-1].parent
    inc = tmp_path / "inc" / "linux"
    inc.mkdir(parents=True)
    for name in ("vfio.h", "iommufd.h"):
        shutil.copy(uapi / name, inc / name)
    outcome = compile_and_run(tmp_path, items(), include=tmp_path / "inc")
    assert not outcome.skipped, f"missing from Linux 6.12's headers ({uapi}): " + "; ".join(outcome.skipped)
    assert not outcome.differ, "\n".join(outcome.differ)
    assert outcome.checked == len(items())


def test_ioctl_numbers() -> None:
    assert uapi.VFIO_GET_API_VERSION == 0x3B64
    assert uapi.VFIO_CHECK_EXTENSION == 0x3B65
    assert uapi.VFIO_SET_IOMMU == 0x3B66
    assert uapi.VFIO_GROUP_GET_STATUS == 0x3B67
    assert uapi.VFIO_GROUP_SET_CONTAINER == 0x3B68
    assert uapi.VFIO_GROUP_GET_DEVICE_FD == 0x3B6A
    assert uapi.VFIO_DEVICE_GET_INFO == 0x3B6B
    assert uapi.VFIO_DEVICE_GET_REGION_INFO == 0x3B6C
    assert uapi.VFIO_DEVICE_RESET == 0x3B6F
    assert uapi.VFIO_DEVICE_FEATURE == 0x3B75
    assert uapi.VFIO_DEVICE_BIND_IOMMUFD == 0x3B76
    assert uapi.VFIO_MIG_GET_PRECOPY_INFO == 0x3B79
    assert uapi.IOMMU_DESTROY == 0x3B80
    assert uapi.IOMMU_IOAS_ALLOC == 0x3B81


def test_layouts() -> None:
    assert ctypes.sizeof(uapi.vfio_group_status) == 8
    assert ctypes.sizeof(uapi.vfio_device_info) == 24
    assert ctypes.sizeof(uapi.vfio_region_info) == 32
    assert ctypes.sizeof(uapi.vfio_device_feature) == 8
    assert ctypes.sizeof(uapi.vfio_device_feature_mig_state) == 8
    assert ctypes.sizeof(uapi.vfio_device_feature_dma_logging_control) == 24
    assert ctypes.sizeof(uapi.vfio_device_feature_dma_logging_report) == 32
    assert ctypes.sizeof(uapi.vfio_precopy_info) == 24
    assert uapi.vfio_precopy_info.initial_bytes.offset == 8


def test_flag_names() -> None:
    assert device.flag_names(7, uapi.MIGRATION_FLAGS) == ["STOP_COPY", "P2P", "PRE_COPY"]
    assert device.flag_names(0x83, uapi.DEVICE_FLAGS) == ["RESET", "PCI", "CAPS"]
    assert device.flag_names(3, uapi.REGION_FLAGS) == ["READ", "WRITE"]
