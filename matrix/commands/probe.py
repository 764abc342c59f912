"""`probe REF…`: list every tag, resolve it, analyse its format and predict engine verdicts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from matrix.commands.common import is_quiet, registry_options
from matrix.commands.show import print_table
from matrix.errors import MatrixError
from matrix.observations import new_run_id, write_observations, write_shard
from matrix.probe import Prober, ProbeRun, TagProbe, group_predictions
from matrix.reference import Repository, parse_repository
from matrix.registry import CredentialStore, ManifestStore, RegistryClient
from matrix.registry.client import DEFAULT_DEADLINE


def _default_data_dir() -> Path:
    return Path(os.environ.get("PULL_MATRIX_DATA", "data"))


@click.command("probe")
@click.argument("references", nargs=-1, required=True, metavar="REF [REF…]")
@registry_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the observations to exactly this CSV file (replaced atomically). "
    "Default: a new shard <data>/observations/<run-id>.csv.",
)
@click.option(
    "--data",
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_data_dir,
    show_default="$PULL_MATRIX_DATA or ./data",
    help="Where shards and the manifest store (<data>/manifests) live.",
)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Manifest store directory instead of <data>/manifests.",
)
@click.option(
    "--verify-blobs",
    is_flag=True,
    help="Download every layer and config in full and check digest and size (default: HEAD).",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=1.0),
    default=DEFAULT_DEADLINE,
    show_default=True,
    metavar="SECONDS",
    help="Longest time one registry request may take, answer included; then it counts as a "
    "network failure.",
)
@click.option("--run-id", help="Run id recorded with every observation (default: time-based).")
@click.pass_context
def command(
    ctx: click.Context,
    references: tuple[str, ...],
    insecure: tuple[str, ...],
    platforms: list[str],
    tags: list[str] | None,
    out: Path | None,
    data_dir: Path,
    store_dir: Path | None,
    verify_blobs: bool,
    deadline: float,
    run_id: str | None,
) -> None:
    """Probe the repositories REF (e.g. kivy/buildozer, ghcr.io/kivy/buildozer,
    127.0.0.1:5000/demo/app) on their registries.

    For every tag (or only --tags): resolve its digest with HEAD, fetch manifests not yet in the
    manifest store, analyse the format (image, index, schema1, not-an-image), check that the
    blobs of each --platform are there, and predict the verdict of each reference engine
    version. One observation per tag and platform is written; a summary table follows.

    Only anonymous access is used unless credentials are found: PULL_MATRIX_USERNAME_<HOST> and
    PULL_MATRIX_PASSWORD_<HOST> (HOST upper-cased, other characters as _, e.g.
    PULL_MATRIX_PASSWORD_GHCR_IO), PULL_MATRIX_REGISTRY_AUTH (JSON like the `auths` map of
    Docker's config file), or ~/.docker/config.json ($DOCKER_CONFIG). Tokens are kept in
    memory only.

    Manifest GETs (what Docker Hub counts against its pull limit) are printed per registry at
    the end; a second run over unchanged tags makes none.
    """
    try:
        repositories = [parse_repository(reference) for reference in references]
    except MatrixError as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from exc
    run_id = run_id or new_run_id()
    store = ManifestStore(store_dir or data_dir / "manifests")
    console = Console(stderr=True)
    show_progress = not is_quiet(ctx) and console.is_terminal

    with RegistryClient(
        insecure=insecure, credentials=CredentialStore(), store=store, deadline=deadline
    ) as client:
        prober = Prober(client, run_id, platforms, verify_blobs=verify_blobs)
        try:
            _probe_all(prober, repositories, tags, console, show_progress)
        except KeyboardInterrupt:
            # Keep what was observed before the interruption.
            written = _write(prober.run, out, data_dir)
            click.echo(
                f"interrupted; kept {len(prober.run.observations)} observations in {written}",
                err=True,
            )
            raise
        gets = dict(client.manifest_gets)

    run = prober.run
    written = _write(run, out, data_dir)
    if not is_quiet(ctx):
        print_table(Console(), summary_table(run, platforms))
        for repository, reason in run.incomplete.items():
            click.echo(f"warning: tag list of {repository} is incomplete: {reason}", err=True)
    click.echo(f"wrote {len(run.observations)} observations to {written}", err=True)
    registries = sorted({repository.registry for repository in repositories} | set(gets))
    counts = ", ".join(f"{host}={gets.get(host, 0)}" for host in registries)
    click.echo(f"manifest GETs: {counts}")
    if any(observation.outcome == "error" for observation in run.observations):
        sys.exit(1)


def _probe_all(
    prober: Prober,
    repositories: list[Repository],
    tags: list[str] | None,
    console: Console,
    show_progress: bool,
) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as bar:
        for repository in repositories:
            task = bar.add_task(f"listing {repository}", total=None)
            names = prober.list_tags(repository, tags)
            bar.update(task, total=len(names), description=str(repository))
            for name in names:
                prober.probe_tag(repository, name)
                bar.advance(task)


def _write(run: ProbeRun, out: Path | None, data_dir: Path) -> Path:
    if out is not None:
        return write_observations(run.observations, out)
    return write_shard(run.observations, data_dir, run.run_id)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else ""


def summary_table(run: ProbeRun, platforms: list[str]) -> Table:
    """One row per tag: digest, kind, platforms offered and the predictions per platform."""
    table = Table(title=f"probe {run.run_id}", show_lines=False)
    for name in ("repository", "tag", "digest", "kind", "platforms"):
        table.add_column(name, overflow="fold")
    for platform in platforms:
        table.add_column(f"predicted {platform}", overflow="fold")
    for probe in sorted(run.tags, key=lambda p: (str(p.repository), p.tag)):
        table.add_row(*_summary_row(probe, platforms))
    return table


def _summary_row(probe: TagProbe, platforms: list[str]) -> list[str]:
    tag = probe.tag or "(tag list)"
    analysis = probe.analysis
    if analysis is None:
        failure = probe.failure or "unknown"
        return [str(probe.repository), tag, "", f"[red]{failure}[/]", "", *([""] * len(platforms))]
    offered = ", ".join(analysis.platforms) if analysis.kind == "index" else analysis.platform
    cells = [group_predictions(probe.predicted.get(platform, {})) for platform in platforms]
    return [str(probe.repository), tag, _short(analysis.digest), analysis.kind, offered, *cells]
