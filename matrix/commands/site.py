"""`site`: build the static site from the recorded observation tables."""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
from pathlib import Path

import click

from matrix.errors import ConfigError
from matrix.site.build import DATA_ENV, build_site, check_data, check_output, find_config

log = logging.getLogger(__name__)


@click.command("site")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Directory of observation shards (default: ${DATA_ENV} or ./data).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("site"),
    show_default=True,
    help="Where to write the site: a new or empty directory, or an earlier build (whose "
    "contents are replaced).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="mkdocs.yml to use (default: ./mkdocs.yml, else the one beside the package).",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Build even when the data directory does not exist (every page says the matrix is "
    "not published yet).",
)
@click.option("--serve", is_flag=True, help="Serve the built site on 127.0.0.1 afterwards.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port for --serve.")
def command(
    data_dir: Path | None,
    out: Path,
    config_file: Path | None,
    allow_empty: bool,
    serve: bool,
    port: int,
) -> None:
    """Render the site from every observation shard under --data into --out."""
    data_dir = data_dir or Path(os.environ.get(DATA_ENV, "data"))
    try:
        config = find_config(config_file)
        check_data(data_dir, allow_empty)
        check_output(out, (data_dir, config))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    seconds = build_site(data_dir, out, config, allow_empty=allow_empty)
    click.echo(f"site built from {data_dir} into {out} in {seconds:.1f}s", err=True)
    if serve:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
            click.echo(f"serving {out} at http://127.0.0.1:{port}/ (Ctrl-C stops)", err=True)
            with contextlib.suppress(KeyboardInterrupt):
                server.serve_forever()
