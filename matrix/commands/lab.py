"""`lab up | down | status`: the offline lab of real registries and real Docker engines."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from matrix.lab import control, registries
from matrix.lab.state import Part, default_lab_dir


def _lab_dir_option(function: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--lab-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The lab's state directory [default: $PULL_MATRIX_LAB_DIR or /tmp/pull-matrix-lab].",
    )(function)


@click.group("lab")
def command() -> None:
    """Start, stop and inspect the offline lab: registries in the roles of Docker Hub and GHCR
    (behind a proxy with Hub-shaped tokens and pull limits) and real Docker engines."""


@command.command("up")
@_lab_dir_option
@click.option("--engines-only", is_flag=True, help="Start only the engines.")
@click.option("--registries-only", is_flag=True, help="Start only the registries (and publish).")
@click.option(
    "--engine",
    "engine_versions",
    multiple=True,
    metavar="VERSION",
    help="Start only this engine version or Debian suite; repeatable.",
)
@click.option(
    "--hub-port",
    type=int,
    default=registries.ROLES["docker.io"].port,
    show_default=True,
    help="Port of the docker.io role.",
)
@click.option(
    "--ghcr-port",
    type=int,
    default=registries.ROLES["ghcr.io"].port,
    show_default=True,
    help="Port of the ghcr.io role.",
)
@click.option("--no-publish", is_flag=True, help="Do not push the lab's image family.")
def up_command(
    lab_dir: Path | None,
    engines_only: bool,
    registries_only: bool,
    engine_versions: tuple[str, ...],
    hub_port: int,
    ghcr_port: int,
    no_publish: bool,
) -> None:
    """Start what is not running yet (running parts are kept), then print the lab's status."""
    if engines_only and registries_only:
        raise click.UsageError("--engines-only and --registries-only exclude each other")
    lab_dir = lab_dir or default_lab_dir()
    parts = control.up(
        lab_dir,
        ports={"docker.io": hub_port, "ghcr.io": ghcr_port},
        with_registries=not engines_only,
        with_engines=not registries_only,
        publish_images=not no_publish,
        versions=list(engine_versions) or None,
    )
    _print_parts(parts)


@command.command("down")
@_lab_dir_option
@click.option("--engines-only", is_flag=True, help="Stop only the engines.")
@click.option("--registries-only", is_flag=True, help="Stop only the registries.")
def down_command(lab_dir: Path | None, engines_only: bool, registries_only: bool) -> None:
    """Stop the lab's parts; nothing the lab started is left running."""
    lab_dir = lab_dir or default_lab_dir()
    control.down(lab_dir, with_registries=not engines_only, with_engines=not registries_only)
    click.echo("lab stopped", err=True)


@command.command("status")
@_lab_dir_option
@click.option("--engines", "engines_only", is_flag=True, help="Only the engines.")
@click.option("--registries", "registries_only", is_flag=True, help="Only the registries.")
def status_command(lab_dir: Path | None, engines_only: bool, registries_only: bool) -> None:
    """One line per part: kind, role, endpoint, version, healthy or not.

    Exits with status 1 when nothing runs or a part is unhealthy.
    """
    lab_dir = lab_dir or default_lab_dir()
    parts = control.status(
        lab_dir, with_registries=not engines_only, with_engines=not registries_only
    )
    if not parts:
        click.echo("nothing running", err=True)
        sys.exit(1)
    _print_parts(parts)
    if not all(part.healthy for part in parts):
        sys.exit(1)


def _print_parts(parts: list[Part]) -> None:
    rows = [
        (part.kind, part.role, part.endpoint, part.version or "-", _health(part)) for part in parts
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)] if rows else []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[4]]))


def _health(part: Part) -> str:
    return "healthy" if part.healthy else "unhealthy"
