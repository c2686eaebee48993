"""`devmig schema NAME`: the JSON Schema of a format."""

from __future__ import annotations

import click

from devmig.model.schema import SCHEMAS, schema_text


@click.command(name="schema")
@click.argument("name", type=click.Choice(list(SCHEMAS)))
def command(name: str) -> int:
    """Print the JSON Schema (draft 2020-12) of the format NAME; the same files are in schemas/."""
    click.echo(schema_text(name), nl=False)
    return 0
