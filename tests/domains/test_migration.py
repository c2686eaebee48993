"""`migrate`'s orchestration: preflight, annotate, libvirt's migration, in that order, each phase reported.

libvirt's test driver has no migration, so a fake connection and domain stand in for libvirt here: they implement
the calls migrate makes and record them, in order. The real migration is proven in the kernel lab (a later issue).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from devmig.errors import ExitCode, SignalledError
from devmig.libvirt.annotate import Annotated, Annotation
from devmig.libvirt.connection import LibvirtError
from devmig.libvirt.migration import Migrated, PhaseEvent, PreflightRefusedError, migrate
from devmig.libvirt.preflight import preflight
from devmig.model.preflight import Preflight
from tests.domains.driver import needs_libvirt
from tests.domains.test_preflight import described, facts

DEST = "qemu+tls://beta/system"


class FakeDomain:
    """The calls migrate makes on a domain, recorded; the migration runs until `jobStats` was asked `rounds`
    times (or the job is aborted), then succeeds or raises `fail`."""

    def __init__(self, calls: list[Any], *, persistent: bool = True, fail: str | None = None, rounds: int = 2) -> None:
        self.calls, self.persistent, self.fail, self.rounds = calls, persistent, fail, rounds
        self.active = True
        self.asked = 0
        self.finish = threading.Event()
        self.aborted = False

    def name(self) -> str:
        return "vm1"

    def isActive(self) -> int:  # noqa: N802 - the binding's names
        self.calls.append("isActive")
        return int(self.active)

    def isPersistent(self) -> int:  # noqa: N802
        self.calls.append("isPersistent")
        return int(self.persistent)

    def migrateToURI3(self, dconnuri: str, params: dict[str, Any], flags: int = 0) -> int:  # noqa: N802
        import libvirt

        self.calls.append(("migrateToURI3", dconnuri, params, flags))
        assert self.finish.wait(10), "the fake migration was never let finish"
        if self.aborted:
            raise libvirt.libvirtError("operation aborted: migration out job: canceled by client")
        if self.fail is not None:
            raise libvirt.libvirtError(self.fail)
        self.active = False
        return 0

    def jobStats(self, flags: int = 0) -> dict[str, Any]:  # noqa: N802
        self.calls.append("jobStats")
        self.asked += 1
        if self.asked >= self.rounds:
            self.finish.set()
        return {"type": 2, "data_processed": self.asked * 1024, "data_total": 4096}

    def abortJob(self) -> int:  # noqa: N802
        self.calls.append("abortJob")
        self.aborted = True
        self.finish.set()
        return 0


class FakeConnection:
    def __init__(self, dom: FakeDomain) -> None:
        self.dom, self.calls = dom, dom.calls

    def getURI(self) -> str:  # noqa: N802
        return "qemu:///system"

    def lookupByName(self, name: str) -> FakeDomain:  # noqa: N802
        self.calls.append(("lookupByName", name))
        return self.dom


def nothing_blocks() -> Preflight:
    return preflight(facts())


def blocked() -> Preflight:
    return preflight(facts(postcopy=True, hypervisor_version=7_002_000))


def annotated(complete: bool = True) -> Annotated:
    from devmig.libvirt.domain import parse_domain
    from tests.domains.test_preflight import XML

    hostdevs = parse_domain(XML).hostdevs
    known = described()
    return Annotated(
        "vm1",
        None,
        "qemu:///system",
        True,
        True,
        [
            Annotation(h, known[h.address]) if complete or h.kind == "mdev" else Annotation(h, None, "device gone")
            for h in hostdevs
        ],
    )


def run(dom: FakeDomain, **options: Any) -> tuple[Migrated, list[PhaseEvent]]:
    events: list[PhaseEvent] = []
    pre: Callable[[], Preflight] = options.pop("preflight", nothing_blocks)
    ann: Callable[[], Annotated] = options.pop("annotate", annotated)

    def checked() -> Preflight:
        dom.calls.append("preflight")
        return pre()

    def annotate() -> Annotated:
        dom.calls.append("annotate")
        return ann()

    conn: Any = FakeConnection(dom)
    done = migrate(
        conn,
        "vm1",
        DEST,
        preflight=checked,
        annotate=annotate,
        report=options.pop("report", events.append),
        poll=0.001,
        **options,
    )
    return done, events


def phases(events: list[PhaseEvent]) -> list[tuple[str, str]]:
    return [(e.phase, e.state) for e in events if e.state != "progress"]


@needs_libvirt
def test_preflight_annotate_then_libvirts_live_migration() -> None:
    import libvirt

    dom = FakeDomain([])
    done, events = run(dom)
    wanted = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    calls = [c for c in dom.calls if c != "jobStats"]
    assert calls == [
        "preflight",
        "annotate",
        ("lookupByName", "vm1"),
        "isPersistent",
        ("migrateToURI3", DEST, {}, wanted),
    ]
    assert not wanted & libvirt.VIR_MIGRATE_POSTCOPY and not wanted & libvirt.VIR_MIGRATE_TLS
    assert done == Migrated("vm1", DEST, wanted, 0)
    assert phases(events) == [
        ("preflight", "start"),
        ("preflight", "done"),
        ("annotate", "start"),
        ("annotate", "done"),
        ("migrate", "start"),
        ("migrate", "done"),
    ]
    progress = [(e.bytes, e.total) for e in events if e.state == "progress"]
    assert progress and progress[0] == (1024, 4096)
    assert events[1].message == "nothing blocks" and events[1].result is not None
    assert events[1].result["blocking"] is False
    assert events[3].message == "2 of 2 hostdev(s) described, metadata set (live and config)"


@needs_libvirt
def test_the_migration_uri_and_listen_address_reach_libvirt_as_typed_parameters() -> None:
    """A dedicated migration network (virsh's --migrateuri and --listen-address; the kernel lab's loopback)."""
    import libvirt

    from devmig.libvirt.migration import migration_params

    assert migration_params(None, None) == {}
    params = migration_params("tcp://10.1.0.2:49152", "10.1.0.2")
    assert params == {
        libvirt.VIR_MIGRATE_PARAM_URI: "tcp://10.1.0.2:49152",
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: "10.1.0.2",
    }
    dom = FakeDomain([])
    run(dom, params=params)
    (call,) = [c for c in dom.calls if isinstance(c, tuple) and c[0] == "migrateToURI3"]
    assert call[2] == {"migrate_uri": "tcp://10.1.0.2:49152", "listen_address": "10.1.0.2"}


@needs_libvirt
def test_a_transient_domain_over_tls_keeps_no_definition_to_move() -> None:
    import libvirt

    dom = FakeDomain([], persistent=False)
    done, _ = run(dom, tls=True)
    assert done.flags == (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
        | libvirt.VIR_MIGRATE_TLS
    )


@needs_libvirt
def test_preflight_refuses_with_its_reasons_and_nothing_else_happens() -> None:
    dom = FakeDomain([])
    with pytest.raises(PreflightRefusedError) as err:
        run(dom, preflight=blocked)
    assert dom.calls == ["preflight"]
    assert err.value.exit_code == ExitCode.REFUSED and err.value.report.blocking
    assert err.value.message.startswith("domain vm1 at qemu:///system: not migrated: 2 reason(s) it would fail: ")
    assert "postcopy was asked for" in err.value.message and err.value.message.endswith("(--force migrates anyway)")


@needs_libvirt
def test_force_goes_past_preflight_and_says_so() -> None:
    dom = FakeDomain([])
    done, events = run(dom, preflight=blocked, force=True)
    assert done.forced == 2 and any(c[0] == "migrateToURI3" for c in dom.calls if isinstance(c, tuple))
    assert (events[1].state, events[1].message) == ("done", "forced past 2 error(s)")


@needs_libvirt
def test_a_hostdev_annotate_could_not_describe_stops_it_unless_forced() -> None:
    dom = FakeDomain([])
    with pytest.raises(LibvirtError, match="the destination's hook would find no descriptor for device gone"):
        run(dom, annotate=lambda: annotated(complete=False))
    assert dom.calls == ["preflight", "annotate"]
    done, _ = run(FakeDomain([]), annotate=lambda: annotated(complete=False), force=True)
    assert done.domain == "vm1"


@needs_libvirt
def test_libvirts_refusal_is_one_message_and_the_domain_stays_on_the_source() -> None:
    dom = FakeDomain([], fail="operation failed: migration of disk vda failed: No space left on device")
    events: list[PhaseEvent] = []
    with pytest.raises(LibvirtError) as err:
        run(dom, report=events.append)
    assert err.value.message == (
        f"domain vm1 at qemu:///system: libvirt's migration to {DEST} failed: operation failed: migration of disk "
        "vda failed: No space left on device; the domain still runs on the source"
    )
    assert phases(events)[-1] == ("migrate", "failed") and events[-1].message == err.value.message
    assert dom.calls[-1] == "isActive"


@needs_libvirt
@pytest.mark.parametrize("signal", [KeyboardInterrupt(), SignalledError("stopped by SIGTERM", "SIGTERM")])
def test_a_signal_during_the_migration_aborts_libvirts_job(signal: BaseException) -> None:
    dom = FakeDomain([], rounds=1000)

    def report(event: PhaseEvent) -> None:
        if event.state == "progress":
            raise signal

    with pytest.raises(type(signal)):
        run(dom, report=report)
    assert "abortJob" in dom.calls and dom.aborted
    last = [c for c in dom.calls if c != "jobStats"][-1]
    assert last == "abortJob"  # nothing after it: the worker ended with the aborted job


def test_phase_events_as_json_lines() -> None:
    assert PhaseEvent("migrate", "progress", bytes=10, total=20).json() == {
        "event": "progress",
        "phase": "migrate",
        "state": "progress",
        "bytes": 10,
        "total": 20,
    }
    assert PhaseEvent("annotate", "done", "ok").json() == {
        "event": "phase",
        "phase": "annotate",
        "state": "done",
        "message": "ok",
    }
    assert replace(PhaseEvent("preflight", "start"), result={"a": 1}).json()["result"] == {"a": 1}
