"""Fixtures for engine tests: the lab's four real engines, and the image shapes on a registry."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrix.engines.model import Engine
from matrix.engines.provision import lab_engines as start_lab_engines
from matrix.lab import engines as lab
from matrix.lab.images import publish_shapes
from matrix.lab.registry import Registry

SHAPES_REPOSITORY = "shapes/pull"


@pytest.fixture(scope="session")
def engine_lab_dir() -> Iterator[Path]:
    """A short lab directory of its own (the engines' Unix sockets live below it)."""
    if os.geteuid() != 0:
        pytest.skip("the lab's engines run as root")
    directory = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    try:
        yield directory
    finally:
        lab.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_engines(engine_lab_dir: Path) -> list[Engine]:
    """The lab's four engines (20.10.5, 20.10.24, 26.1.5, 28.5.2), up for the whole session.

    They are stopped when the session ends, by `engine_lab_dir`, even if starting failed half way.
    """
    return start_lab_engines(engine_lab_dir)


@pytest.fixture(scope="session")
def shapes(registry: Registry) -> dict[str, str]:
    """One tag per image shape in `shapes/pull` on the session registry: tag -> digest."""
    return publish_shapes(registry.host, SHAPES_REPOSITORY)


def engine_of(engines: list[Engine], version: str) -> Engine:
    """The engine whose reported version is `version` plus Debian's repack suffix."""
    for engine in engines:
        if engine.version.split("+", 1)[0] == version:
            return engine
    raise LookupError(f"no engine {version} among {[e.version for e in engines]}")
