"""`classify MESSAGE`: the class of an engine or registry error message."""

from __future__ import annotations

import sys

import click

from matrix.classify import CLASS_INFO, classify


@click.command("classify")
@click.argument("message", nargs=-1, required=True)
def command(message: tuple[str, ...]) -> None:
    """Print the class of MESSAGE (use - to read it from stdin), its meaning and what to do.

    The first word of the first line is the class.
    """
    text = " ".join(message)
    if text == "-":
        text = sys.stdin.read()
    error_class = classify(text)
    info = CLASS_INFO[error_class]
    click.echo(f"{error_class} ({info.title})")
    click.echo(info.explanation)
    click.echo(f"What to do: {info.action}")
