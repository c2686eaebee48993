"""Booting the lab: QEMU's command line, and one run of a command in the guest (`run_in_guest`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.kernel.lab.assets import LabAssets
from tests.kernel.lab.console import ConsoleStream, clean_console, command_output, parse_exit_marker
from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.guest import LAB_DIR, render_command_script


@dataclass(frozen=True)
class GuestRun:
    returncode: int | None  # None: the guest never reported one (timeout, panic, setup failure)
    console: str  # the whole serial console, "\n" line ends
    timed_out: bool
    seconds: float

    @property
    def output(self) -> str:
        """What the command printed: the console between the harness's begin and exit markers."""
        return command_output(self.console)


def _qemu_path(path: Path) -> str:
    return str(path).replace(",", ",,")  # QEMU option syntax: a comma in a value is written twice


QBOOT = Path("/usr/share/qemu/qboot.rom")  # Debian's qemu-system-data


def qemu_argv(
    assets: LabAssets,
    results_dir: Path,
    *,
    memory_mb: int,
    qemu: str = "qemu-system-x86_64",
    bios: Path | None = None,
) -> list[str]:
    """The QEMU command line: q35 under TCG, intel-iommu, edu, the host root (read-only) and results_dir over 9p.

    `-device intel-iommu` works as is under TCG (no `kernel-irqchip=split` needed: that is for KVM's irqchip);
    `bios`: qboot (when given) boots ~0.4 s faster than the default SeaBIOS and prints nothing on the console.
    """
    return [
        qemu,
        *(["-bios", _qemu_path(bios)] if bios is not None else []),
        "-M",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        str(memory_mb),
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        _qemu_path(assets.vmlinuz),
        "-initrd",
        _qemu_path(assets.initramfs),
        "-append",
        "console=ttyS0 quiet intel_iommu=on panic=-1",
        "-device",
        "intel-iommu",
        "-device",
        "edu",
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={_qemu_path(results_dir)},mount_tag=results,security_model=none,multidevs=remap",
    ]


def run_in_guest(
    assets: LabAssets,
    command: Sequence[str],
    *,
    cwd: str,
    results_dir: Path,
    timeout: float = 300,
    env: Mapping[str, str] = {},  # never mutated
    memory_mb: int = 2048,
    echo: Callable[[str], None] | None = None,
) -> GuestRun:
    """Boot the lab kernel, run `command` in `chroot /host` from `cwd`, power off; the command's exit code.

    `results_dir` (created if missing; one per concurrent run) is the guest's /tmp/devmig-results. `echo`, if given,
    receives the console text as it arrives. After `timeout` seconds QEMU is killed: timed_out=True, returncode None.
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise LabUnavailable("qemu-system-x86_64 not found: run prepare() (as root) first")
    for path in (assets.vmlinuz, assets.initramfs):
        if not path.is_file():
            raise LabUnavailable(f"{path} missing: run prepare() again")
    results = results_dir.expanduser().absolute()
    lab = results / LAB_DIR
    lab.mkdir(parents=True, exist_ok=True)
    (lab / "exit-code").unlink(missing_ok=True)
    (lab / "run.sh").write_text(render_command_script(command, cwd=cwd, env=env))
    # The guest's tmpfs mounts would hide a checkout under /tmp (CI clones anywhere): the init keeps these visible.
    (lab / "keep").write_text(f"{cwd}\n")

    argv = qemu_argv(assets, results, memory_mb=memory_mb, qemu=qemu, bios=QBOOT if QBOOT.is_file() else None)
    chunks: list[bytes] = []
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def pump() -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        stream = ConsoleStream()
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if echo is not None and (text := stream.feed(chunk)):
                echo(text)
        if echo is not None and (text := stream.flush()):
            echo(text)

    reader = threading.Thread(target=pump, name="kernel-lab-console", daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    seconds = time.monotonic() - started
    console = clean_console(b"".join(chunks))
    returncode = None if timed_out else parse_exit_marker(console)
    if returncode is None and not timed_out:
        with contextlib.suppress(OSError, ValueError):
            returncode = int((lab / "exit-code").read_text().strip())
    return GuestRun(returncode=returncode, console=console, timed_out=timed_out, seconds=seconds)
