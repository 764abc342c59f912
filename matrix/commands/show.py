"""`show FILE…`: the verdict matrix of observation files or data directories, as a table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from matrix.capabilities import REFERENCE_VERSIONS, parse_engine_version
from matrix.errors import ConfigError
from matrix.observations import latest, load

PREDICTED_MARK = "*"
MAX_FILE_WIDTH = 1000
ROW_KEY = ["location", "tag", "platform"]


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return parse_engine_version(version)
    except ConfigError:
        return (10**6,)


def _minor(version: str) -> str:
    return ".".join(str(part) for part in _version_key(version)[:2])


def _predictions(details: str) -> dict[str, str]:
    try:
        data = json.loads(details) if details else {}
    except ValueError:
        return {}
    found = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items() if str(k) in REFERENCE_VERSIONS}


def _styled(verdict: str, predicted: bool = False, finding: str = "") -> Text:
    if not verdict:
        return Text("")
    text = verdict + (PREDICTED_MARK if predicted else "") + (" !" if finding else "")
    style = "green" if verdict == "ok" else "red"
    return Text(text, style=f"{style} dim italic" if predicted else style)


def engine_columns(pulls: pd.DataFrame, with_predictions: bool) -> list[tuple[str, str]]:
    """(client, version) columns: engines that pulled, then reference versions none covers."""
    pulled = sorted(
        {(str(c), str(v)) for c, v in zip(pulls["client"], pulls["client_version"], strict=True)},
        key=lambda item: (_version_key(item[1]), item[0]),
    )
    columns = list(pulled)
    if with_predictions:
        covered = {_minor(version) for _, version in pulled}
        columns += [("", v) for v in REFERENCE_VERSIONS if v not in covered]
        columns.sort(key=lambda item: (_version_key(item[1]), item[0] == ""))
    return columns


def verdict_table(frame: pd.DataFrame, with_predictions: bool = True) -> Table:
    """Rows: registry/repository, tag, platform. Columns: the probe's verdict and each engine."""
    frame = latest(frame).assign(location=lambda f: f["registry"] + "/" + f["repository"])
    probes = frame[frame["method"] == "probe"]
    pulls = frame[frame["method"] == "pull"]
    columns = engine_columns(pulls, with_predictions)

    locations = sorted(set(frame["location"]))
    single = len(locations) == 1
    title = f"pull verdicts of {locations[0]}" if single else "pull verdicts"
    table = Table(title=title, caption=_caption(with_predictions))
    identity = (
        ("tag", "platform", "kind")
        if single
        else ("registry/repository", "tag", "platform", "kind")
    )
    for name in identity:
        table.add_column(name, no_wrap=True)
    table.add_column("probe", overflow="fold")
    for client, version in columns:
        table.add_column(f"{client} {version}".strip(), overflow="fold", min_width=6)

    probe_by_row = {tuple(row[k] for k in ROW_KEY): row for _, row in probes.iterrows()}
    pull_cells = {
        (*(row[k] for k in ROW_KEY), row["client"], row["client_version"]): row
        for _, row in pulls.iterrows()
    }
    keys = sorted(set(probe_by_row) | {key[:3] for key in pull_cells})
    for key in keys:
        probe = probe_by_row.get(key)
        predicted = _predictions(probe["details"]) if probe is not None else {}
        cells: list[Text | str] = [] if single else [key[0]]
        cells += [key[1] or "(tag list)", key[2]]
        cells.append(probe["kind"] if probe is not None else "")
        cells.append(_styled(probe["verdict"]) if probe is not None else "")
        for client, version in columns:
            cells.append(_cell(pull_cells.get((*key, client, version)), predicted, version))
        table.add_row(*cells)
    return table


def _cell(pull: pd.Series | None, predicted: dict[str, str], version: str) -> Text:
    if pull is not None:
        return _styled(pull["verdict"], finding=pull["finding"])
    guess = predicted.get(version) or predicted.get(_minor(version), "")
    return _styled(guess, predicted=True)


def _caption(with_predictions: bool) -> str:
    text = "engine cells: latest pull verdict; ! the prediction was wrong (a finding)"
    if with_predictions:
        text += f"; {PREDICTED_MARK} predicted from the probe's format analysis, not pulled"
    return text


@click.command("show")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--predictions/--no-predictions",
    default=True,
    help="Fill engine cells without a pull with the probe's prediction (marked *).",
)
@click.option("--width", type=int, help="Table width in columns (default: the terminal's).")
def command(sources: Iterable[Path], predictions: bool, width: int | None) -> None:
    """Show the verdict matrix of observation FILEs or data directories.

    One row per registry/repository, tag and platform, from the latest observation of each
    (`observations.latest`). The probe column is the registry-side verdict; each engine column
    the verdict of the latest pull with that engine version. Where an engine has not pulled,
    the probe's prediction stands in, marked with *.
    """
    frame = load(list(sources))
    console = Console(width=width)
    if frame.empty:
        console.print("no observations (yet?) in " + ", ".join(str(s) for s in sources))
        return
    print_table(console, verdict_table(frame, predictions), width)


def print_table(console: Console, table: Table, width: int | None = None) -> None:
    """Print `table`; into a file or pipe at its natural width, so that no cell is folded."""
    if width is None and not console.is_terminal:
        natural = Console(width=MAX_FILE_WIDTH).measure(table).maximum
        console = Console(file=console.file, width=min(natural, MAX_FILE_WIDTH))
    console.print(table)
