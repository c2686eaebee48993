"""The click group behind `devmig`: global options, and each command imported from its module only when run."""

from __future__ import annotations

import importlib

import click

from devmig import __version__
from devmig.cli import ABOUT, COMMANDS
from devmig.cli.options import Options


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attribute = entry[0].partition(":")
        command = getattr(importlib.import_module(module), attribute or "command")
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, helptext) for name, (_, helptext) in COMMANDS.items()])


@click.group(cls=LazyGroup, help=ABOUT, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-j", "--json", "json_output", is_flag=True, help="Output JSON for programs.")
@click.option("-p", "--pretty", is_flag=True, help="Indent JSON output.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(__version__, "-V", "--version", prog_name="devmig")
@click.pass_context
def cli(ctx: click.Context, json_output: bool, pretty: bool, debug: bool) -> None:
    ctx.obj = Options(json=json_output or pretty, pretty=pretty, debug=debug)
