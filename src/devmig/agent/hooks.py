"""What runs after each successful publish, given the record as stored: the agent holds a list of such hooks
(`Agent.on_published`), built from its settings here. The loop also runs them after each heartbeat with the record
last stored, so a hook that keeps a file fresh (the NFD feature file's expiry) is renewed while nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from devmig.agent.config import AgentConfig
from devmig.errors import InputError
from devmig.fleet.nfd import write_features
from devmig.fleet.records import HostRecord

Hook = Callable[[HostRecord], None]


def nfd_hook(directory: Path) -> Hook:
    """Keep `directory`'s devmig feature file (docs/fleet.md, "Node Feature Discovery") the host's labels: written
    when they changed or half its expiry is gone, else left alone."""

    def write(record: HostRecord) -> None:
        write_features(directory, record)

    return write


def published_hooks(config: AgentConfig) -> list[Hook]:
    hooks: list[Hook] = []
    if config.nfd_dir is not None:
        if not config.nfd_dir.is_dir():
            raise InputError(
                f"nfd-dir {config.nfd_dir} ({config.origin} or --nfd-dir): no such directory: expected nfd-worker's "
                "features.d (/etc/kubernetes/node-feature-discovery/features.d)"
            )
        hooks.append(nfd_hook(config.nfd_dir))
    return hooks
