"""The `pull-matrix` command line (also `python -m matrix`).

Each command lives in its own module under `matrix.commands`; this module only assembles them and
sets up logging, so library code stays silent unless a command asks for output.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from matrix import __version__
from matrix.errors import MatrixError

# command name -> module under matrix.commands that defines a click command called `command`
COMMANDS = {
    "probe": "probe",
    "classify": "classify",
    "show": "show",
    "pull": "pull",
    "collect": "collect",
    "lab": "lab",
    "site": "site",
    "plan": "plan",
    "alert": "alert",
}


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs, so `--help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            name
            for name, module in COMMANDS.items()
            if importlib.util.find_spec(f"matrix.commands.{module}") is not None
        )

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = COMMANDS.get(name)
        if module_name is None or name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"matrix.commands.{module_name}")
        command: click.Command = module.command
        return command


def configure_logging(verbosity: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("matrix")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx and httpcore log every request at INFO/DEBUG with full URLs; keep them quiet.
    for noisy in ("httpx", "httpcore", "hpack", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pull-matrix")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Which Docker engine versions can pull which tags of an image, on which registry."""
    configure_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose


def main() -> None:
    try:
        # Without standalone mode click returns the code of `ctx.exit(n)` instead of exiting.
        code = cli(standalone_mode=False, obj={})
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except MatrixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
