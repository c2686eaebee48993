"""`devmig vdpa`: a drop-in for iproute2's `vdpa`, over devmig's vdpa backend (the netlink client on this machine,
the simulated family on a lab host with `--host sim:LAB/HOST`).

It takes iproute2's command line exactly and answers as iproute2 does: the same texts on the same streams, the same
exit codes (1 for every failure), text and JSON byte for byte (devmig.vdpa.render). What iproute2 does is described
as data here: its options (GNU getopt_long, which permutes, so `vdpa dev show -j` is `vdpa -j dev show`), its
command tree (which keywords it accepts as prefixes, which it needs exactly) and the keyword arguments of
`vdpa_argv_parse`, with the value parsers of iproute2's utils (strtoul's leniency, ll_addr_a2n's MAC addresses).

Where devmig does better, it adds and never changes: `--help`, `help` and every parse error work without a kernel
(iproute2 opens its netlink socket first); a missing family is diagnosed (the modules or kernel options needed)
instead of "Failed to connect to vdpa Netlink"; a kernel error's hint (e.g. what a missing CAP_NET_ADMIN means)
follows iproute2's two lines as "devmig: hint: ..."; a number iproute2 refuses silently gets one "devmig: " line.
The facts: the project's reference notes on iproute2's vdpa (shared/reference/vdpa-netlink.md §3) and the kernel
tier's comparison with /usr/sbin/vdpa.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from devmig import __version__
from devmig.errors import DevmigError, InputError
from devmig.vdpa import render
from devmig.vdpa.backend import (
    U16_MAX,
    U32_MAX,
    U64_MAX,
    VdpaBackend,
    VdpaError,
    VdpaUnavailableError,
    format_mac,
    render_extack,
)

PROG = "devmig vdpa"

# --- what iproute2 prints for help ------------------------------------------------------------------------------

MAIN_USAGE = (
    "Usage: vdpa [ OPTIONS ] OBJECT { COMMAND | help }",
    "where  OBJECT := { mgmtdev | dev }",
    "       OPTIONS := { -V[ersion] | -n[o-nice-names] | -j[son] | -p[retty] }",
)
#: devmig's additions, after iproute2's lines (so a reader of the first lines sees iproute2's usage)
DEVMIG_USAGE = (
    "devmig: also --host HOST anywhere (sim:LAB/HOST or sim:HOST: a simulated host; $DEVMIG_HOST); "
    "`devmig vdpa OBJECT help` lists an object's commands",
)
MGMTDEV_USAGE = ("Usage: vdpa mgmtdev show [ DEV ]",)
DEV_USAGE = (
    "Usage: vdpa dev show [ DEV ]",
    "       vdpa dev add name NAME mgmtdev MANAGEMENTDEV [ device_features DEVICE_FEATURES]",
    "                                                    [ mac MACADDR ] [ mtu MTU ]",
    "                                                    [ max_vqp MAX_VQ_PAIRS ]",
    "       vdpa dev del DEV",
    "Usage: vdpa dev config COMMAND [ OPTIONS ]",
    "Usage: vdpa dev vstats COMMAND",
    # iproute2 (6.13+) has `dev set` but its help does not say so
    "Usage: vdpa dev set name NAME mac MACADDR",
)
CONFIG_USAGE = ("Usage: vdpa dev config show [ DEV ]",)
VSTATS_USAGE = ("Usage: vdpa dev vstats show DEV [qidx QUEUE_INDEX]",)


# --- what a parse comes to --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Lines for stderr and the exit code: a help text (0) or an error iproute2 finds itself (1)."""

    lines: tuple[str, ...]
    code: int = 1


class Refused(Exception):  # noqa: N818 - a parse outcome, not a failure of devmig
    """An argument iproute2 refuses before asking the kernel: what it prints (maybe nothing), and devmig's line."""

    def __init__(self, *lines: str, note: str | None = None) -> None:
        super().__init__(*lines)
        self.lines = lines
        self.note = note

    def say(self) -> Say:
        return Say((*self.lines, *([f"devmig: {self.note}"] if self.note else [])))


