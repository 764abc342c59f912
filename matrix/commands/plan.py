"""`plan`: which pulls this run does and which wait, within each registry's rate limit."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from matrix.commands.common import is_quiet
from matrix.config import Config, load_config
from matrix.errors import ConfigError
from matrix.observations import load
from matrix.plan import Plan, plan_pulls
from matrix.reference import parse_repository


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
        locations = _locations(config, images)
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
    probe = probe[probe["method"] == "probe"]

    chosen = [config.image(name) for name in image_names] or list(config.images)
    probe = probe[
        (probe["registry"] + "/" + probe["repository"]).isin(_locations(config, image_names))
    ]

    engines = config.engines.engines
    unknown = set(versions) - {version for _, version in engines}
    if unknown:
        raise ConfigError(f"engine versions {sorted(unknown)} are not in the config")
    if versions:
        engines = [engine for engine in engines if engine[1] in versions]
    return plan_pulls(
        history,
        pd.DataFrame(probe),
        engines,
        config.budgets(),
        priority_tags=_union(tag for image in chosen for tag in image.priority_tags),
        platforms=_union(platform for image in chosen for platform in image.platforms),
    )


def _locations(config: Config, image_names: Iterable[str]) -> set[str]:
    """`registry/repository` of the named images (all configured images when none)."""
    chosen = [config.image(name) for name in image_names] or list(config.images)
    return {str(parse_repository(ref)) for image in chosen for ref in image.refs}


def _union(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


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
