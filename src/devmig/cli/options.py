"""Output options shared by every command: -j/--json and -p/--pretty, before or after the command name."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Options:
    json: bool = False
    pretty: bool = False
    debug: bool = False


def output_options(func: F) -> F:
    """Accept -j/-p after the command name too (iproute2 takes them before: both work)."""
    func = click.option("-p", "--pretty", "pretty", is_flag=True, help="Indent JSON output.")(func)
    func = click.option("-j", "--json", "json_output", is_flag=True, help="Output JSON for programs.")(func)
    return func


def resolve(json_output: bool, pretty: bool) -> Options:
    ctx = click.get_current_context()
    base = ctx.find_object(Options) or Options()
    pretty = pretty or base.pretty
    return Options(json=json_output or pretty or base.json, pretty=pretty, debug=base.debug)


def emit_json(data: Any, opts: Options) -> None:
    if opts.pretty:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(json.dumps(data, separators=(",", ":")))