Args = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """A command to run against the family, with its arguments by keyword ("dev" and "mgmtdev" positionals too)."""

    command: Command
    args: Args = field(default_factory=dict)


# --- getopt_long("Vjpsh", {Version, json, pretty, help}) ---------------------------------------------------------

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


# --- iproute2's value parsers (lib/utils.c) ---------------------------------------------------------------------

_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def strtoul(text: str, base: int) -> tuple[int | None, str]:
    """C's strtoul(3) on a 64-bit host: (value, the unparsed rest); value None when no digit was read (the rest is
    then all of `text`), U64_MAX + 1 for an overflow (ERANGE). Leading white space and a sign are accepted (a
    negative number wraps around, as in C); base 16 takes a 0x prefix, base 0 means 0x hex, 0 octal or decimal."""
    i = len(text) - len(text.lstrip(_SPACE))
    negative = text[i : i + 1] == "-"
    i += text[i : i + 1] in ("-", "+")
    after_prefix = text[i + 2 : i + 3].lower()
    hex_prefix = text[i : i + 2].lower() == "0x" and after_prefix != "" and after_prefix in _DIGITS[:16]
    if base == 0:
        base = 16 if hex_prefix else 8 if text[i : i + 1] == "0" else 10
    if base == 16 and hex_prefix:
        i += 2
    start = i
    while i < len(text) and text[i].lower() in _DIGITS[:base]:
        i += 1
    if i == start:
        return None, text
    value = int(text[start:i], base)
    if value > U64_MAX:
        return U64_MAX + 1, text[i:]
    return (-value) % (U64_MAX + 1) if negative else value, text[i:]


def get_unsigned(text: str, base: int, limit: int) -> int | None:
    """get_u16/get_u32/get_u64: the whole text must be a number no larger than `limit`; None otherwise (iproute2
    then fails without a word)."""
    value, rest = strtoul(text, base)
    if not text or value is None or rest or value > limit:
        return None
    return value


def _scan_hex(text: str) -> int | None:
    """sscanf(text, "%x", &int): leading space, a sign, 0x, hex digits; trailing characters are ignored."""
    value, _ = strtoul(text, 16)
    if value is None:
        return None
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def _ipv4(text: str) -> bytes | None:
    """get_addr_1(AF_INET): one to four dotted numbers (C literals, each at most 255); a ':' means IPv6 (refused)."""
    if ":" in text:
        return None
    out = bytearray(4)
    rest = text
    for i in range(4):
        value, after = strtoul(rest, 0)
        if value is None or value > 255:
            return None
        out[i] = value
        if not after:
            return bytes(out)
        if i == 3 or after[0] != ".":
            return None
        rest = after[1:]
    return None  # not reached: the loop returns


def ll_addr(text: str, size: int = 6) -> bytes:
    """ll_addr_a2n into iproute2's zeroed 6-byte buffer: colon-separated hex bytes (fewer than six leave zeros,
    more are ignored) or, with a dot, an IPv4 address in the first four bytes; else `"X" is invalid lladdr.` naming
    the part that failed."""
    mac = bytearray(size)
    if "." in text:
        addr = _ipv4(text)
        if addr is None:
            raise Refused(f'"{text}" is invalid lladdr.')
        mac[:4] = addr
        return bytes(mac)
    parts = text.split(":")
    for i, part in enumerate(parts[:size]):
        value = _scan_hex(part)
        if value is None or not 0 <= value <= 255:
            raise Refused(f'"{part}" is invalid lladdr.')
        mac[i] = value
    return bytes(mac)


def _number(what: str, base: int, limit: int) -> Callable[[str], int]:
    kind = "a hexadecimal" if base == 16 else "a decimal"

    def parse(text: str) -> int:
        value = get_unsigned(text, base, limit)
        if value is None:
            raise Refused(note=f'{what} "{text}": not {kind} number from 0 to {limit}')
        return value

    return parse


