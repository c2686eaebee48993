"""iproute2's reading of a `vdpa` command line once the options are out: the command tree walked word by word, then
the command's arguments as `vdpa_argv_parse` reads them (devmig.vdpa.iproute2.grammar holds the tables)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devmig.vdpa.iproute2.commands import Args
from devmig.vdpa.iproute2.grammar import KEYWORDS, POSITIONALS, REQUIRED, TOP, Command, Keyword, Level
from devmig.vdpa.iproute2.outcome import Refused, Say


@dataclass(frozen=True)
class Call:
    """A command to run against the family, with its arguments by keyword ("dev" and "mgmtdev" positionals too)."""

    command: Command
    args: Args = field(default_factory=dict)


def matches(word: str, keyword: str) -> bool:
    """iproute2's matches(): `word` is a non-empty prefix of `keyword`."""
    return bool(word) and keyword.startswith(word)


def _accepts(kw: Keyword, word: str) -> bool:
    return matches(word, kw.keyword) if kw.prefix else word == kw.keyword


def parse_arguments(command: Command, argv: Sequence[str]) -> Args:
    """vdpa_argv_parse: the positional, then keyword/value pairs while two arguments are left (a lone last
    argument is ignored, as iproute2 does), then the required ones. Raises Refused."""
    args: Args = {}
    rest = list(argv)
    if command.positional is not None and (rest or command.needs_positional):
        parse, missing = POSITIONALS[command.positional]
        if not rest:
            raise Refused(missing)
        args[command.positional] = parse(rest.pop(0))
    while len(rest) > 1:
        word = rest.pop(0)
        kw = next((kw for kw in KEYWORDS if kw.keyword in command.options and _accepts(kw, word)), None)
        if kw is None:
            raise Refused(f'Unknown option "{word}"')
        args[kw.keyword] = kw.parse(rest.pop(0))
    for name, message in REQUIRED.items():
        if name in command.required and name not in args:
            raise Refused(message)
    return args


def parse(operands: Sequence[str]) -> Say | Call:
    """The command tree walked word by word, then the command's arguments."""
    node: Level | Command | Say = TOP
    rest = list(operands)
    while isinstance(node, Level):
        if not rest:
            node = node.default
            break
        word = rest.pop(0)
        found = next((t for kw, prefix, t in node.entries if (matches(word, kw) if prefix else word == kw)), None)
        if found is None:
            return Say((node.not_found.format(word),))
        node = found
    if isinstance(node, Say):
        return node
    if node.argc is not None and len(rest) not in node.argc:
        return Say(node.usage)
    try:
        return Call(node, parse_arguments(node, rest))
    except Refused as refused:
        return refused.say()


__all__ = ["Call", "matches", "parse", "parse_arguments"]
