"""`devmig agent`: the per-host service that keeps this host's inventory in the fleet store (devmig.agent).

Exit codes: 0 stopped (SIGTERM, SIGINT); 2 bad settings (a config file, an option, a host that cannot be opened),
which the shipped systemd unit does not restart (RestartPreventExitStatus=2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from devmig.errors import ExitCode

SECONDS = click.FloatRange(min=0)
F = TypeVar("F", bound=Callable[..., Any])


def _seconds(flag: str, help_text: str) -> Callable[[F], F]:
    return click.option(flag, type=SECONDS, default=None, metavar="SECONDS", help=help_text)


def _print_unit(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib import resources

    click.echo(resources.files("devmig.agent").joinpath(UNIT).read_text(encoding="utf-8"), nl=False)
    ctx.exit(0)


#: the systemd unit shipped with the package (devmig/agent/devmig-agent.service)
UNIT = "devmig-agent.service"


@click.command(name="agent")
@click.option(
    "--print-unit",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_unit,
    help="Print the systemd unit shipped with devmig (devmig-agent.service) and exit.",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    default=None,
    help="Settings in TOML, keys named as these options [default: /etc/devmig/agent.toml when it exists]. The "
    "command line wins; SIGHUP reads the file again.",
)
@click.option(
    "--store",
    metavar="URL",
    envvar="DEVMIG_STORE",
    default=None,
    help="The fleet store: sqlite:///PATH, postgresql://USER@HOST/DB or a path [default: $DEVMIG_STORE, else "
    "~/.local/share/devmig/fleet.db].",
)
@click.option("--name", metavar="NAME", default=None, help="The host's name in the fleet [default: its hostname].")
@click.option(
    "--host",
    metavar="HOST",
    envvar="DEVMIG_HOST",
    default=None,
    help="A simulated host, sim:LAB/HOST, instead of this machine (its simulated kernel's events). Also $DEVMIG_HOST.",
)
@click.option("--sysfs-root", metavar="DIR", default=None, help="Read the host under DIR instead of / [default: /].")
@click.option("--state-dir", metavar="DIR", envvar="DEVMIG_STATE_DIR", default=None, help="devmig's state directory.")
@click.option(
    "--profiles-dir", metavar="DIR", envvar="DEVMIG_PROFILES_DIR", default=None, help="Extra driver profiles (*.toml)."
)
@click.option(
    "--events",
    type=click.Choice(["auto", "udev", "kernel", "none"]),
    default=None,
    help="Device events from udevd, from the kernel's own uevents, or none (the periodic re-read alone) "
    "[default: auto: udevd where it runs, else the kernel's].",
)
@_seconds("--heartbeat-interval", "A heartbeat when nothing was published for this long [default: 60].")
@_seconds("--resync-interval", "Re-read and publish everything this often, events or not; 0: never [default: 300].")
@_seconds("--debounce", "Wait for the events to be quiet this long before reading [default: 0.2].")
@_seconds("--max-delay", "... but read at most this long after the first event of a burst [default: 2].")
@_seconds("--retry-initial", "The first wait before trying a failed store again [default: 1].")
@_seconds("--retry-max", "The longest wait between two tries (exponential backoff, jittered) [default: 60].")
@_seconds("--stop-timeout", "On SIGTERM, let a store call under way finish this long, then abandon it [default: 10].")
@click.option(
    "--metrics-address",
    metavar="HOST:PORT",
    default=None,
    help="Serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9464; :9464 for every address) [default: off].",
)
@click.option(
    "--nfd-dir",
    metavar="DIR",
    default=None,
    help="Write Node Feature Discovery feature files here after each publish.",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
def command(config_path: str | None, **options: Any) -> int:
    """Keep this host's inventory in the fleet store: publish it now, again after every burst of device events
    (mdev, PCI/VFIO, vDPA devices and their drivers), a heartbeat between publishes, a full re-read at
    --resync-interval; retry a store that is down or slow with backoff. SIGHUP reads the settings again and
    publishes; SIGTERM stops (exit 0). Runs unprivileged: it only reads sysfs."""
    from devmig.agent import config as agent_config
    from devmig.agent import logs
    from devmig.agent.loop import Agent

    config = agent_config.load(options, config_path)
    logs.setup(config.log_level)
    agent = Agent(config, options=options, config_path=config_path)
    agent.run()
    return ExitCode.OK
