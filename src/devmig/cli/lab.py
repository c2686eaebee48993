"""`devmig lab`: the main job on the built-in simulated lab, told as a story a newcomer can follow."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING

import click

from devmig.cli.options import emit_json, output_options, resolve, state_dir_option
from devmig.cli.progress import size
from devmig.cli.render import assignments, table
from devmig.errors import ExitCode

if TYPE_CHECKING:
    from devmig.model import DeviceDescriptor
    from devmig.provision import Prepared
    from devmig.tour.story import HostAnswer, Tour


def _why(answer: HostAnswer, source: DeviceDescriptor) -> str:
    """One short reason a person reads first: the first error (and how many more), else what would differ."""
    if answer.verdict is None:
        return answer.note or ""
    verdict, cap = answer.verdict, answer.capability
    if verdict.errors:
        more = len(verdict.errors) - 1
        return verdict.errors[0].message + (f" (+{more} more)" if more else "")
    reasons = [f.message for f in verdict.warnings]
    switched_off = [name for name in (verdict.plan or {}) if name not in source.params]
    if switched_off:
        reasons.append(f"{', '.join(switched_off)} switched off")
    if cap is not None and cap.available_instances == 0:
        reasons.insert(0, "no free instance")
    return "; ".join(reasons)


@click.command(name="lab")
@click.option(
    "--lab",
    "lab_name",
    metavar="FILE",
    default="default",
    show_default=True,
    help="A lab file (YAML or JSON), or the name of a shipped lab.",
)
@click.option("--device", metavar="DEVICE", help="The device to move (default: the first running one).")
@click.option(
    "--reset",
    is_flag=True,
    help="Forget what commands with --host sim:... changed on this lab's hosts (and their prepare records).",
)
@state_dir_option
@output_options
def command(
    lab_name: str, device: str | None, reset: bool, state_dir: str | None, json_output: bool, pretty: bool
) -> int:
    """Start a simulated lab, pick a running device on its first host, show which other hosts can take it and
    why, prepare it on the best one that accepts it, move its state there and release it. Exit 0 when some host
    took it, 1 when none can.

    The story always starts from the lab file; `devmig --host sim:HOST ...` commands keep their changes between
    runs until --reset."""
    from devmig.machine.lab import lab as open_lab
    from devmig.machine.lab import reset_lab
    from devmig.tour.story import tour

    opts = resolve(json_output, pretty)
    if reset:
        removed = reset_lab(lab_name, state_dir)
        click.echo(f"lab {lab_name}: forgot the changes of {removed} simulated host(s)", err=True)
    lab = open_lab(lab_name)
    story = tour(lab, device)
    best = story.best
    if opts.json:
        emit_json(
            {
                "lab": lab.name,
                "source": {
                    "host": story.source_host,
                    "device": story.device,
                    "descriptor": story.descriptor.model_dump(mode="json", exclude_none=True),
                },
                "hosts": [
                    {
                        "host": a.host,
                        "type": a.capability.type if a.capability else None,
                        "free": a.capability.available_instances if a.capability else None,
                        "verdict": a.verdict.model_dump(mode="json") if a.verdict else None,
                        "note": a.note,
                    }
                    for a in story.answers
                ],
                "best": best.host if best else None,
                "refused": [{"host": host, "reason": reason} for host, reason in story.refused],
                "destination": story.destination.host if story.destination else None,
                "prepared": story.prepared.to_dict() if story.prepared else None,
                "migrated": story.moved.json() if story.moved else None,
                "identical": story.identical,
            },
            opts,
        )
        return ExitCode.OK if story.destination else ExitCode.REFUSED
    d = story.descriptor
    lines = [
        f"Lab {lab.name}: {lab.spec.description}",
        f"  {len(lab.hosts)} simulated hosts: {', '.join(lab.hosts)}",
        "",
        f"1. The device: on {story.source_host}, {story.device} is running (a VM is using it).",
        f"   devmig describes it as {d.type}, model {d.model or '-'}, driver version {d.software_version},",
        f"   migration parameters {assignments(d.params)}.",
        *_migration_line(d),
        "",
        "2. Which host could take it? devmig checks it against "
        + ("each host's free functions of its PCI identity:" if story.function else "every type each host can create:"),
    ]
    rows = [("HOST", "TYPE", "VERDICT", "FREE", "WHY")]
    for a in story.answers:
        cap = a.capability
        rows.append(
            (
                a.host,
                cap.type if cap else "-",
                a.verdict.level if a.verdict else "-",
                str(cap.available_instances) if cap and cap.available_instances is not None else "-",
                _why(a, story.descriptor),
            )
        )
    lines += table(rows, indent="   ")
    lines.append("")
    dest = story.destination
    if best is None:
        lines.append("3. No host can take it: each reason is above.")
    else:
        lines.append(f"3. Best destination: {_summary(best)}.")
        for host, reason in story.refused:
            lines.append(f"   {host} refused the prepare: {reason}")
        if story.refused:
            lines.append(f"   Next: {_summary(dest)}." if dest else "   No host accepted the prepare.")
    done = story.prepared
    if dest is not None and done is not None:
        key, mapping = next(iter(done.mapping().items()))
        made = f"created mdev {done.device}" if done.kind == "mdev" else f"claimed {_function(done)}"
        lines += [
            f"4. devmig prepare on {dest.host}: {made} ({done.type}),",
            f"   wrote {assignments(done.params)}, each read back; for Nova: {key}",
            f"   {json.dumps(mapping)}.",
        ]
        moved = story.moved
        if moved is not None:
            rounds = f"{moved.rounds} pre-copy round{'s' if moved.rounds != 1 else ''}"
            lines += [
                f"5. devmig migrate to {dest.host} while the guest kept writing: {size(moved.bytes)} in {rounds},",
                f"   downtime {(moved.downtime or 0) * 1000:.1f} ms; the state arrived "
                + ("byte for byte." if story.identical else "DIFFERENT (a bug: please report it)."),
            ]
        lines.append(f"   devmig release then put {dest.host} back as it was (each change was journaled first).")
    lines += ["", *_try(lab_name, story)]
    click.echo("\n".join(lines))
    return ExitCode.OK if dest else ExitCode.REFUSED


def _summary(answer: HostAnswer) -> str:
    assert answer.capability is not None and answer.verdict is not None
    cap = answer.capability
    return f"{answer.host} ({cap.type}, {answer.verdict.level}, {cap.available_instances} free)"


def _function(done: Prepared) -> str:
    """A claimed function as a person names it: a VF (of its PF) or a PCI function, and the binding made."""
    what = f"VF {done.device} of {done.parent}" if done.parent != done.device else f"PCI function {done.device}"
    return (
        what
        + (f", bound to {done.bound}" if done.bound else "")
        + (f", made vGPU type {done.vgpu}" if done.vgpu else "")
    )


def _try(lab_name: str, story: Tour) -> list[str]:
    """Commands to go on with, on this lab's hosts: `sim:HOST` names a host of the default lab only."""
    from devmig.sim.lab import DEFAULT_LAB

    def host(name: str) -> str:
        return shlex.quote(f"sim:{name}" if lab_name == DEFAULT_LAB else f"sim:{lab_name}/{name}")

    lines = [f"Try: devmig list --host {host(story.source_host)}"]
    other = story.destination or story.best or next(iter(story.answers), None)
    if other is not None:
        lines.append(
            f"  devmig describe --host {host(story.source_host)} {story.device} | "
            f"devmig plan - --host {host(other.host)}"
        )
    return lines


def _migration_line(d: DeviceDescriptor) -> list[str]:
    """The driver's migration flags and who tracks its DMA, when its profile tells them."""
    m = d.migration
    if m is None:
        return []
    flags = ", ".join(m.flags) if m.flags else ("none" if m.flags == [] else "not known")
    return [f"   its driver migrates with {flags}; its DMA is tracked by: {m.dirty_tracking or 'not known'}."]