def _string(text: str) -> str:
    return text


def _handle(text: str) -> str:
    """vdpa_argv_handle: "[bus/]name", at most one slash (empty parts go to the kernel, which finds nothing)."""
    if text.count("/") > 1:
        raise Refused(
            "Wrong vdpa mgmtdev identification string format",
            'Expected "mgmtdev_bus_name/mgmtdev_name"',
            'Expected "mgmtdev_name"',
        )
    return text


def _mac(text: str) -> str:
    return format_mac(ll_addr(text))


# --- vdpa_argv_parse ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """A keyword argument: a prefix of it is enough when `prefix`, else it must be exact."""

    keyword: str
    prefix: bool
    parse: Callable[[str], Any]


#: the keyword arguments in the order vdpa_argv_parse tries them: the first one accepted wins ("ma" is max_vqp
#: because mac must be exact; "m" is mgmtdev where mgmtdev is accepted)
KEYWORDS: tuple[Keyword, ...] = (
    Keyword("name", True, _string),
    Keyword("mgmtdev", True, _handle),
    Keyword("mac", False, _mac),
    Keyword("mtu", False, _number("mtu", 10, U16_MAX)),
    Keyword("max_vqp", True, _number("max_vqp", 10, U16_MAX)),
    Keyword("qidx", False, _number("qidx", 10, U32_MAX)),
    Keyword("device_features", False, _number("device_features", 16, U64_MAX)),
)
#: the positional first arguments: how each is parsed and what iproute2 says when it is missing
POSITIONALS: dict[str, tuple[Callable[[str], str], str]] = {
    "mgmtdev": (_handle, 'vdpa identification ("mgmtdev_bus_name/mgmtdev_name") expected'),
    "dev": (_string, "String parameter expected"),
}
#: what iproute2 says for a missing required argument, in the order it checks them
REQUIRED: dict[str, str] = {
    "mgmtdev": "management device handle not set.",
    "name": "device name is not set.",
    "qidx": "queue index is not set.",
}


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


# --- the commands ---------------------------------------------------------------------------------------------

#: one command's work: ask the backend, print the answer; a warning the kernel sent with its ack, or None
Run = Callable[[VdpaBackend, Args, render.Output], str | None]


@dataclass(frozen=True)
class Command:
    run: Run
    #: the JSON section its answer is printed in (printed even when the kernel refuses: `{"dev":{}}`)
    section: str | None = None
    #: the first argument: "mgmtdev" ([bus/]name) or "dev" (a device name); read when there are arguments
    positional: str | None = None
    #: the positional must be there (dev del), rather than its absence meaning "all" (show: a dump)
    needs_positional: bool = False
    options: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    #: the argument counts it takes (vstats show: DEV, or DEV qidx N), else its usage and exit 1
    argc: tuple[int, ...] | None = None
    usage: tuple[str, ...] = ()


def _mgmtdev_show(backend: VdpaBackend, args: Args, out: render.Output) -> None:
    found = [backend.mgmtdev(args["mgmtdev"])] if "mgmtdev" in args else backend.mgmtdevs()
    for dev in found:
        render.mgmtdev(out, dev)


def _dev_show(backend: VdpaBackend, args: Args, out: render.Output) -> None:
    found = [backend.device(args["dev"])] if "dev" in args else backend.devices()
    for dev in found:
        render.dev(out, dev)


def _dev_add(backend: VdpaBackend, args: Args, out: render.Output) -> None:
    backend.add(
        args["name"],
        args["mgmtdev"],
        device_features=args.get("device_features"),
        mac=args.get("mac"),
        mtu=args.get("mtu"),
        max_vqp=args.get("max_vqp"),
    )


def _dev_del(backend: VdpaBackend, args: Args, out: render.Output) -> None:
    backend.delete(args["dev"])


def _dev_set(backend: VdpaBackend, args: Args, out: render.Output) -> str | None:
    return backend.set(args["name"], mac=args.get("mac"))


