"""`lab up | down | status`: the offline lab of real registries and real Docker engines."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from types import ModuleType

import click

from matrix.errors import LabError, MatrixError
from matrix.lab import registries
from matrix.lab.state import Part, default_lab_dir

log = logging.getLogger(__name__)


def _optional(module: str) -> ModuleType | None:
    """A lab module that may not be installed yet (engines, images); None if it is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


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
    ports = {"docker.io": hub_port, "ghcr.io": ghcr_port}
    parts: list[Part] = []
    if not engines_only:
        parts += registries.up(lab_dir, ports)
        if not no_publish:
            _publish(lab_dir, parts)
    if not registries_only:
        hosts = [part.endpoint for part in registries.status(lab_dir)] or [
            f"127.0.0.1:{port}" for port in ports.values()
        ]
        parts += _engines_up(lab_dir, hosts, list(engine_versions) or None)
    _print_parts(parts)


def _publish(lab_dir: Path, parts: list[Part]) -> None:
    images = _optional("matrix.lab.images")
    if images is None:
        click.echo("images: matrix.lab.images is not available; nothing published", err=True)
        return
    hosts = {part.role: part.endpoint for part in parts}
    login = registries.publisher_credentials(lab_dir)
    hub, ghcr = hosts["docker.io"], hosts["ghcr.io"]
    published = images.publish_family(hub, ghcr, credentials={hub: login, ghcr: login})
    for role, tags in sorted(published.items()):
        click.echo(f"published {len(tags)} tags to the {role} role", err=True)


def _engines_up(lab_dir: Path, hosts: list[str], versions: list[str] | None) -> list[Part]:
    engines = _optional("matrix.lab.engines")
    if engines is None:
        click.echo("engines: matrix.lab.engines is not available; no engines started", err=True)
        return []
    parts: list[Part] = engines.up(lab_dir, insecure_registries=hosts, versions=versions)
    return parts


@command.command("down")
@_lab_dir_option
@click.option("--engines-only", is_flag=True, help="Stop only the engines.")
@click.option("--registries-only", is_flag=True, help="Stop only the registries.")
def down_command(lab_dir: Path | None, engines_only: bool, registries_only: bool) -> None:
    """Stop the lab's parts; nothing the lab started is left running."""
    lab_dir = lab_dir or default_lab_dir()
    failures: list[str] = []
    if not registries_only:
        engines = _optional("matrix.lab.engines")
        if engines is not None:
            try:
                engines.down(lab_dir)
            except MatrixError as exc:
                failures.append(f"engines: {exc}")
    if not engines_only:
        registries.down(lab_dir)
    if failures:
        raise LabError("; ".join(failures))
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
    parts: list[Part] = []
    if not engines_only:
        parts += registries.status(lab_dir)
    if not registries_only:
        engines = _optional("matrix.lab.engines")
        if engines is not None:
            parts += engines.status(lab_dir)
        elif engines_only:
            click.echo("engines: matrix.lab.engines is not available", err=True)
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
