"""A whole `vdpa` run, from argv to stdout, stderr and exit code: options, then the command line, then the
command against the backend, which is opened only when a command needs it (help and parse errors never do)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devmig import __version__
from devmig.errors import InputError
from devmig.vdpa.backend import VdpaBackend, VdpaError, VdpaUnavailableError, render_extack
from devmig.vdpa.iproute2.grammar import MAIN_HELP
from devmig.vdpa.iproute2.options import getopt
from devmig.vdpa.iproute2.outcome import Say
from devmig.vdpa.iproute2.output import Output
from devmig.vdpa.iproute2.parser import Call, parse


@dataclass(frozen=True)
class Result:
    """What a run prints on stdout and stderr, and its exit code."""

    out: str
    err: str
    code: int


def _lines(lines: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def execute(call: Call, backend: Callable[[], VdpaBackend], out: Output) -> Result:
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
    out = Output(json=json or opts.json, pretty=pretty or opts.pretty)
    outcome = parse(opts.operands)
    if isinstance(outcome, Say):
        return Result(out.finish(), _lines(outcome.lines), outcome.code)
    return execute(outcome, backend, out)


__all__ = ["Result", "execute", "vdpa_main"]
