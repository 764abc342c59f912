"""`plan`: which pulls this run does and which wait, within each registry's rate limit."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from matrix.commands.common import is_quiet
from matrix.config import Config, load_config
from matrix.observations import load
from matrix.plan import Plan, image_locations, plan_for_config


@click.command("plan")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--lab", is_flag=True, help="Use pull-matrix.lab.toml.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option(
    "--probe",
    "probe_files",
    multiple=True,
    type=click.Path(exists=True),
    help="Probe shards of this run (repeatable). Default: the probes in the data directory.",
)
@click.option("--image", "images", multiple=True, help="Only this configured image; repeatable.")
@click.option("--engine", "versions", multiple=True, help="Only this engine version; repeatable.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the plan as JSON here.")
@click.option(
    "--from",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read a plan written by --out instead of planning.",
)
@click.option(
    "--list",
    "list_pulls",
    is_flag=True,
    help="Print `PLATFORM REFERENCE` per pull to do now (of --engine), for scripts.",
)
@click.pass_context
def command(
    ctx: click.Context,
    config_path: str | None,
    lab: bool,
    data_dir: str | None,
    probe_files: tuple[str, ...],
    images: tuple[str, ...],
    versions: tuple[str, ...],
    out: str | None,
    plan_file: str | None,
    list_pulls: bool,
) -> None:
    """Plan the pulls of this run: an engine pulls a tag again only when the probe shows a
    digest it has no verdict for, and no registry is asked for more manifest GETs than its
    budget (or its remaining rate limit) allows. The rest waits for later runs."""
    config = load_config(config_path, lab=lab)
    if plan_file:
        plan = Plan.read(Path(plan_file))
    else:
        plan = _plan(config, data_dir, probe_files, images, versions)
    if out:
        plan.write(Path(out))
    if list_pulls:
        locations = image_locations(config, images)
        for pull in plan.now:
            wanted = not versions or pull.version in versions
            if wanted and f"{pull.registry}/{pull.repository}" in locations:
                click.echo(f"{pull.platform} {pull.reference}")
    elif not is_quiet(ctx):
        _summary(plan)


def _plan(
    config: Config,
    data_dir: str | None,
    probe_files: tuple[str, ...],
    image_names: tuple[str, ...],
    versions: tuple[str, ...],
) -> Plan:
    data = Path(data_dir) if data_dir else config.data_dir
    history = load([data]) if data.exists() else load([])
    probe = load([Path(path) for path in probe_files]) if probe_files else history
    return plan_for_config(config, history, probe, images=image_names, versions=versions)


def _summary(plan: Plan) -> None:
    table = Table(title="Pull plan")
    for column in ("registry", "pulls now", "GETs now", "available", "deferred", "GETs later"):
        table.add_column(column, justify="left" if column == "registry" else "right")
    registries = sorted({pull.registry for pull in plan.now + plan.deferred})
    for registry in registries:
        available = plan.available.get(registry)
        table.add_row(
            registry,
            str(sum(pull.registry == registry for pull in plan.now)),
            str(plan.gets_now.get(registry, 0)),
            "no limit" if available is None else str(available),
            str(sum(pull.registry == registry for pull in plan.deferred)),
            str(plan.gets_deferred.get(registry, 0)),
        )
    Console(file=sys.stderr).print(table if registries else "Nothing to pull.")
