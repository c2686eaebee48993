"""`devmig libvirt migrate`: preflight, annotate, then libvirt's own live migration, each phase reported.

The migration itself is libvirt's (virDomainMigrateToURI3, peer to peer: the source's libvirt drives the
destination's), so libvirt's guarantee holds: the domain runs on one host at a time, and a migration that fails or
is cancelled leaves it running on the source. devmig adds what libvirt lacks before it starts: every reason it
would fail (preflight), and the descriptors in the domain's metadata for the destination's hook (annotate). It
never asks for postcopy: QEMU blocks postcopy for VFIO devices.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from devmig.errors import DevmigError, ExitCode
from devmig.libvirt.annotate import Annotated
from devmig.libvirt.connection import Connection, Domain, LibvirtError, binding, domain, message
from devmig.model.preflight import Preflight

Phase = Literal["preflight", "annotate", "migrate"]
PHASES: tuple[Phase, ...] = ("preflight", "annotate", "migrate")
State = Literal["start", "done", "failed", "progress"]
#: seconds between two looks at the migration job's statistics
POLL = 0.5


@dataclass(frozen=True)
class PhaseEvent:
    """One step of `migrate`, for a progress display or a program (`-j` prints each as a JSON line)."""

    phase: Phase
    state: State
    message: str | None = None
    #: the migration job's data so far and its total (libvirt's jobStats: data_processed, data_total)
    bytes: int | None = None
    total: int | None = None
    #: what the phase produced: the preflight report, the annotation
    result: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        kind = "progress" if self.state == "progress" else "phase"
        return {"event": kind, **{k: v for k, v in asdict(self).items() if v is not None}}


Report = Callable[[PhaseEvent], None]


def quiet(event: PhaseEvent) -> None:
    pass


class PreflightRefusedError(DevmigError):
    """Preflight found a reason the migration would fail (exit 1); carries the report."""

    exit_code = ExitCode.REFUSED

    def __init__(self, text: str, report: Preflight) -> None:
        super().__init__(text)
        self.report = report


@dataclass(frozen=True)
class Migrated:
    domain: str
    dest_uri: str
    flags: int
    #: preflight's errors migrate went past with --force
    forced: int


def flags_for(persistent: bool, tls: bool) -> int:
    """Live and peer to peer (the source's libvirt drives the destination's, so it can cancel both halves);
    aborting on an I/O error; a persistent domain's definition moves with it, so it is never defined (and
    startable) on both hosts; never postcopy."""
    libvirt = binding()
    flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
    if persistent:
        flags |= libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    if tls:
        flags |= libvirt.VIR_MIGRATE_TLS
    return int(flags)


def _errors(report: Preflight) -> str:
    errors = [i for i in report.items if i.severity == "error"]
    shown = "; ".join(f"{i.object}: {i.message}" for i in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"{len(errors)} reason(s) it would fail: {shown}{more}"


def migration_params(migrate_uri: str | None, listen_address: str | None) -> dict[str, str]:
    """virDomainMigrateToURI3's typed parameters: where QEMU sends the state (a dedicated migration network, as
    `virsh migrate --migrateuri`) and where the destination's QEMU listens (`--listen-address`)."""
    libvirt = binding()
    params = {}
    if migrate_uri is not None:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = migrate_uri
    if listen_address is not None:
        params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = listen_address
    return params


def _run(
    dom: Domain, dest_uri: str, params: dict[str, str], flags: int, what: str, report: Report, poll: float
) -> None:
    """virDomainMigrateToURI3 in a thread while this one reports the job's progress; a signal or Ctrl-C here
    aborts the job (libvirt then keeps the domain running on the source) before it is raised further."""
    libvirt = binding()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            dom.migrateToURI3(dest_uri, params, flags)
        except BaseException as exc:  # handed to the main thread, which raises it
            failure.append(exc)

    worker = threading.Thread(target=work, name="libvirt-migrate", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(poll)
            if not worker.is_alive():
                break
            try:
                stats = dom.jobStats()
            except libvirt.libvirtError:
                continue  # the job has not started yet, or has just ended
            processed, total = stats.get("data_processed"), stats.get("data_total")
            if isinstance(processed, int):
                known = total if isinstance(total, int) else None
                report(PhaseEvent("migrate", "progress", bytes=processed, total=known))
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):  # no job left to abort: it ended as the signal came
            dom.abortJob()
        worker.join()
        raise
    if failure:
        exc = failure[0]
        if isinstance(exc, libvirt.libvirtError):
            raise LibvirtError(f"{what}: libvirt's migration to {dest_uri} failed: {message(exc)}") from None
        raise exc


def _source_state(dom: Domain) -> str:
    """Where the domain is after a failed migration, as libvirt tells it."""
    libvirt = binding()
    try:
        active = dom.isActive()
    except libvirt.libvirtError as exc:
        return f"its state on the source cannot be read: {message(exc)}"
    return "the domain still runs on the source" if active else "the domain is not running on the source"


def migrate(
    conn: Connection,
    domain_name: str,
    dest_uri: str,
    *,
    preflight: Callable[[], Preflight],
    annotate: Callable[[], Annotated],
    force: bool = False,
    tls: bool = False,
    params: dict[str, str] | None = None,
    report: Report = quiet,
    poll: float = POLL,
) -> Migrated:
    """Preflight (refused when something blocks, unless `force`), annotate (refused when a hostdev could not be
    described, unless `force`), then libvirt's live migration of `domain_name` to `dest_uri`."""
    what = f"domain {domain_name} at {conn.getURI()}"
    report(PhaseEvent("preflight", "start"))
    checked = preflight()
    errors = checked.counts.get("error", 0)
    result = checked.model_dump(mode="json")
    if checked.blocking and not force:
        report(PhaseEvent("preflight", "failed", _errors(checked), result=result))
        raise PreflightRefusedError(f"{what}: not migrated: {_errors(checked)} (--force migrates anyway)", checked)
    said = f"forced past {errors} error(s)" if checked.blocking else "nothing blocks"
    report(PhaseEvent("preflight", "done", said, result=result))

    report(PhaseEvent("annotate", "start"))
    annotated = annotate()
    missing = [a for a in annotated.hostdevs if a.descriptor is None]
    if missing and not force:
        reasons = "; ".join(a.reason or a.hostdev.label for a in missing)
        report(PhaseEvent("annotate", "failed", reasons, result=annotated.to_dict()))
        raise LibvirtError(f"{what}: not migrated: the destination's hook would find no descriptor for {reasons}")
    where = "live and config" if annotated.config else "live"
    described = len(annotated.hostdevs) - len(missing)
    said = f"{described} of {len(annotated.hostdevs)} hostdev(s) described, metadata set ({where})"
    report(PhaseEvent("annotate", "done", said, result=annotated.to_dict()))

    libvirt = binding()
    dom = domain(conn, domain_name)
    try:
        flags = flags_for(bool(dom.isPersistent()), tls)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"{what}: {message(exc)}") from None
    report(PhaseEvent("migrate", "start", f"to {dest_uri}"))
    try:
        _run(dom, dest_uri, params or {}, flags, what, report, poll)
    except LibvirtError as exc:
        failed = LibvirtError(f"{exc.message}; {_source_state(dom)}")
        report(PhaseEvent("migrate", "failed", failed.message))
        raise failed from None
    report(PhaseEvent("migrate", "done", f"{domain_name} runs at {dest_uri}"))
    return Migrated(domain_name, dest_uri, flags, errors if checked.blocking else 0)
