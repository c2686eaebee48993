"""iproute2's option loop for `vdpa`: getopt_long("Vjpsh", {Version, json, pretty, help}), with glibc's messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: the program name in glibc's messages (and devmig's own about --host)
PROG = "devmig vdpa"

#: short options and what they do; "s" is in iproute2's optstring but has no case, so it is "Unknown option."
SHORT = {"V": "version", "j": "json", "p": "pretty", "h": "help", "s": None}
LONG = {"Version": "V", "json": "j", "pretty": "p", "help": "h"}


@dataclass
class GetoptResult:
    json: bool = False
    pretty: bool = False
    #: "version" or "help" (stop there, exit 0), "error" (usage, exit 1), None: run the command
    stop: str | None = None
    errors: list[str] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)


def _long(opts: GetoptResult, arg: str) -> str | None:
    """One --option: what it does, or None after an error message (glibc's words)."""
    name, eq, _ = arg[2:].partition("=")
    exact = [n for n in LONG if n == name]
    found = exact or [n for n in LONG if n.startswith(name)]
    if len(found) != 1 or not name:
        opts.errors.append(f"{PROG}: unrecognized option '{arg}'")
        return None
    if eq:
        opts.errors.append(f"{PROG}: option '--{found[0]}' doesn't allow an argument")
        return None
    return SHORT[LONG[found[0]]]


def getopt(args: Sequence[str], *, permute: bool = True) -> GetoptResult:
    """iproute2's option loop: GNU getopt_long permutes (options may follow the object, `--` ends them) unless
    POSIXLY_CORRECT; -V and -h act at once, the first bad option prints "Unknown option." and the usage."""
    opts = GetoptResult()
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            opts.operands += rest
            break
        if not arg.startswith("-") or arg == "-":
            opts.operands.append(arg)
            if not permute:
                opts.operands += rest
                break
            continue
        actions = [_long(opts, arg)] if arg.startswith("--") else [SHORT.get(c, "?" + c) for c in arg[1:]]
        for action in actions:
            if action is not None and action.startswith("?"):
                opts.errors.append(f"{PROG}: invalid option -- '{action[1:]}'")
                action = None
            if action in ("version", "help"):
                opts.stop = action
                return opts
            if action is None:
                opts.errors.append("Unknown option.")
                opts.stop = "error"
                return opts
            setattr(opts, action, True)
    return opts


__all__ = ["LONG", "PROG", "SHORT", "GetoptResult", "getopt"]
