"""Why the vdpa family cannot be used here, in words a person can act on (iproute2 only says "Failed to connect to
vdpa Netlink", and "Operation not permitted" without saying why).

Everything is read below an injectable root (`/` on a real host, a fake tree in tests): /proc/modules,
/proc/self/ns/net and /proc/1/ns/net, /proc/self/status, /proc/sys/kernel/osrelease, /sys/bus/vdpa, and the
kernel config (/boot/config-RELEASE, /usr/src/linux-headers-RELEASE/.config or /proc/config.gz). Nothing here
talks to the kernel otherwise; a file that cannot be read only makes the diagnosis say less.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

from devmig.vdpa.backend import VdpaUnavailableError

__all__ = [
    "MGMT_DRIVERS",
    "MgmtDriver",
    "missing_family",
    "permission_hint",
]

#: CAP_NET_ADMIN's bit in /proc/PID/status Cap* masks (include/uapi/linux/capability.h)
CAP_NET_ADMIN = 12


@dataclass(frozen=True)
class MgmtDriver:
    """A kernel module that registers vdpa management devices (drivers/vdpa/*/Makefile, Kconfig)."""

    module: str
    config: str
    what: str


#: The management-device drivers of the kernel tree (drivers/vdpa), so the diagnosis can name what to load.
MGMT_DRIVERS: tuple[MgmtDriver, ...] = (
    MgmtDriver("vdpa_sim_net", "CONFIG_VDPA_SIM_NET", "simulated net device, mgmtdev vdpasim_net"),
    MgmtDriver("vdpa_sim_blk", "CONFIG_VDPA_SIM_BLK", "simulated block device, mgmtdev vdpasim_blk"),
    MgmtDriver("vduse", "CONFIG_VDPA_USER", "devices implemented in userspace, VDUSE"),
    MgmtDriver("mlx5_vdpa", "CONFIG_MLX5_VDPA_NET", "NVIDIA ConnectX"),
    MgmtDriver("ifcvf", "CONFIG_IFCVF", "Intel IFC VF"),
    MgmtDriver("vp_vdpa", "CONFIG_VP_VDPA", "a virtio-pci device as vDPA"),
    MgmtDriver("octep_vdpa", "CONFIG_OCTEONEP_VDPA", "Marvell Octeon"),
    MgmtDriver("pds_vdpa", "CONFIG_PDS_VDPA", "AMD/Pensando DSC"),
    MgmtDriver("snet_vdpa", "CONFIG_SNET_VDPA", "SolidRun SNET DPU"),
    MgmtDriver("eni_vdpa", "CONFIG_ALIBABA_ENI_VDPA", "Alibaba ENI"),
)

#: CONFIG_* values as this module reports them: "y", "m", or "n" for "# CONFIG_X is not set" and an absent line
Config = dict[str, str]


def missing_family(root: str | os.PathLike[str] = "/") -> str:
    """The message for a kernel without the "vdpa" generic-netlink family: what is missing and what would fix it."""
    base = Path(root)
    release = _read(base / "proc/sys/kernel/osrelease")
    release = release.strip() if release else os.uname().release
    config_path, config = _kernel_config(base, release)
    findings = [
        *_netns_findings(base),
        *_config_findings(release, config_path, config),
        *_core_findings(base, config),
        *_driver_findings(base, config),
    ]
    head = f'no "vdpa" generic-netlink family in the running kernel {release}'
    head += f' (iproute2: "{VdpaUnavailableError.iproute2}"); what is needed:'
    return "\n".join([head, *(f"  - {finding}" for finding in findings)])


def permission_hint(request: str, root: str | os.PathLike[str] = "/") -> str:
    """Why the kernel answered EPERM to an administrative request (add, del, set, vstats): the family marks them
    GENL_ADMIN_PERM, i.e. CAP_NET_ADMIN in the initial user namespace."""
    base = Path(root)
    needs = f"{request} needs CAP_NET_ADMIN (the vdpa family marks it GENL_ADMIN_PERM)"
    cap_eff = _status_field(base / "proc/self/status", "CapEff")
    if cap_eff is not None and not int(cap_eff, 16) & (1 << CAP_NET_ADMIN):
        return f"hint: {needs} and this process does not have it (CapEff {cap_eff}): run it as root (e.g. sudo)"
    own, init = _readlink(base / "proc/self/ns/user"), _readlink(base / "proc/1/ns/user")
    if cap_eff is not None and own and init and own != init:
        return (
            f"hint: {needs} in the initial user namespace; this process has it only in its own ({own}, the "
            f"initial one is {init}): run it on the host, outside the container"
        )
    return f"hint: {needs} in the initial user namespace: run it as root on the host"


# --- findings, each a sentence saying what is wrong and what to do -----------------------------------------------


def _netns_findings(base: Path) -> list[str]:
    own, init = _readlink(base / "proc/self/ns/net"), _readlink(base / "proc/1/ns/net")
    if own and init and own != init:
        return [
            f"this process runs in network namespace {own}, not the initial one ({init}); the vdpa family is "
            "registered with netnsok=false, so it exists only there: run it in the initial namespace, e.g. "
            "`nsenter --net=/proc/1/ns/net devmig ...`"
        ]
    return []


def _config_findings(release: str, path: Path | None, config: Config | None) -> list[str]:
    if path is None or config is None:
        return [
            f"the config of kernel {release} was not found (/boot/config-{release}, "
            f"/usr/src/linux-headers-{release}/.config, /proc/config.gz): whether it has CONFIG_VDPA is unknown"
        ]
    if config.get("CONFIG_VDPA", "n") == "n":
        return [
            f"kernel {release} is built without CONFIG_VDPA ({path}): no module can add the family; boot a kernel "
            "built with CONFIG_VDPA=m or =y"
        ]
    return []


def _core_findings(base: Path, config: Config | None) -> list[str]:
    vdpa = config.get("CONFIG_VDPA", "n") if config is not None else None
    present = (base / "sys/bus/vdpa").is_dir()
    if present and vdpa == "n":
        return ["/sys/bus/vdpa exists although the config has no CONFIG_VDPA: is /sys this kernel's?"]
    if present or vdpa == "n":
        return []  # loaded, or the kernel cannot have it (said already)
    if vdpa == "y":
        return ["/sys/bus/vdpa is missing although CONFIG_VDPA=y: is sysfs mounted at /sys?"]
    known = "; CONFIG_VDPA=m" if vdpa == "m" else ""
    return [f"the vdpa core is not loaded (/sys/bus/vdpa is missing{known}): `modprobe vdpa`"]


def _driver_findings(base: Path, config: Config | None) -> list[str]:
    if config is not None and config.get("CONFIG_VDPA", "n") == "n":
        return []  # they all depend on CONFIG_VDPA: said already
    loaded = _loaded_modules(base)
    present = [d for d in MGMT_DRIVERS if d.module in loaded or (config or {}).get(d.config) == "y"]
    if present:
        names = ", ".join(d.module for d in present)
        return [f"management-device drivers present: {names} (`devmig vdpa mgmtdev show` lists their devices)"]
    if config is None:
        known = ", ".join(d.module for d in MGMT_DRIVERS)
        return [f"no management-device driver is loaded: load the one for your device ({known})"]
    built = [d for d in MGMT_DRIVERS if config.get(d.config, "n") != "n"]
    if not built:
        return ["no management-device driver is loaded, and this kernel builds none (CONFIG_VDPA_SIM_NET, ...)"]
    names = ", ".join(f"{d.module} ({d.what})" for d in built)
    return [f"no management-device driver is loaded: `modprobe` one this kernel builds: {names}"]


# --- reading the host ----------------------------------------------------------------------------------------------


def _kernel_config(base: Path, release: str) -> tuple[Path | None, Config | None]:
    """The running kernel's config: the first of the usual places that can be read."""
    for path in (base / f"boot/config-{release}", base / f"usr/src/linux-headers-{release}/.config"):
        text = _read(path)
        if text is not None:
            return path, _parse_config(text)
    packed = base / "proc/config.gz"
    try:
        return packed, _parse_config(gzip.decompress(packed.read_bytes()).decode(errors="replace"))
    except (OSError, EOFError):
        return None, None


def _parse_config(text: str) -> Config:
    config: Config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            name, value = line.split("=", 1)
            config[name] = value.strip('"')
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2 : -len(" is not set")]] = "n"
    return config


def _loaded_modules(base: Path) -> set[str]:
    """Module names from /proc/modules (the first word of each line)."""
    text = _read(base / "proc/modules") or ""
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def _status_field(path: Path, name: str) -> str | None:
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _readlink(path: Path) -> str | None:
    """A namespace link's target ("net:[4026531840]"); None where it cannot be read (/proc/1 needs privileges)."""
    try:
        return str(path.readlink())
    except OSError:
        return None