def _config_show(backend: VdpaBackend, args: Args, out: render.Output) -> None:
    # The seam has no config dump: the kernel's walks the devices, so does this.
    names = [args["dev"]] if "dev" in args else [dev.name for dev in backend.devices()]
    for cfg in [backend.config(name) for name in names]:
        render.config(out, cfg)


def _vstats_show(backend: VdpaBackend, args: Args, out: render.Output) -> None:
    if "qidx" not in args:
        # iproute2 sends the request without a queue index; the kernel answers EINVAL without a message
        raise VdpaError(errno.EINVAL, request=f"dev vstats show {args['dev']}")
    render.vstats(out, backend.vstats(args["dev"], args["qidx"]))


MGMTDEV_SHOW = Command(_mgmtdev_show, section="mgmtdev", positional="mgmtdev")
DEV_SHOW = Command(_dev_show, section="dev", positional="dev")
DEV_ADD = Command(
    _dev_add,
    options=frozenset({"name", "mgmtdev", "mac", "mtu", "max_vqp", "device_features"}),
    required=frozenset({"mgmtdev", "name"}),
)
DEV_DEL = Command(_dev_del, positional="dev", needs_positional=True)
DEV_SET = Command(_dev_set, options=frozenset({"name", "mac"}), required=frozenset({"name"}))
CONFIG_SHOW = Command(_config_show, section="config", positional="dev")
VSTATS_SHOW = Command(
    _vstats_show,
    section="vstats",
    positional="dev",
    needs_positional=True,
    options=frozenset({"qidx"}),
    argc=(1, 3),
    usage=VSTATS_USAGE,
)


@dataclass(frozen=True)
class Level:
    """One word of the command tree: what each keyword leads to (tried in order; `prefix`: iproute2's matches(),
    else strcmp), what no word at all means, and the message for a word it does not know."""

    entries: tuple[tuple[str, bool, Level | Command | Say], ...]
    default: Command | Say
    not_found: str = 'Command "{}" not found'


CONFIG = Level(
    (("help", True, Say(CONFIG_USAGE, 0)), ("show", True, CONFIG_SHOW)),
    default=CONFIG_SHOW,
)
VSTATS = Level(
    (("help", False, Say(VSTATS_USAGE, 0)), ("show", False, VSTATS_SHOW)),
    default=Say(VSTATS_USAGE, 1),
)
DEV = Level(
    (
        ("help", True, Say(DEV_USAGE, 0)),
        ("show", True, DEV_SHOW),
        ("list", True, DEV_SHOW),
        ("add", True, DEV_ADD),
        ("del", True, DEV_DEL),
        ("config", True, CONFIG),
        ("vstats", False, VSTATS),
        ("set", False, DEV_SET),
    ),
    default=DEV_SHOW,
)
MGMTDEV = Level(
    (("help", True, Say(MGMTDEV_USAGE, 0)), ("show", True, MGMTDEV_SHOW), ("list", True, MGMTDEV_SHOW)),
    default=Say(MGMTDEV_USAGE, 0),
)
MAIN_HELP = Say((*MAIN_USAGE, *DEVMIG_USAGE), 0)
TOP = Level(
    (("help", True, MAIN_HELP), ("mgmtdev", True, MGMTDEV), ("dev", True, DEV)),
    default=MAIN_HELP,
    not_found='Object "{}" not found',
)


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


# --- running it -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    out: str
    err: str
    code: int


