"""The whole lab at once: registries (with the image family published) and engines.

Used by `lab up/down` and by `collect --lab`, so both bring the lab up the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from matrix.errors import LabError, MatrixError
from matrix.lab import engines, images, registries
from matrix.lab.state import Part

log = logging.getLogger(__name__)


def publish(lab_dir: Path, parts: Sequence[Part]) -> dict[str, dict[str, str]]:
    """Push the image family to the two registry roles (idempotent: same content, same digests)."""
    hosts = {part.role: part.endpoint for part in parts if part.kind != "engine"}
    login = registries.publisher_credentials(lab_dir)
    hub, ghcr = hosts["docker.io"], hosts["ghcr.io"]
    published = images.publish_family(hub, ghcr, credentials={hub: login, ghcr: login})
    for role, tags in sorted(published.items()):
        log.info("published %d tags to the %s role", len(tags), role)
    return published


def up(
    lab_dir: Path,
    *,
    ports: Mapping[str, int] | None = None,
    with_registries: bool = True,
    with_engines: bool = True,
    publish_images: bool = True,
    versions: Sequence[str] | None = None,
) -> list[Part]:
    """Start what is not running yet and return the parts that were asked for."""
    parts: list[Part] = []
    if with_registries:
        parts += registries.up(lab_dir, ports)
        if publish_images:
            publish(lab_dir, parts)
    if with_engines:
        hosts = [part.endpoint for part in registries.status(lab_dir)]
        if not hosts and ports:
            hosts = [f"127.0.0.1:{port}" for port in ports.values()]
        parts += engines.up(lab_dir, insecure_registries=hosts, versions=versions)
    return parts


def down(lab_dir: Path, *, with_registries: bool = True, with_engines: bool = True) -> None:
    """Stop the lab's parts; every part is tried even when another fails."""
    failures: list[str] = []
    if with_engines:
        try:
            engines.down(lab_dir)
        except MatrixError as exc:
            failures.append(f"engines: {exc}")
    if with_registries:
        try:
            registries.down(lab_dir)
        except MatrixError as exc:
            failures.append(f"registries: {exc}")
    if failures:
        raise LabError("; ".join(failures))


def status(lab_dir: Path, *, with_registries: bool = True, with_engines: bool = True) -> list[Part]:
    parts: list[Part] = []
    if with_registries:
        parts += registries.status(lab_dir)
    if with_engines:
        parts += engines.status(lab_dir)
    return parts
