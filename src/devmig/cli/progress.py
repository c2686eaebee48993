"""Progress of a migration: a rich bar on a terminal for people, JSON lines for programs (`-j`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from devmig.cli.options import Options
from devmig.migrate.session import Event, Outcome

if TYPE_CHECKING:
    from devmig.libvirt.migration import PhaseEvent

#: seconds between two JSON progress lines of the same phase
JSON_INTERVAL = 0.25


class BarView:
    """A rich bar of bytes on standard error while a context runs, on a terminal and without -j; else nothing."""

    def __init__(self, opts: Options, what: str) -> None:
        self.opts, self.what = opts, what
        self._last = 0.0
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        console = Console(stderr=True)
        if not opts.json and console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
                console=console,
            )

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()


class ProgressView(BarView):
    """Called with each session Event; a context manager around the session."""

    def __init__(self, opts: Options, what: str) -> None:
        super().__init__(opts, what)
        self._phase = ""

    def __call__(self, event: Event) -> None:
        if self.opts.json:
            now = time.monotonic()
            if event.phase != self._phase or now - self._last >= JSON_INTERVAL:
                self._phase, self._last = event.phase, now
                click.echo(json.dumps(event.json(), separators=(",", ":")))
            return
        if self._bar is not None and self._task is not None:
            rounds = f" round {event.round}" if event.round else ""
            total = max(event.total, event.bytes) if event.total is not None else None
            self._bar.update(
                self._task, description=f"{self.what}: {event.phase}{rounds}", completed=event.bytes, total=total
            )


class PhaseView(BarView):
    """The phases of `devmig libvirt migrate`: a line for each phase that ends, a rich bar of the migration's data
    on a terminal for people; with -j a JSON line per phase and its progress. A context manager around the run."""

    def __init__(self, opts: Options, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(opts, what)
        self._clock = clock

    def echo(self, text: str) -> None:
        """Text for people on standard output (rich's live display keeps it above the bar while it runs)."""
        click.echo(text)

    def __call__(self, event: PhaseEvent) -> None:
        if self.opts.json:
            if event.state == "progress":  # every phase's line, its progress at most every JSON_INTERVAL
                now = self._clock()
                if now - self._last < JSON_INTERVAL:
                    return
                self._last = now
            click.echo(json.dumps(event.json(), separators=(",", ":")))
            return
        if self._bar is not None and self._task is not None:
            total = max(event.total, event.bytes or 0) if event.total is not None else None
            self._bar.update(
                self._task, description=f"{self.what}: {event.phase}", completed=event.bytes or 0, total=total
            )
        # preflight's report is printed whole; a failure's reason is the error devmig prints on standard error
        if event.phase != "preflight" and event.state in ("done", "failed"):
            self.echo(f"{event.phase}: {event.message if event.state == 'done' else 'failed'}")


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def summary(verb: str, outcome: Outcome, where: str) -> str:
    """One line for people: what moved, how, and the downtime."""
    rate = f", {size(outcome.bytes / outcome.seconds)}/s" if outcome.seconds > 0 else ""
    parts = [f"{verb} {outcome.device} {where}: {size(outcome.bytes)} in {outcome.records} records{rate}"]
    if outcome.rounds:
        rounds = "round" if outcome.rounds == 1 else "rounds"
        parts.append(f"{outcome.rounds} pre-copy {rounds} ({size(outcome.precopy_bytes)} while running)")
    if outcome.downtime is not None:
        parts.append(f"downtime {outcome.downtime * 1000:.1f} ms")
    parts.append(f"device now {outcome.state}")
    return "; ".join(parts)


def result_json(outcome: Outcome, **extra: Any) -> dict[str, Any]:
    return {"event": "result", **outcome.json(), **extra}
