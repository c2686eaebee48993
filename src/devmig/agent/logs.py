"""The agent's log on standard error, in the journal's conventions when it is connected to the journal: each line
starts with its syslog priority as "<N>" (sd-daemon(3)) and carries no timestamp (the journal adds its own).
systemd sets $JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected; a stream that is not that one (the
variable inherited by a program whose stderr was redirected) gets the plain format, with timestamps."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

#: logging's levels -> syslog priorities
PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def priority(level: int) -> int:
    """The syslog priority of a logging level (the nearest named one below it)."""
    for named in sorted(PRIORITIES, reverse=True):
        if level >= named:
            return PRIORITIES[named]
    return 7


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{priority(record.levelno)}>"
        # every line of a message is a journal entry of its own: each gets the priority
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def to_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is the one systemd connected to the journal."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


def setup(level: str = "info", stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> logging.Logger:
    """The "devmig.agent" logger, writing to `stream` (standard error)."""
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    if to_journal(out, env):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s devmig-agent %(levelname)s: %(message)s"))
    logger = logging.getLogger("devmig.agent")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(LEVELS.get(level, logging.INFO))
    logger.propagate = False
    return logger
