"""What runs after each successful publish, given the record as stored: the agent holds a list of such hooks
(`Agent.on_published`), built from its settings here."""

from __future__ import annotations

from collections.abc import Callable

from devmig.agent.config import AgentConfig
from devmig.errors import InputError
from devmig.fleet.records import HostRecord

Hook = Callable[[HostRecord], None]


def published_hooks(config: AgentConfig) -> list[Hook]:
    hooks: list[Hook] = []
    if config.nfd_dir is not None:
        # the Node Feature Discovery writer plugs in here: one hook writing config.nfd_dir's feature file
        raise InputError(f"--nfd-dir {config.nfd_dir}: NFD export not available in this devmig")
    return hooks