def _lines(lines: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def execute(call: Call, backend: Callable[[], VdpaBackend], out: render.Output) -> Result:
    """Run one command: the backend is opened only now. A kernel error prints as iproute2 prints it (and still the
    JSON section, empty); a missing family prints devmig's diagnosis and nothing on stdout (iproute2 stops before
    its JSON writer exists)."""
    command = call.command
    family: VdpaBackend | None = None
    err: list[str] = []
    code = 0
    try:
        family = backend()
        if command.section is not None:
            out.section_start(command.section)
        try:
            warning = command.run(family, call.args, out)
            if warning:
                err.append(render_extack(warning, error=False))
        finally:
            if command.section is not None:
                out.section_end()
    except VdpaUnavailableError as exc:
        return Result("", _lines([f"devmig: error: {exc.message}"]), 1)
    except VdpaError as exc:
        # the netlink client's hint (e.g. a missing CAP_NET_ADMIN) may already say "hint: "
        hint = str(getattr(exc, "hint", None) or "").removeprefix("hint: ")
        err += [*exc.iproute2_lines(), *([f"devmig: hint: {hint}"] if hint else [])]
        code = 1
    except InputError as exc:
        # the backend refused an argument iproute2 would have sent as it is (e.g. an empty name)
        err.append(f"devmig: error: {exc.message}")
        code = 1
    finally:
        close = getattr(family, "close", None)
        if callable(close):
            close()
    return Result(out.finish(), _lines(err), code)


def vdpa_main(
    argv: Sequence[str],
    backend: Callable[[], VdpaBackend],
    *,
    json: bool = False,
    pretty: bool = False,
    permute: bool = True,
) -> Result:
    """The whole command, as stdout, stderr and exit code; `json`/`pretty` come from devmig's own -j/-p."""
    opts = getopt(argv, permute=permute)
    if opts.stop == "version":
        return Result(f"vdpa utility, devmig-{__version__}\n", "", 0)
    if opts.stop == "help":
        return Result("", _lines(MAIN_HELP.lines), 0)
    if opts.stop == "error":
        return Result("", _lines([*opts.errors, *MAIN_HELP.lines]), 1)
    # iproute2's JSON output needs -j; -p alone only sets how JSON would be indented
    out = render.Output(json=json or opts.json, pretty=pretty or opts.pretty)
    outcome = parse(opts.operands)
    if isinstance(outcome, Say):
        return Result(out.finish(), _lines(outcome.lines), outcome.code)
    return execute(outcome, backend, out)


# --- the click command ----------------------------------------------------------------------------------------


def split_host(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """devmig's --host HOST (or --host=HOST), taken out wherever it is before `--`."""
    host: str | None = None
    rest: list[str] = []
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg == "--":
            rest += [arg, *items]
            break
        if arg == "--host":
            if not items:
                raise InputError(f"{PROG}: option '--host' requires an argument (sim:LAB/HOST or sim:HOST)")
            host = items.pop(0)
        elif arg.startswith("--host="):
            host = arg[len("--host=") :]
        else:
            rest.append(arg)
    return host, rest


class RawCommand(click.Command):
    """Hands its arguments over untouched: click would take `--` and --help, which iproute2's grammar decides."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.params["argv"] = list(args)
        return []


@click.command(
    name="vdpa",
    cls=RawCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def command(argv: list[str]) -> int:
    """Manage vDPA devices over netlink, as iproute2's vdpa (`devmig vdpa help`)."""
    from devmig.cli.options import resolve

    host, args = split_host(argv)
    host = host if host is not None else os.environ.get("DEVMIG_HOST") or None
    opts = resolve(False, False)

    def backend() -> VdpaBackend:
        from devmig.host.hosts import open_host

        try:
            return open_host(host).vdpa()
        except VdpaUnavailableError:
            raise
        except DevmigError as exc:
            # a --host that names no host: devmig's own usage error, exit 2 from devmig's main
            raise _HostError(exc) from None

    try:
        result = vdpa_main(
            args, backend, json=opts.json, pretty=opts.pretty, permute="POSIXLY_CORRECT" not in os.environ
        )
    except _HostError as exc:
        raise exc.error from None
    sys.stdout.write(result.out)
    sys.stdout.flush()
    sys.stderr.write(result.err)
    return result.code


class _HostError(Exception):
    """Carries a --host error past vdpa_main's handling of the family's errors, to devmig's main."""

    def __init__(self, error: DevmigError) -> None:
        super().__init__(error.message)
        self.error = error
