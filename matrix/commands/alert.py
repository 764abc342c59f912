"""`alert`: open, update and close GitHub issues for pull regressions of the latest run."""

from __future__ import annotations

import os
from pathlib import Path

import click

from matrix.config import load_config
from matrix.observations import load
from matrix.regressions import GitHub, detect, split_latest, sync_issues


@click.command("alert")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Data directory.")
@click.option(
    "--latest",
    "latest_shards",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Shards of the latest run (repeatable). Default: each engine's newest pull run.",
)
@click.option("--repo", default="", help="OWNER/NAME of the repository for issues.")
@click.option("--gh", "gh_path", default="gh", show_default=True, help="The gh executable.")
@click.option("--dry-run", is_flag=True, help="Print the gh commands that change issues.")
def command(
    config_path: str | None,
    data_dir: str | None,
    latest_shards: tuple[str, ...],
    repo: str,
    gh_path: str,
    dry_run: bool,
) -> None:
    """Compare the latest run's pulls with the previous verdicts and keep one issue per
    regression: opened when a cell that pulled fails, updated while it fails, closed when it
    pulls again. Harness errors never count."""
    config = load_config(config_path)
    data = Path(data_dir) if data_dir else config.data_dir
    history = load([data]) if data.exists() else load([])
    if latest_shards:
        latest = load([Path(path) for path in latest_shards])
        previous = history[~history["run_id"].isin(set(latest["run_id"]))]
    else:
        previous, latest = split_latest(history)

    changes = detect(previous, latest, config.engines.versions)
    secret_names = [
        name
        for registry in config.registries.values()
        for name in (registry.username_env, registry.password_env)
        if name
    ]
    github = GitHub(repo or config.alerts.repository, gh_path, dry_run, echo=click.echo)
    secrets = [os.environ[name] for name in secret_names if os.environ.get(name)]
    actions = sync_issues(changes, github, config.runbook_url, secrets)
    counts = {kind: sum(c.kind == kind for c in changes) for kind in ("regression", "recovery")}
    click.echo(
        f"{counts['regression']} regressions, {counts['recovery']} recoveries, "
        f"{len(actions)} issue actions{' (dry run)' if dry_run else ''}",
        err=True,
    )
