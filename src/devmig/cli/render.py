"""Text for people: how values, findings and parameter sets are shown."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from devmig.cli.echo import echo

if TYPE_CHECKING:
    from devmig.host.devices import ScanWarning


def value_text(value: object) -> str:
    """Values as the sysfs attribute files hold them: true/false, numbers, bare strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value_text(v) for v in value)
    return str(value)


def json_text(data: object, pretty: bool) -> str:
    """JSON for programs: compact, or indented with -p (every command, on both the click and the quick path)."""
    return json.dumps(data, indent=2) if pretty else json.dumps(data, separators=(",", ":"))


def assignments(values: Mapping[str, object]) -> str:
    return " ".join(f"{name}={value_text(v)}" for name, v in values.items()) or "(none)"


def table(rows: Iterable[tuple[str, ...]], indent: str = "  ") -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (indent + "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]).rstrip()
        for row in rows
    ]


def print_warnings(warnings: Iterable[ScanWarning]) -> None:
    for warning in warnings:
        echo(f"devmig: warning: {warning}", err=True)


def warnings_json(warnings: Iterable[ScanWarning]) -> list[dict[str, str]]:
    return [{"object": w.object, "path": w.path, "message": w.message} for w in warnings]
