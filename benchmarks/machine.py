"""What the benchmark scripts share: facts about the machine, and writing a marked section of a document."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


def output(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "?"
    found = re.search(r'^PRETTY_NAME="?([^"\n]*)"?$', text, re.MULTILINE)
    return found.group(1) if found else "?"


def wrapper_note(path: str) -> str:
    """Say so when the `python3` on PATH is a script (a pyenv shim, say) rather than the interpreter itself."""
    try:
        with Path(path).open("rb") as f:
            return " (a #! script that starts the interpreter)" if f.read(2) == b"#!" else ""
    except OSError:
        return ""


def machine(venv_python: str) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    models = re.findall(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    # versions only: the record names no path of the machine it ran on
    probe = "import sys; print('Python', sys.version.split()[0])"
    path_python = shutil.which("python3") or "?"
    return {
        "cpu": models[0] if models else platform.processor() or "?",
        "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "ram": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?",
        "kernel": platform.release(),
        "os": os_name(),
        "python3 on PATH": f"{output(['python3', '-c', probe])}{wrapper_note(path_python)}",
        "venv python": f"{output([venv_python, '-c', probe])} (the project's .venv)",
        "mdevctl": output(["mdevctl", "--version"]),
    }


def write_section(doc: Path, begin: str, end: str, title: str, body: str) -> None:
    """Replace the text between the `begin` and `end` markers of `doc` (append a `title` section if absent)."""
    text = doc.read_text() if doc.exists() else "# Performance\n"
    section = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n" + section + "\n"
    doc.write_text(text)
