"""Build the site with MkDocs from a data directory, the way `python -m matrix site` does."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from matrix.errors import ConfigError

log = logging.getLogger(__name__)

DATA_ENV = "PULL_MATRIX_DATA"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def find_config(config_file: Path | None = None) -> Path:
    """mkdocs.yml: the one given, else in the current directory, else beside the package."""
    candidates = (
        [config_file] if config_file else [Path("mkdocs.yml"), _PACKAGE_ROOT / "mkdocs.yml"]
    )
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"no mkdocs.yml found (looked at {', '.join(map(str, candidates))})")


def build_site(
    data_dir: Path, out: Path, config_file: Path | None = None, strict: bool = True
) -> float:
    """Build the site from the shards under `data_dir` into `out`; returns the seconds it took.

    The data directory reaches the MkDocs hooks through $PULL_MATRIX_DATA, which is restored
    afterwards.
    """
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config_path = find_config(config_file)
    started = time.perf_counter()
    previous = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = str(Path(data_dir).resolve())
    try:
        config = load_config(
            config_file=str(config_path), site_dir=str(Path(out).resolve()), strict=strict
        )
        build(config)
    finally:
        if previous is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = previous
    seconds = time.perf_counter() - started
    log.info("built the site from %s into %s in %.1fs", data_dir, out, seconds)
    return seconds
