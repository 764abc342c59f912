"""`collect`: the main job — probe every configured image, pull with every engine, one shard."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from matrix.collect import CollectResult, collect
from matrix.commands.common import is_quiet
from matrix.commands.show import verdict_table
from matrix.config import Config, load_config
from matrix.lab import control
from matrix.lab.state import default_cache_dir, default_lab_dir
from matrix.observations import Observation, load


@click.command("collect")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config [default: $PULL_MATRIX_CONFIG, ./pull-matrix.toml, or built-in defaults; "
    "with --lab ./pull-matrix.lab.toml].",
)
@click.option(
    "--lab", "use_lab", is_flag=True, help="Bring the offline lab up and collect from it."
)
@click.option("--keep", is_flag=True, help="With --lab: leave the lab running afterwards.")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (overrides the config's data_dir).",
)
@click.option("--probe-only", is_flag=True, help="Probe the registries; pull nothing.")
@click.option(
    "--engine",
    "endpoints",
    multiple=True,
    metavar="ENDPOINT",
    help="With the host provisioner: an engine endpoint to pull with; repeatable.",
)
@click.option(
    "--lab-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The lab's state directory [default: $PULL_MATRIX_LAB_DIR or /tmp/pull-matrix-lab].",
)
@click.option("--run-id", help="Run id recorded with every observation (default: time-based).")
@click.pass_context
def command(
    ctx: click.Context,
    config_path: Path | None,
    use_lab: bool,
    keep: bool,
    data_dir: Path | None,
    probe_only: bool,
    endpoints: tuple[str, ...],
    lab_dir: Path | None,
    run_id: str | None,
) -> None:
    """Probe every tag of every configured image, pull what the plan allows with every engine,
    write one shard under the data directory and print the matrix.

    Pulls are incremental: an engine that already has a verdict for a digest does not pull it
    again, and each registry's counted manifest GETs stay within its budget (the rest waits for
    later runs). The last lines say how many counted manifest GETs the run made and how many
    pulls it did and deferred.
    """
    config = load_config(config_path, lab=use_lab)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    lab_dir = lab_dir or default_lab_dir()
    quiet = is_quiet(ctx)

    if use_lab:
        first = "" if _engines_cached() else " (first time: downloads the engines, about 250 MB)"
        click.echo(f"bringing the lab up in {lab_dir}{first}", err=True)
        control.up(lab_dir, versions=list(config.engines.versions))
    try:
        result = _run(config, probe_only, lab_dir, endpoints, run_id, quiet)
    finally:
        if use_lab and not keep:
            control.down(lab_dir)
            click.echo("lab stopped (use --keep to leave it running)", err=True)
    _report(result, config, quiet)


def _run(
    config: Config,
    probe_only: bool,
    lab_dir: Path,
    endpoints: tuple[str, ...],
    run_id: str | None,
    quiet: bool,
) -> CollectResult:
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=quiet or not console.is_terminal) as bar:
        tags = bar.add_task("probing tags", total=None)
        pulls = bar.add_task("pulling", total=None, visible=False)

        def pulled(_observation: Observation) -> None:
            bar.update(pulls, visible=True, advance=1)

        return collect(
            config,
            run_id=run_id,
            probe_only=probe_only,
            lab_dir=lab_dir,
            endpoints=endpoints,
            on_tag=lambda: bar.advance(tags),
            on_observation=pulled,
        )


def _report(result: CollectResult, config: Config, quiet: bool) -> None:
    if not quiet and result.observations:
        console = Console()
        if not console.is_terminal:
            # Written to a file or a CI log: wide enough that engine columns stay readable.
            console = Console(width=200)
        # Every run so far, not only this one: a run that pulled nothing new still shows what
        # the engines said before.
        console.print(verdict_table(load([Path(config.data_dir) / "observations"])))
    plan = result.plan
    errors = sum(1 for o in result.pulls if o.outcome == "error")
    click.echo(f"run {result.run_id}: shard {result.shard or 'none (nothing observed)'}")
    click.echo(f"counted manifest GETs: {result.counted_gets()}")
    budgets = config.budgets()
    for registry in sorted(set(result.probe_gets) | set(result.pull_gets) | set(budgets)):
        probe, pulls = result.probe_gets.get(registry, 0), result.pull_gets.get(registry, 0)
        limit = f"budget {budgets[registry]}" if registry in budgets else "no limit known"
        label = _label(config, registry)
        click.echo(f"  {label}: {probe} by the probe, {pulls} by pulls ({limit})")
    deferred = (
        f", {len(plan.deferred)} deferred to later runs (budget spent)" if plan.deferred else ""
    )
    failures = f", {errors} engine errors (not verdicts)" if errors else ""
    click.echo(f"pulls: {len(result.pulls)} done{deferred}{failures}")


def _label(config: Config, registry: str) -> str:
    known = config.registries.get(registry)
    return f"{registry} ({known.role} role)" if known and known.role else registry


def _engines_cached() -> bool:
    roots = default_cache_dir() / "engines" / "roots"
    return roots.is_dir() and any(roots.iterdir())
