"""How the channel is set up: the command line's options, over a config file's keys of the same names."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Final

from devmig import config as config_file
from devmig.errors import InputError
from devmig.migrate.tls.channel import CA_FILE, FILES, Role, TlsConfig

#: read when no --config is given and it exists
CONFIG: Final = Path("/etc/devmig/migration.toml")

NO_CHANNEL: Final = (
    "no authenticated channel is set up: give --tls-dir DIR (libvirt's layout, e.g. /etc/pki/qemu: ca-cert.pem, "
    "server-cert.pem and server-key.pem on the receiver, client-cert.pem and client-key.pem on the sender) or "
    "--tls-ca/--tls-cert/--tls-key, or for a lab --psk-file FILE (the same key on both hosts: "
    "head -c 32 /dev/urandom > FILE; chmod 600 FILE), or set them in "
    f"{CONFIG} (--config FILE); --insecure sends the device state in the clear"
)


@dataclass(frozen=True)
class Settings:
    """How to set up the channel, by the command line's option names (a config file uses the same names, with
    dashes: `tls-dir = "/etc/pki/qemu"`)."""

    tls_dir: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    psk_file: Path | None = None
    insecure: bool = False
    tls_peer: str | None = None
    tls_allow: tuple[str, ...] = ()
    #: where they came from, for messages
    origin: str = "the command line"

    #: the options that choose the channel's mode; the rest name peers
    CREDENTIALS: ClassVar[tuple[str, ...]] = ("tls_dir", "tls_ca", "tls_cert", "tls_key", "psk_file", "insecure")
    NAMES: ClassVar[tuple[str, ...]] = ("tls_peer", "tls_allow")

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """From the CLI's keyword arguments (tls_dir=..., tls_allow=(...), insecure=...; None when not given)."""
        known = {f.name for f in fields(cls)} - {"origin"}
        values: dict[str, Any] = {
            k: (Path(v) if k in cls.CREDENTIALS and isinstance(v, str) else v) for k, v in options.items()
        }
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Settings:
        """A TOML file with the options' names as keys; relative paths are taken from the file's directory."""
        where = Path(path)
        values = config_file.read(where, "config file", _KEYS) or {}
        return cls(**values, origin=f"config file {where}")

    def given(self, names: Iterable[str]) -> bool:
        return any(getattr(self, name) for name in names)

    def over(self, base: Settings) -> Settings:
        """These settings, with `base` (a config file) for what they leave out: the credentials as a whole (naming
        any of them on the command line replaces the file's choice), the peer names one by one where they apply."""
        if not self.given(self.CREDENTIALS):
            creds = {name: getattr(base, name) for name in self.CREDENTIALS}
            merged = replace(self, **creds, origin=base.origin)
        else:
            merged = self
        if merged.mode() == "certificates":
            names = {name: getattr(self, name) or getattr(base, name) for name in self.NAMES}
            merged = replace(merged, **names)
        return merged

    def mode(self) -> str | None:
        """certificates, psk or insecure; None when nothing is chosen. Several: refused."""
        chosen = [mode for mode, names in _MODES.items() if self.given(names)]
        if len(chosen) > 1:
            raise InputError(
                f"{self.origin}: {' and '.join(_MODE_OPTIONS[m] for m in chosen)} exclude each other: choose "
                "certificates, a pre-shared key or --insecure"
            )
        return chosen[0] if chosen else None

    def config(self, role: Role) -> TlsConfig | None:
        """The channel for `role`; None for plain TCP (--insecure). InputError when nothing or too much is set."""
        mode = self.mode()
        if mode is None:
            raise InputError(NO_CHANNEL)
        if mode != "certificates" and self.given(self.NAMES):
            raise InputError(
                f"{self.origin}: --tls-peer and --tls-allow name certificate holders; they do not apply to "
                f"{_MODE_OPTIONS[mode]}"
            )
        if mode == "insecure":
            return None
        if mode == "psk":
            assert self.psk_file is not None
            return TlsConfig.from_psk_file(role, self.psk_file)
        # each role takes the names meant for it: one config file can serve a host that sends and receives
        peer = self.tls_peer if role == "client" else None
        allow = self.tls_allow if role == "server" else ()
        if self.tls_dir is not None and not (self.tls_ca or self.tls_cert or self.tls_key):
            return TlsConfig.from_dir(role, self.tls_dir, peer=peer, allow=allow)
        base = self.tls_dir
        cert_name, key_name = FILES[role]
        files = {
            "--tls-ca": self.tls_ca or (base / CA_FILE if base else None),
            "--tls-cert": self.tls_cert or (base / cert_name if base else None),
            "--tls-key": self.tls_key or (base / key_name if base else None),
        }
        missing = [option for option, path in files.items() if path is None]
        if missing:
            raise InputError(
                f"{self.origin}: --tls-ca, --tls-cert and --tls-key go together (or --tls-dir DIR with libvirt's "
                f"file names): {' and '.join(missing)} missing"
            )
        ca, cert, key = (path for path in files.values() if path is not None)
        return TlsConfig.from_files(role, ca, cert, key, peer=peer, allow=allow)


#: a config file's keys -> their kind
_KEYS: Final = {
    "tls_dir": config_file.PATH,
    "tls_ca": config_file.PATH,
    "tls_cert": config_file.PATH,
    "tls_key": config_file.PATH,
    "psk_file": config_file.PATH,
    "insecure": config_file.BOOL,
    "tls_peer": config_file.STR,
    "tls_allow": config_file.NAMES,
}
_MODES: Final = {
    "certificates": ("tls_dir", "tls_ca", "tls_cert", "tls_key"),
    "psk": ("psk_file",),
    "insecure": ("insecure",),
}
_MODE_OPTIONS: Final = {
    "certificates": "certificates (--tls-*)",
    "psk": "a pre-shared key (--psk-file)",
    "insecure": "--insecure",
}


def settings(given: Settings, config: str | os.PathLike[str] | None) -> Settings:
    """The command line's settings over the config file's: `config`, or CONFIG when it exists."""
    path = Path(config) if config is not None else CONFIG if CONFIG.exists() else None
    return given if path is None else given.over(Settings.read(path))
