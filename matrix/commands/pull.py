"""`pull REF… --engine ENDPOINT…`: pull tags with real Docker engines and record what happened."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from matrix.analysis import Analysis
from matrix.commands.common import is_quiet, registry_options
from matrix.engines.model import Engine, check_endpoint
from matrix.engines.provision import host_engines, lab_engines
from matrix.engines.pull import AnalysisKey, analysis_key, pull_many
from matrix.errors import EngineError, MatrixError
from matrix.observations import Observation, new_run_id, write_observations
from matrix.probe import Prober
from matrix.reference import Reference, parse_reference
from matrix.registry import CredentialStore, RegistryClient

_COLOURS = {"ok": "green", "unknown": "yellow"}


@click.command("pull")
@click.argument("references", nargs=-1, required=True, metavar="REF [REF…]")
@click.option(
    "--engine",
    "endpoints",
    multiple=True,
    metavar="ENDPOINT",
    help="A running engine: unix:///path/docker.sock or tcp://127.0.0.1:PORT; repeatable.",
)
@click.option("--lab", "use_lab", is_flag=True, help="Also pull with the lab's engines.")
@click.option(
    "--lab-engine",
    "lab_versions",
    multiple=True,
    metavar="VERSION",
    help="With --lab: only this engine version or Debian suite; repeatable.",
)
@click.option(
    "--lab-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The lab's state directory [default: $PULL_MATRIX_LAB_DIR or /tmp/pull-matrix-lab].",
)
@registry_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the observations to this CSV file (replaced atomically).",
)
@click.option(
    "--no-analysis",
    is_flag=True,
    help="Do not read the tags' manifests first (no predictions, no explained causes).",
)
@click.option("--run-id", help="Run id recorded with every observation (default: time-based).")
@click.pass_context
def command(
    ctx: click.Context,
    references: tuple[str, ...],
    endpoints: tuple[str, ...],
    use_lab: bool,
    lab_versions: tuple[str, ...],
    lab_dir: Path | None,
    insecure: tuple[str, ...],
    platforms: list[str],
    tags: list[str] | None,
    out: Path,
    no_analysis: bool,
    run_id: str | None,
) -> None:
    """Pull REF with every engine, for every --platform, and write one observation per pull.

    REF is a tag or digest reference (127.0.0.1:5000/demo/app:1.0), or a repository: then
    --tags, or every tag the registry lists. Each pull starts without the image and removes it
    afterwards. Unless --no-analysis, the tags' manifests are read first, so that each
    observation carries the predicted outcome and, for a failure, its explained cause.
    An engine that cannot be reached gets outcome `error` (exit status 1); the others go on.
    """
    if not endpoints and not use_lab:
        raise click.UsageError("name at least one --engine ENDPOINT, or use --lab")
    run_id = run_id or new_run_id()
    quiet = is_quiet(ctx)

    with RegistryClient(insecure=insecure, credentials=CredentialStore()) as client:
        prober = Prober(client, run_id, platforms)
        targets = _targets(prober, references, tags)
        analyses = {} if no_analysis else _analyse(prober, targets)
    if not targets:
        raise click.ClickException("no tags to pull")

    engines = _engines(endpoints, use_lab, lab_versions, lab_dir, insecure)
    observations = _pull(engines, targets, platforms, analyses, run_id, quiet)
    written = write_observations(observations, out)
    if not quiet:
        _stdout_console().print(summary_table(engines, observations))
    click.echo(f"wrote {len(observations)} observations to {written}", err=True)
    if any(observation.outcome == "error" for observation in observations):
        sys.exit(1)


def _targets(prober: Prober, references: tuple[str, ...], tags: list[str] | None) -> list[str]:
    """Every tag or digest reference to pull, in the order given."""
    targets: list[str] = []
    for text in references:
        try:
            reference = parse_reference(text)
        except MatrixError as exc:
            raise click.BadParameter(str(exc), param_hint="REF") from exc
        if reference.tag or reference.digest:
            targets.append(str(reference))
            continue
        names = prober.list_tags(reference.repository, tags)
        if not names:
            click.echo(f"warning: no tags to pull in {reference.repository}", err=True)
        targets += [reference.repository.with_tag(name) for name in names]
    return list(dict.fromkeys(targets))


def _analyse(prober: Prober, targets: list[str]) -> dict[AnalysisKey, Analysis]:
    """The format analysis of each tag (tags whose manifests cannot be read have none)."""
    analyses = {}
    for target in targets:
        reference: Reference = parse_reference(target)
        if not reference.tag or reference.digest:
            continue
        probe = prober.probe_tag(reference.repository, reference.tag)
        if probe.analysis is not None:
            analyses[analysis_key(target)] = probe.analysis
    return analyses


def _engines(
    endpoints: tuple[str, ...],
    use_lab: bool,
    lab_versions: tuple[str, ...],
    lab_dir: Path | None,
    insecure: tuple[str, ...],
) -> list[Engine]:
    engines = [_host_engine(endpoint) for endpoint in endpoints]
    if use_lab:
        engines += lab_engines(lab_dir, list(lab_versions) or None, insecure)
    return engines


def _host_engine(endpoint: str) -> Engine:
    """The engine at `endpoint`; one that does not answer is kept, so its pulls are recorded
    as harness errors next to the other engines' results."""
    try:
        [engine] = host_engines([endpoint])
    except EngineError as exc:
        click.echo(f"warning: {exc}", err=True)
        return Engine(check_endpoint(endpoint), "", name=f"host {endpoint}")
    return engine


def _pull(
    engines: list[Engine],
    targets: list[str],
    platforms: list[str],
    analyses: dict[AnalysisKey, Analysis],
    run_id: str,
    quiet: bool,
) -> list[Observation]:
    console = Console(stderr=True)
    columns = (TextColumn("pulling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    disabled = quiet or not console.is_terminal
    with Progress(*columns, console=console, disable=disabled, transient=True) as bar:
        task = bar.add_task("pull", total=len(engines) * len(targets) * len(platforms))
        return pull_many(
            engines,
            targets,
            platforms,
            analyses=analyses,
            run_id=run_id,
            on_observation=lambda _: bar.advance(task),
        )


def _stdout_console() -> Console:
    """The console for the summary; written to a file or pipe, lines are not cut at 80 columns."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    return console


def column_label(engine: Engine) -> str:
    """An engine's column heading: its version, or its endpoint when it never answered."""
    return engine.version or f"unreachable {engine.endpoint}"


def summary_table(engines: list[Engine], observations: list[Observation]) -> Table:
    """One row per (tag, platform), one column per engine, the verdict in each cell.

    `observations` come as `pull_many` returns them: each engine's pulls together, in the
    order of `engines`.
    """
    per_engine = len(observations) // len(engines) if engines else 0
    table = Table(title="pulls")
    for name in ("reference", "platform", *map(column_label, engines)):
        table.add_column(name, overflow="fold")
    rows: dict[tuple[str, str], list[Observation | None]] = {}
    for index, observation in enumerate(observations):
        reference = f"{observation.registry}/{observation.repository}:{observation.tag}"
        cells = rows.setdefault((reference, observation.platform), [None] * len(engines))
        cells[index // per_engine] = observation
    for (reference, platform), cells in sorted(rows.items()):
        table.add_row(reference, platform, *map(_cell, cells))
    return table


def _cell(observation: Observation | None) -> str:
    if observation is None:
        return ""
    if observation.outcome == "error":
        return "[red]engine error[/]"
    verdict = observation.verdict
    colour = _COLOURS.get(verdict, "red")
    mark = " (!)" if observation.finding else ""
    return f"[{colour}]{verdict}[/]{mark}"
