"""Options and helpers shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from matrix.mediatypes import safe_text
from matrix.platforms import DEFAULT_PLATFORMS, parse_platform
from matrix.reference import is_valid_tag

F = TypeVar("F", bound=Callable[..., Any])


def _split_tags(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if not value:
        return None
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    invalid = [tag for tag in tags if not is_valid_tag(tag)]
    if invalid:
        shown = ", ".join(repr(safe_text(tag, 60)) for tag in invalid[:5])
        raise click.BadParameter(
            f"not a valid tag name: {shown} (letters, digits, _ . -; at most 128; "
            "not starting with . or -)"
        )
    return tags


def _platforms(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    try:
        return [str(parse_platform(text)) for text in value] or list(DEFAULT_PLATFORMS)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def registry_options(function: F) -> F:
    """--insecure, --platform and --tags, as every command that talks to registries takes them."""
    function = click.option(
        "--tags",
        callback=_split_tags,
        metavar="A,B,C",
        help="Only these tags (comma-separated) instead of every published tag.",
    )(function)
    function = click.option(
        "--platform",
        "platforms",
        multiple=True,
        callback=_platforms,
        metavar="OS/ARCH[/VARIANT]",
        help="Platform to check; repeatable. Default: linux/amd64 and linux/arm64.",
    )(function)
    function = click.option(
        "--insecure",
        multiple=True,
        metavar="HOST[:PORT]",
        help="Use plain HTTP (or unverified TLS) for this registry host only; repeatable.",
    )(function)
    return function


def is_quiet(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.obj and root.obj.get("quiet"))
