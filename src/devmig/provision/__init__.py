"""Preparing the destination: the Python API of `devmig plan` (`rank`), `prepare`, `release` and `recover`, for
callers such as Nova or KubeVirt.

    from devmig.machine import open_host
    from devmig.provision import prepare, release

    host = open_host()                        # this machine; open_host("sim:beta") for a simulated one
    prepared = prepare(descriptor, host, uuid=wanted_uuid, persist=True)
    prepared.mapping()                        # {"target_mdevs": {"<source uuid>": "<uuid>"}}
    release(prepared.id, host)
"""

from __future__ import annotations

from devmig.host.access import Host
from devmig.host.ops import NoCapacityError
from devmig.host.profile import Profile, load_profiles
from devmig.model.descriptor import DeviceDescriptor
from devmig.provision.candidates import HostCandidate, Ranking, rank_candidates
from devmig.provision.claims import recover_claims
from devmig.provision.journal import HostState, Recovered, UnwindError
from devmig.provision.journal import recover as recover_journals
from devmig.provision.prepare import Prepared, Released, prepare, release


def recover(host: Host, *, state_dir: str | None = None) -> list[Recovered]:
    """Finish the undo of every prepare on `host` whose process died (its journal is still on disk), then release
    every claim whose writer died before it finished (devmig.provision.claims: a hook's prepares for one VM)."""
    state = HostState.of(host.key, state_dir)
    return recover_journals(host.sysfs, state) + recover_claims(host, state, state_dir=state_dir)


def rank(
    source: DeviceDescriptor, host: Host, *, profiles: list[Profile] | None = None, state_dir: str | None = None
) -> Ranking:
    """`devmig plan`: every candidate on `host` for the source descriptor, judged and ranked; functions that
    earlier prepares claimed are not offered."""
    claimed = HostState.of(host.key, state_dir).claimed()
    return rank_candidates(source, host, load_profiles() if profiles is None else profiles, claimed)


__all__ = [
    "HostCandidate",
    "HostState",
    "NoCapacityError",
    "Prepared",
    "Ranking",
    "Recovered",
    "Released",
    "UnwindError",
    "prepare",
    "rank",
    "rank_candidates",
    "recover",
    "release",
]
