"""The agent's settings: /etc/devmig/agent.toml (or --config FILE), with every key also a command-line option of
the same name; the command line wins. SIGHUP reads the file again (the command line still wins).

```toml
store = "postgresql://devmig@db/fleet"
heartbeat-interval = 60
metrics-address = "127.0.0.1:9464"
```
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from devmig import config as config_file
from devmig.errors import InputError

#: read when no --config is given and it exists
CONFIG: Final = Path("/etc/devmig/agent.toml")
#: where the agent's events come from: "auto" chooses (the simulator's for a lab host; udevd's where it runs, else
#: the kernel's), "none" leaves the periodic re-read alone
EVENT_SOURCES: Final = ("auto", "udev", "kernel", "none")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class AgentConfig:
    #: the fleet store's URL (default: $DEVMIG_STORE, else the local SQLite file)
    store: str | None = None
    #: the host's name in the fleet (default: its hostname, or the simulated host's name)
    name: str | None = None
    #: "sim:LAB/HOST" for a simulated host; None: this machine
    host: str | None = None
    sysfs_root: str = "/"
    state_dir: str | None = None
    profiles_dir: str | None = None
    events: str = "auto"
    #: seconds between two signs of life when nothing changed (the store's TTL is 600 s by default)
    heartbeat_interval: float = 60.0
    #: seconds between two full re-reads, whatever the events said (a safety net: 0 switches it off)
    resync_interval: float = 300.0
    #: seconds the events must be quiet before the inventory is read ...
    debounce: float = 0.2
    #: ... and at most this long after the first of a burst
    max_delay: float = 2.0
    #: the first and the longest wait before trying a failed store again
    retry_initial: float = 1.0
    retry_max: float = 60.0
    #: seconds a store operation under way may take to finish once SIGTERM came, before it is abandoned
    stop_timeout: float = 10.0
    #: HOST:PORT to serve Prometheus metrics on (None: off)
    metrics_address: str | None = None
    #: a directory of Node Feature Discovery feature files, rewritten after each publish
    nfd_dir: Path | None = None
    log_level: str = "info"
    #: where the settings came from, for messages
    origin: str = "the defaults"

    @classmethod
    def read(cls, path: Path, *, missing_ok: bool = False) -> AgentConfig:
        values = config_file.read(path, "config file", KEYS, missing_ok=missing_ok)
        if values is None:
            return cls()
        return cls(**values, origin=f"config file {path}")

    def over(self, options: dict[str, Any]) -> AgentConfig:
        """These settings with the command line's options (None: not given) put over them."""
        given = {k: v for k, v in options.items() if v is not None and k in KEYS}
        if "nfd_dir" in given:
            given["nfd_dir"] = Path(given["nfd_dir"])
        merged = replace(self, **given)
        merged.check()
        return merged

    def check(self) -> None:
        if self.max_delay < self.debounce:
            raise InputError(
                f"{self.origin}: max-delay {self.max_delay:g} is shorter than debounce {self.debounce:g}: expected "
                "max-delay >= debounce"
            )
        if self.retry_max < self.retry_initial:
            raise InputError(
                f"{self.origin}: retry-max {self.retry_max:g} is shorter than retry-initial {self.retry_initial:g}"
            )


#: the file's keys (the options' names with dashes) -> their kind
KEYS: Final[dict[str, config_file.Kind]] = {
    "store": config_file.STR,
    "name": config_file.STR,
    "host": config_file.STR,
    "sysfs_root": config_file.STR,
    "state_dir": config_file.STR,
    "profiles_dir": config_file.STR,
    "events": config_file.choice(*EVENT_SOURCES),
    "heartbeat_interval": config_file.SECONDS,
    "resync_interval": config_file.SECONDS_OR_ZERO,
    "debounce": config_file.SECONDS_OR_ZERO,
    "max_delay": config_file.SECONDS_OR_ZERO,
    "retry_initial": config_file.SECONDS,
    "retry_max": config_file.SECONDS,
    "stop_timeout": config_file.SECONDS_OR_ZERO,
    "metrics_address": config_file.STR,
    "nfd_dir": config_file.PATH,
    "log_level": config_file.choice(*LOG_LEVELS),
}
assert set(KEYS) == {f.name for f in fields(AgentConfig)} - {"origin"}


def load(options: dict[str, Any], path: str | Path | None) -> AgentConfig:
    """The file's settings (`path`, else CONFIG when it exists) under the command line's `options`."""
    base = AgentConfig.read(Path(path)) if path is not None else AgentConfig.read(CONFIG, missing_ok=True)
    return base.over(options)
