"""Prepares made together for one owner (a libvirt domain's devices), kept or released together.

A hook that prepares every device of an incoming VM must leave nothing behind when one of them fails, when the
incoming VM is torn down, or when its own process dies half-way. So before the first prepare it writes a claim: the
owner and the prepare ids it is about to use (ids are chosen up front: a prepare with a given id is idempotent).
Releasing a claim releases each of those ids that has a record, then removes the claim; `devmig recover` releases
every claim still marked incomplete (its writer died before it finished), after the journals are unwound.

Layout: hosts/<host>/claims/<owner>.json (docs/provisioning.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devmig.errors import DevmigError, InputError
from devmig.host.access import Host
from devmig.provision.journal import HostState, Recovered, write_atomic
from devmig.provision.prepare import Released, release
from devmig.state import ensure_dir, safe_name

CLAIM_FORMAT = "devmig.claim/1"


@dataclass
class Claim:
    """One owner's prepares on one host."""

    owner: str
    #: what the owner is, for messages ("domain vm1")
    label: str
    ids: list[str]
    #: every prepare of the claim finished (an incomplete claim's writer died: `recover` releases it)
    complete: bool = False
    #: the owner started using the devices (a libvirt domain that started here): a teardown keeps them
    started: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CLAIM_FORMAT,
            "owner": self.owner,
            "label": self.label,
            "ids": self.ids,
            "complete": self.complete,
            "started": self.started,
            **self.extra,
        }


def _dir(state: HostState) -> Path:
    return ensure_dir(state.base / "claims")


def claim_path(state: HostState, owner: str) -> Path:
    return _dir(state) / f"{safe_name(owner)}.json"


def _lock_fd(state: HostState, owner: str) -> int:
    return os.open(_dir(state) / f"{safe_name(owner)}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def holding(state: HostState, owner: str) -> Iterator[None]:
    """The owner's claim lock, held while a process works on its claim: `recover` leaves a held claim alone."""
    fd = _lock_fd(state, owner)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def new_ids(count: int) -> list[str]:
    return [str(uuidlib.uuid4()) for _ in range(count)]


def save(state: HostState, claim: Claim) -> None:
    write_atomic(claim_path(state, claim.owner), claim.to_dict())


def load(state: HostState, owner: str) -> Claim | None:
    path = claim_path(state, owner)
    if not path.exists():
        return None
    return _read(path)


def _read(path: Path) -> Claim:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"claim {path}: unreadable ({exc}); expected {CLAIM_FORMAT} JSON") from None
    ids = data.get("ids") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != CLAIM_FORMAT
        or not isinstance(data.get("owner"), str)
        or not isinstance(ids, list)
        or not all(isinstance(i, str) for i in ids)
    ):
        raise InputError(f"claim {path}: expected a {CLAIM_FORMAT} document (owner, ids)")
    known = {"format", "owner", "label", "ids", "complete", "started"}
    return Claim(
        data["owner"],
        str(data.get("label") or data["owner"]),
        list(ids),
        bool(data.get("complete")),
        bool(data.get("started")),
        {k: v for k, v in data.items() if k not in known},
    )


def release_claim(host: Host, state: HostState, claim: Claim, *, state_dir: str | None = None) -> list[Released]:
    """Release each of the claim's prepares that was made, then the claim; DevmigError (the claim kept) when one
    cannot be released, after trying all."""
    released: list[Released] = []
    failures: list[str] = []
    for prepare_id in claim.ids:
        if state.record(prepare_id) is None:
            continue  # never made (or released already): nothing to undo
        try:
            released.append(release(prepare_id, host, state_dir=state_dir))
        except DevmigError as exc:
            failures.append(f"{prepare_id}: {exc}")
    if failures:
        raise DevmigError(
            f"releasing what devmig prepared for {claim.label} on {host.name}: {'; '.join(failures)}; the claim is "
            f"kept ({claim_path(state, claim.owner)}): run `devmig recover` again once the cause is gone"
        )
    claim_path(state, claim.owner).unlink(missing_ok=True)
    return released


def recover_claims(host: Host, state: HostState, *, state_dir: str | None = None) -> list[Recovered]:
    """Release every incomplete claim on `host` whose writer is gone (it died before it finished); leave the ones
    a running process holds."""
    results: list[Recovered] = []
    for path in sorted(_dir(state).glob("*.json")):
        name = f"claim {path.stem}"
        try:
            claim = _read(path)
        except InputError as exc:
            results.append(Recovered(name, "failed", 0, [str(exc)]))
            continue
        if claim.complete:
            continue
        fd = _lock_fd(state, claim.owner)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                results.append(Recovered(name, "running"))
                continue
            try:
                released = release_claim(host, state, claim, state_dir=state_dir)
            except DevmigError as exc:
                results.append(Recovered(name, "failed", 0, [str(exc)]))
                continue
            results.append(Recovered(name, "released", len(released)))
        finally:
            os.close(fd)
    return results
