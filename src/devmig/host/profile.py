"""Profiles: devmig's knowledge of today's drivers, as data files.

No upstream driver exposes the proposed migration interface (migration_info.json, migration/<param>) yet. A profile
says, for the mdev types or PCI functions it matches, which model they are, where the software version comes from,
which identity values must be equal, and which parameters the driver's own stream checks. Shipped profiles live in
`devmig/host/profiles/*.toml`; an operator adds or overrides them in `/etc/devmig/profiles.d/*.toml` (or the
directory in $DEVMIG_PROFILES_DIR). The format is documented in docs/discovery.md.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devmig.errors import InputError
from devmig.host.devices import driver_key
from devmig.model.load import validate_document
from devmig.model.migration import MigrationFlag
from devmig.model.params import ParamName, ParamType, ParamValue, has_type

ENV_PROFILES_DIR = "DEVMIG_PROFILES_DIR"
DEFAULT_PROFILES_DIR = "/etc/devmig/profiles.d"

#: Facts about the device at hand that a profile may use (see describe.DeviceFacts).
DeviceFact = Literal[
    "pci_id", "subsystem_id", "revision", "driver", "parent_pci_id", "parent_driver", "subchannel_type", "type"
]


class ValueSource(BaseModel):
    """Where a value comes from: exactly one of the fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fixed: str | None = None
    module: str | None = Field(default=None, description="a kernel module: read /sys/module/NAME/<attribute>")
    attribute: Literal["version", "srcversion"] = "version"
    kernel: Literal["osrelease"] | None = Field(default=None, description="the running kernel's release")
    device: DeviceFact | None = Field(default=None, description="a fact of the device itself")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [name for name in ("fixed", "module", "kernel", "device") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of fixed, module, kernel, device; found {given or 'none'}")
        return self


class ParamRule(BaseModel):
    """A parameter the driver's stream checks, whose value the type determines (strict equality)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ParamType
    by_type: dict[str, ParamValue] = Field(description="type id -> the value devices of that type have")
    description: str | None = None

    @model_validator(mode="after")
    def _typed(self) -> Self:
        for type_id, value in self.by_type.items():
            if not has_type(self.type, value):
                raise ValueError(f"by_type.{type_id} must be of type {self.type}, found {value!r}")
        return self


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[str] = Field(default_factory=list, description="mdev type ids (shell patterns)")
    drivers: list[str] = Field(default_factory=list, description="drivers a PCI function is bound to")
    pci_ids: list[str] = Field(default_factory=list, description="'vvvv:dddd' patterns narrowing the drivers")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.types and not self.drivers:
            raise ValueError("a profile must match mdev types or PCI drivers")
        return self


class MigrationRule(BaseModel):
    """How the driver migrates: its VFIO_MIGRATION_* flags and whether the device logs its own DMA."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flags: list[MigrationFlag] = Field(description="the driver's migration flags; empty: no VFIO migration")
    device_dirty_tracking: Literal["yes", "no", "firmware", "not-needed"] = Field(
        description="yes: the driver logs the device's DMA; no: the host IOMMU must track it; firmware: the driver "
        "logs it when the device's firmware can (not visible in sysfs); not-needed: the device does no DMA"
    )
    pf_enables: bool = Field(
        default=False,
        description="the PF's driver decides whether the VF migrates at all (read from VFIO's debugfs when mounted)",
    )


_TEMPLATE_RE = re.compile(r"\{(type|driver|pci_id)\}")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    description: str
    match: Match
    model: str = Field(description="the model; {type}, {driver} and {pci_id} are replaced")
    software_version: ValueSource = Field(
        description="read, then its first three numbers make major.minor.bugfix ('0.1' is 0.1.0)"
    )
    api: dict[str, ValueSource] = Field(default_factory=dict, description="identity values that must be equal")
    params: dict[ParamName, ParamRule] = Field(default_factory=dict)
    migration: MigrationRule | None = None
    origin: str = Field(default="", exclude=True)

    def matches_type(self, type_id: str) -> bool:
        return any(fnmatch.fnmatchcase(type_id, pattern) for pattern in self.match.types)

    def matches_function(self, driver: str | None, pci_id: str | None) -> bool:
        if driver is None or driver_key(driver) not in {driver_key(d) for d in self.match.drivers}:
            return False
        return not self.match.pci_ids or any(fnmatch.fnmatchcase(pci_id or "", p) for p in self.match.pci_ids)

    def model_for(self, **facts: str) -> str:
        return _TEMPLATE_RE.sub(lambda m: facts.get(m[1], m[0]), self.model)


class ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: list[Profile]


#: A profile file is a few kilobytes; a larger one is a mistake (or hostile) and is refused unread.
MAX_PROFILE_BYTES = 1024 * 1024


def parse_profiles(text: str, origin: str) -> list[Profile]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{origin}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively, with no limit of its own
        raise InputError(f"{origin}: not valid TOML: nested too deeply") from None
    doc = validate_document(ProfileFile, data, origin)
    return [p.model_copy(update={"origin": origin}) for p in doc.profile]


def _read_dir(directory: Path) -> list[Profile]:
    out: list[Profile] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_PROFILE_BYTES + 1)
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read profile: {exc}") from None
        if len(data) > MAX_PROFILE_BYTES:
            raise InputError(f"{path}: larger than {MAX_PROFILE_BYTES // 1024} KiB: expected a profile file")
        out += parse_profiles(text, str(path))
    return out


def shipped_profiles() -> list[Profile]:
    out: list[Profile] = []
    for entry in sorted(resources.files("devmig.host.profiles").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out += parse_profiles(entry.read_text(encoding="utf-8"), f"devmig:profiles/{entry.name}")
    return out


def load_profiles(extra_dir: str | os.PathLike[str] | None = None) -> list[Profile]:
    """The operator's profiles first (they win), then the shipped ones."""
    directory = Path(extra_dir or os.environ.get(ENV_PROFILES_DIR) or DEFAULT_PROFILES_DIR)
    local = _read_dir(directory) if directory.is_dir() else []
    return local + shipped_profiles()
