"""The one exception hierarchy of devmig.

Every error names the object it is about and what was expected, so the CLI can print one line and exit with the
documented code. Nothing here imports anything heavy: the CLI imports this module on every run.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `devmig` command, documented in docs/cli.md."""

    OK = 0
    #: the device is incompatible, or an operation was refused by the host
    REFUSED = 1
    #: bad input or usage
    BAD_INPUT = 2
    #: a migration whose channel was lost, or a signal came, after COMMIT: the source stays stopped until --resolve
    UNDECIDED = 4
    #: stopped by a signal (SIGINT, SIGTERM, SIGHUP), after putting the host back
    INTERRUPTED = 130


class DevmigError(Exception):
    """Base of every error devmig raises on purpose."""

    exit_code: ExitCode = ExitCode.REFUSED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(DevmigError):
    """A file, argument or document is malformed or does not follow its format."""

    exit_code = ExitCode.BAD_INPUT


class IncompatibleError(DevmigError):
    """A decision could not be taken because the devices are incompatible.

    Carries the verdict (a `devmig.model.Verdict`) so callers keep every reason.
    """

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, verdict: object | None = None) -> None:
        super().__init__(message)
        self.verdict = verdict


class SignalledError(DevmigError):
    """A signal stopped an operation; whatever it had changed was undone before this was raised further."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, signal: str = "a signal") -> None:
        super().__init__(message)
        #: the signal's name (SIGTERM, SIGHUP)
        self.signal = signal
