"""iproute2's `vdpa` grammar as tables: the help texts, the command tree (which keywords it accepts as prefixes,
which it needs exactly, what no word at all means), each command's arguments, and the keyword arguments of
`vdpa_argv_parse` with the parser of each value. `devmig.vdpa.iproute2.parser` walks them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devmig.vdpa.family import U16_MAX, U32_MAX, U64_MAX
from devmig.vdpa.iproute2 import commands, values
from devmig.vdpa.iproute2.commands import Run
from devmig.vdpa.iproute2.outcome import Say

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


# --- vdpa_argv_parse's arguments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """A keyword argument: a prefix of it is enough when `prefix`, else it must be exact."""

    keyword: str
    prefix: bool
    parse: Callable[[str], Any]


#: the keyword arguments in the order vdpa_argv_parse tries them: the first one accepted wins ("ma" is max_vqp
#: because mac must be exact; "m" is mgmtdev where mgmtdev is accepted)
KEYWORDS: tuple[Keyword, ...] = (
    Keyword("name", True, values.string),
    Keyword("mgmtdev", True, values.handle),
    Keyword("mac", False, values.mac),
    Keyword("mtu", False, values.number("mtu", 10, U16_MAX)),
    Keyword("max_vqp", True, values.number("max_vqp", 10, U16_MAX)),
    Keyword("qidx", False, values.number("qidx", 10, U32_MAX)),
    Keyword("device_features", False, values.number("device_features", 16, U64_MAX)),
)
#: the positional first arguments: how each is parsed and what iproute2 says when it is missing
POSITIONALS: dict[str, tuple[Callable[[str], str], str]] = {
    "mgmtdev": (values.handle, 'vdpa identification ("mgmtdev_bus_name/mgmtdev_name") expected'),
    "dev": (values.string, "String parameter expected"),
}
#: what iproute2 says for a missing required argument, in the order it checks them
REQUIRED: dict[str, str] = {
    "mgmtdev": "management device handle not set.",
    "name": "device name is not set.",
    "qidx": "queue index is not set.",
}


# --- the commands ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command: what it runs, where its answer prints, the arguments it takes."""

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


MGMTDEV_SHOW = Command(commands.mgmtdev_show, section="mgmtdev", positional="mgmtdev")
DEV_SHOW = Command(commands.dev_show, section="dev", positional="dev")
DEV_ADD = Command(
    commands.dev_add,
    options=frozenset({"name", "mgmtdev", "mac", "mtu", "max_vqp", "device_features"}),
    required=frozenset({"mgmtdev", "name"}),
)
DEV_DEL = Command(commands.dev_del, positional="dev", needs_positional=True)
DEV_SET = Command(commands.dev_set, options=frozenset({"name", "mac"}), required=frozenset({"name"}))
CONFIG_SHOW = Command(commands.config_show, section="config", positional="dev")
VSTATS_SHOW = Command(
    commands.vstats_show,
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


__all__ = [
    "CONFIG",
    "CONFIG_SHOW",
    "CONFIG_USAGE",
    "DEV",
    "DEVMIG_USAGE",
    "DEV_ADD",
    "DEV_DEL",
    "DEV_SET",
    "DEV_SHOW",
    "DEV_USAGE",
    "KEYWORDS",
    "MAIN_HELP",
    "MAIN_USAGE",
    "MGMTDEV",
    "MGMTDEV_SHOW",
    "MGMTDEV_USAGE",
    "POSITIONALS",
    "REQUIRED",
    "TOP",
    "VSTATS",
    "VSTATS_SHOW",
    "VSTATS_USAGE",
    "Command",
    "Keyword",
    "Level",
]
