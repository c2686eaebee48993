"""The agent: one host's inventory kept in the fleet store as the kernel changes it.

Three threads, one owner of the state:

- the main loop (`Agent.run`) owns everything: it gathers events into bursts, reads the inventory parts a burst
  changed, decides what the store gets next (a publish, a heartbeat, a retry), and handles signals;
- the event pump receives device events from the source and hands them over;
- the store worker makes one store call at a time (FleetStore.open, publish, heartbeat), so the main loop keeps
  taking events while the store is slow, and SIGTERM can abandon a call that waits on it (the call is one
  transaction: the store rolls it back when the process goes).

What the store gets: the newest inventory read, once (a newer one replaces a publish still waiting; an inventory
equal to the last one published or sent is not sent again, except by the periodic re-read, which the store answers
with its cheap path); a heartbeat when nothing was sent for `heartbeat-interval`; after a failure, the same again
after an exponential backoff with jitter, capped at `retry-max`, for as long as the agent runs.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from devmig.agent import config as config_module
from devmig.agent.backoff import Backoff
from devmig.agent.coalesce import Coalescer
from devmig.agent.config import AgentConfig
from devmig.agent.events import ALL_PARTS, EventSource, NoEvents, Uevent
from devmig.agent.hooks import Hook, published_hooks
from devmig.agent.metrics import AgentMetrics
from devmig.agent.notify import Notifier, watchdog_interval
from devmig.errors import DevmigError, InputError
from devmig.fleet.collect import PARTS, Part, assemble, kernel_release
from devmig.fleet.records import HostRecord
from devmig.fleet.store import FleetStore, StoreError
from devmig.host.access import Host
from devmig.host.profile import Profile, load_profiles
from devmig.machine import AnyHost, LabHost, open_host

log = logging.getLogger("devmig.agent")

#: the longest the main loop waits before looking at its flags again (SIGTERM, SIGHUP)
TICK = 0.1


@dataclass(frozen=True)
class Job:
    kind: Literal["publish", "heartbeat"]
    record: HostRecord | None = None


@dataclass(frozen=True)
class Outcome:
    job: Job
    stored: HostRecord | None = None
    seconds: float = 0.0
    #: the failure's message and reason (a devmig_agent_publish_failures_total label); None when it succeeded
    error: str | None = None
    reason: str | None = None
    #: a heartbeat for a host the store does not hold (removed meanwhile): publish instead
    unknown_host: bool = False


class StoreWorker:
    """The store's calls, one at a time, in a thread of its own. Results go to `inbox` as ("done", Outcome)."""

    def __init__(self, url: str | None, name: str, inbox: queue.Queue[tuple[str, Any]]) -> None:
        self.url, self.name, self._inbox = url, name, inbox
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._store: FleetStore | None = None
        self.thread = threading.Thread(target=self._run, name=f"devmig-agent-store-{name}", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Ask the thread to end after the call under way (which is not waited for)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            self._inbox.put(("done", self._do(job)))
        if self._store is not None:
            self._store.close()

    def _do(self, job: Job) -> Outcome:
        started = time.perf_counter()
        try:
            if self._store is None:
                self._store = FleetStore.open(self.url)
            if job.kind == "publish":
                assert job.record is not None
                stored = self._store.publish(job.record)
                return Outcome(job, stored, time.perf_counter() - started)
            self._store.heartbeat(self.name)
            return Outcome(job, seconds=time.perf_counter() - started)
        except StoreError as exc:
            return Outcome(job, error=exc.message, reason=exc.reason)
        except InputError as exc:
            return Outcome(job, error=exc.message, reason="input", unknown_host=job.kind == "heartbeat")
        except DevmigError as exc:
            return Outcome(job, error=exc.message, reason="input")
        except Exception as exc:  # a bug must not end the agent: it is logged, counted and retried like the rest
            log.exception("store call failed")
            return Outcome(job, error=f"{type(exc).__name__}: {exc}", reason="internal")


def event_source(config: AgentConfig, host: AnyHost) -> EventSource:
    """The events a host announces: a lab host's simulated kernel; this machine's kernel, from udevd or its own
    uevents; none for a sysfs tree that is not this machine's (the periodic re-read alone then)."""
    if config.events == "none":
        return NoEvents()
    if isinstance(host, LabHost):
        from devmig.agent.simevents import SimSource

        return SimSource(host)
    if Path(config.sysfs_root).resolve() != Path("/"):
        log.warning(
            "sysfs root %s is not this machine's: its kernel's events do not concern it, so only the periodic "
            "re-read (every %g s) sees changes",
            config.sysfs_root,
            config.resync_interval,
        )
        return NoEvents()
    from devmig.agent.udev import real_source

    return real_source(config.events)


@dataclass
class _State:
    """What the main loop knows of the store."""

    last_published: HostRecord | None = None
    #: the newest inventory not yet sent (or sent and failed): the next publish
    pending: HostRecord | None = None
    in_flight: Job | None = None
    failures: int = 0
    retry_at: float = 0.0
    heartbeat_failures: int = 0
    next_heartbeat: float = 0.0
    next_resync: float = 0.0
    next_watchdog: float = 0.0
    parts: dict[str, Part] = field(default_factory=dict)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        options: dict[str, Any] | None = None,
        config_path: str | Path | None = None,
        metrics: AgentMetrics | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        #: the command line's options and the config file's path, read again on SIGHUP
        self.options = dict(options or {})
        self.config_path = config_path
        self.metrics = metrics if metrics is not None else AgentMetrics()
        self.notifier = notifier if notifier is not None else Notifier.from_environ()
        self.clock, self.wall, self.draw = clock, wall, draw
        #: called with the record as stored after each successful publish (a failing hook is logged, not fatal)
        self.on_published: list[Hook] = published_hooks(config)
        #: the record the store holds for this host, as last published (None before the first publish)
        self._stored: HostRecord | None = None
        self.state = _State()
        self.host: AnyHost | None = None
        self.name = ""
        self.publishes = 0
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._coalescer = Coalescer(config.debounce, config.max_delay)
        self._profiles: list[Profile] = []
        self._kernel: str | None = None
        self._source: EventSource | None = None
        self._pump_stop = threading.Event()
        self._pump: threading.Thread | None = None
        self._worker: StoreWorker | None = None
        self._server: Any = None
        self._watchdog = watchdog_interval()
        self.ready = threading.Event()

    # -- control (any thread, or a signal handler) -------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        self._reload.set()

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.config.retry_initial, self.config.retry_max)

    # -- the main loop ---------------------------------------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> int:
        """Run until stop() (or SIGTERM, SIGINT); 0 then. Bad settings raise InputError before anything starts."""
        with self._signals(install_signals):
            self._start()
            try:
                while not self._stop.is_set():
                    if self._reload.is_set():
                        self._reload.clear()
                        self._do_reload()
                    now = self.clock()
                    wait = min(TICK, max(0.0, self._next_deadline() - now))
                    try:
                        kind, payload = self._inbox.get(timeout=wait)
                    except queue.Empty:
                        pass
                    else:
                        self._handle(kind, payload)
                    self._tick(self.clock())
            finally:
                self._shutdown()
        return 0

    @contextlib.contextmanager
    def _signals(self, install: bool) -> Iterator[None]:
        if not install or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            self.stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.reload()

        old = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, stop),
            signal.SIGINT: signal.signal(signal.SIGINT, stop),
            signal.SIGHUP: signal.signal(signal.SIGHUP, reload),
        }
        try:
            yield
        finally:
            for sig, previous in old.items():
                if previous is not None:
                    signal.signal(sig, previous)

    def _start(self) -> None:
        config = self.config
        self._open_host()
        self._worker = StoreWorker(config.store, self.name, self._inbox)
        if config.metrics_address:
            self._serve_metrics()
        now = self.clock()
        self.state.next_resync = now + config.resync_interval if config.resync_interval else float("inf")
        self.state.next_heartbeat = now + config.heartbeat_interval
        self._offer(self._read(ALL_PARTS), force=True)
        source = self._source.name if self._source else "none"
        log.info("%s: watching %s events, publishing to %s", self.name, source, config.store or "the default store")
        self.notifier.ready(f"watching {source} events; first publish under way")
        self.ready.set()

    def _open_host(self) -> None:
        config = self.config
        self.host = open_host(config.host, config.sysfs_root, config.state_dir)
        self.name = config.name or self.host.hostname
        self._profiles = load_profiles(config.profiles_dir)
        self.state.parts = {}
        self._kernel = kernel_release(self.host)
        self._source = event_source(config, self.host)
        self._pump_stop = threading.Event()
        self._pump = threading.Thread(
            target=self._run_pump, args=(self._source, self._pump_stop), name=f"devmig-agent-events-{self.name}"
        )
        self._pump.daemon = True
        self._pump.start()

    def _close_host(self) -> None:
        self._pump_stop.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self._source is not None:
            self._source.close()

    def _run_pump(self, source: EventSource, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                events = source.receive(0.2)
                failures = 0
            except DevmigError as exc:
                # the periodic re-read still runs; the source is asked again after a backoff
                failures += 1
                delay = self.backoff.delay(failures, self.draw)
                log.error("%s; trying again in %.1f s", exc, delay)
                stop.wait(delay)
                continue
            if events:
                self._inbox.put(("events", events))

    def _serve_metrics(self) -> None:
        from devmig.fleet.metrics import serve

        assert self.config.metrics_address is not None
        self._server = serve(self.metrics.registry, self.config.metrics_address)
        host, port = self._server.address
        log.info("metrics on http://%s:%d/metrics", host, port)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self._close_host()
        in_flight = self.state.in_flight
        if in_flight is not None:
            deadline = self.clock() + self.config.stop_timeout
            while self.state.in_flight is not None and self.clock() < deadline:
                try:
                    kind, payload = self._inbox.get(timeout=min(TICK, max(0.0, deadline - self.clock())))
                except queue.Empty:
                    continue
                if kind == "done":
                    self._handle(kind, payload)
            if self.state.in_flight is not None:
                log.warning(
                    "stopping: the %s under way was abandoned after %g s (one transaction: the store rolls it back)",
                    in_flight.kind,
                    self.config.stop_timeout,
                )
        if self._worker is not None:
            self._worker.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        log.info("%s: stopped", self.name)

    def _next_deadline(self) -> float:
        s = self.state
        deadlines = [s.next_resync]
        due = self._coalescer.due()
        if due is not None:
            deadlines.append(due)
        if s.in_flight is None:
            deadlines.append(s.retry_at if s.pending is not None else s.next_heartbeat)
        if self._watchdog is not None:
            deadlines.append(s.next_watchdog)
        return min(deadlines)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "events":
            now = self.clock()
            for event in payload:
                assert isinstance(event, Uevent)
                parts = event.parts()
                if not parts:
                    continue
                log.debug("event: %s", event)
                self.metrics.events.labels(event.subsystem).inc()
                self._coalescer.add(now, parts)
        elif kind == "done":
            self._done(payload)

    def _tick(self, now: float) -> None:
        s, config = self.state, self.config
        burst = self._coalescer.take(now)
        if burst is not None:
            self.metrics.coalesced.inc(burst.events - 1)
            self._offer(self._read(burst.parts))
        if now >= s.next_resync:
            s.next_resync = now + config.resync_interval if config.resync_interval else float("inf")
            self._kernel = kernel_release(self.host) if self.host is not None else None
            self._offer(self._read(ALL_PARTS), force=True)
        if self._watchdog is not None and now >= s.next_watchdog:
            self.notifier.watchdog()
            s.next_watchdog = now + self._watchdog / 2
        if s.in_flight is None and self._worker is not None:
            if s.pending is not None:
                if now >= s.retry_at:
                    s.in_flight, s.pending = Job("publish", s.pending), None
                    self._worker.submit(s.in_flight)
            elif now >= s.next_heartbeat:
                s.in_flight = Job("heartbeat")
                self._worker.submit(s.in_flight)

    def _read(self, parts: frozenset[str]) -> HostRecord:
        """The inventory with `parts` read again and the others as last read."""
        assert self.host is not None
        host: Host = self.host
        for key in sorted(parts | (set(PARTS) - set(self.state.parts))):
            try:
                self.state.parts[key] = PARTS[key](host, self._profiles)
            except (DevmigError, OSError) as exc:
                # the part as last read stands (nothing, the first time): a failed read must not empty the store
                log.warning("%s: reading its %s inventory failed: %s", self.name, key, exc)
                self.state.parts.setdefault(key, Part())
        record = assemble(self.name, self._kernel, self.state.parts)
        self.metrics.read(record)
        return record

    def _offer(self, record: HostRecord, *, force: bool = False) -> None:
        """Make `record` the next publish (replacing one that waits), unless it is what the store has or will
        have; `force` sends it anyway (the periodic re-read: the store answers an identical one cheaply)."""
        s = self.state
        latest = s.pending or (s.in_flight.record if s.in_flight is not None else None) or s.last_published
        if not force and record == latest:
            log.debug("%s: the inventory read is the one published: nothing to send", self.name)
            return
        s.pending = record

    def _done(self, outcome: Outcome) -> None:
        s, now = self.state, self.clock()
        s.in_flight = None
        job = outcome.job
        if outcome.error is None:
            s.next_heartbeat = now + self.config.heartbeat_interval
            if job.kind == "publish":
                assert outcome.stored is not None
                s.failures, s.retry_at = 0, 0.0
                s.last_published = job.record
                self._published(outcome.stored, outcome.seconds)
            else:
                s.heartbeat_failures = 0
                log.debug("%s: heartbeat", self.name)
                if self._stored is not None:
                    self._run_hooks(self._stored)  # still current: renew what expires (the NFD file)
            return
        self.metrics.failures.labels(outcome.reason or "internal").inc()
        if job.kind == "heartbeat":
            if outcome.unknown_host:
                log.warning("%s: %s; publishing the inventory again", self.name, outcome.error)
                s.last_published = None
                self._offer(self._read(ALL_PARTS), force=True)
                return
            s.heartbeat_failures += 1
            delay = self.backoff.delay(s.heartbeat_failures, self.draw)
            s.next_heartbeat = now + delay
            log.warning("%s: heartbeat failed: %s; trying again in %.1f s", self.name, outcome.error, delay)
            self.notifier.status(f"store unreachable: {outcome.error}")
            return
        s.failures += 1
        delay = self.backoff.delay(s.failures, self.draw)
        s.retry_at = now + delay
        if s.pending is None:  # a newer inventory read meanwhile replaces this one
            s.pending = job.record
        log.warning("%s: publish failed: %s; trying again in %.1f s", self.name, outcome.error, delay)
        self.notifier.status(f"publish failed ({s.failures} in a row), next try in {delay:.0f} s: {outcome.error}")

    def _published(self, stored: HostRecord, seconds: float) -> None:
        self.publishes += 1
        self.metrics.publish_seconds.observe(seconds)
        self.metrics.last_publish.set(self.wall())
        log.info(
            "%s: published %d types, %d devices (generation %s) in %.1f ms",
            stored.name,
            len(stored.types),
            len(stored.devices),
            stored.generation,
            seconds * 1000,
        )
        for warning in stored.warnings:
            log.warning("%s: %s", stored.name, warning)
        self.notifier.status(f"published generation {stored.generation}: {len(stored.types)} types")
        self._stored = stored
        self._run_hooks(stored)

    def _run_hooks(self, stored: HostRecord) -> None:
        for hook in self.on_published:
            try:
                hook(stored)
            except DevmigError as exc:  # a hook's failure is its own: the publish stands
                log.error("%s: after the publish: %s", stored.name, exc)
            except Exception:
                log.exception("%s: a hook after the publish failed", stored.name)

    def _do_reload(self) -> None:
        self.notifier.reloading()
        old = self.config
        try:
            new = config_module.load(self.options, self.config_path)
            hooks = published_hooks(new)
        except InputError as exc:
            log.error("reload: %s; the settings in use are kept", exc.message)
            self.notifier.ready("reload failed: settings kept")
            return
        self.config = new
        self.on_published = hooks
        self._coalescer.window, self._coalescer.max_delay = new.debounce, new.max_delay
        reopen = (old.host, old.sysfs_root, old.state_dir, old.events, old.name) != (
            new.host,
            new.sysfs_root,
            new.state_dir,
            new.events,
            new.name,
        )
        if reopen:
            self._close_host()
            try:
                self._open_host()
            except DevmigError as exc:
                log.error("reload: %s; the settings in use are kept", exc.message)
                self.config = old
                self._open_host()
        else:
            self._profiles = load_profiles(new.profiles_dir)
            self.state.parts = {}
        if reopen or new.store != old.store:
            if self._worker is not None:
                self._worker.close()  # a call under way ends on its own; its result is still taken
            self._worker = StoreWorker(self.config.store, self.name, self._inbox)
            self.state.last_published = None
        if new.metrics_address != old.metrics_address:
            if self._server is not None:
                self._server.close()
                self._server = None
            if new.metrics_address:
                try:
                    self._serve_metrics()
                except InputError as exc:
                    log.error("reload: %s", exc.message)
        now = self.clock()
        self.state.next_resync = now + new.resync_interval if new.resync_interval else float("inf")
        self.state.next_heartbeat = min(self.state.next_heartbeat, now + new.heartbeat_interval)
        self._kernel = kernel_release(self.host) if self.host is not None else None
        self._offer(self._read(ALL_PARTS), force=True)
        log.info("%s: settings read again from %s", self.name, new.origin)
        self.notifier.ready("settings read again; publishing")
