"""Build the site with MkDocs from a data directory, the way `python -m matrix site` does.

MkDocs empties the output directory before it writes a build. So that a mistyped `--out` cannot
delete a source tree or the observations, every build leaves a marker file (`MARKER`) in its
output directory, and a build refuses a directory that is neither empty nor marked.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from matrix.errors import ConfigError

log = logging.getLogger(__name__)

DATA_ENV = "PULL_MATRIX_DATA"
# Set to "1" while a build may go on without a data directory (`site --allow-empty`).
ALLOW_EMPTY_ENV = "PULL_MATRIX_ALLOW_EMPTY"
# A dot file: MkDocs keeps dot files when it empties the output directory.
MARKER = ".pull-matrix-site"
MARKER_TEXT = (
    "This directory holds a site built by `python -m matrix site`; the next build replaces\n"
    "everything in it.\n"
)
# Builds from before the marker existed are known by the site's own stylesheet.
LEGACY_SIGN = "assets/pull-matrix.css"
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


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_output(out: Path, keep: tuple[Path, ...] = ()) -> None:
    """Raise ConfigError unless `out` may be emptied: missing, empty, or marked as a site build.

    `keep` are paths the build reads (data directory, mkdocs.yml, docs): `out` must not hold them.
    """
    out = Path(out).resolve()
    for path in keep:
        if _inside(Path(path).resolve(), out):
            raise ConfigError(
                f"refusing to build the site into {out}: the build would delete {path}, "
                "which it reads; choose another output directory"
            )
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"refusing to build the site into {out}: it is not a directory")
    if (out / MARKER).is_file() or not any(out.iterdir()):
        return
    if (out / LEGACY_SIGN).is_file():
        log.info("%s is a site build from before the marker file; replacing it", out)
        return
    raise ConfigError(
        f"refusing to build the site into {out}: it is not empty and holds no earlier site "
        f"build (no {MARKER} file), and a build deletes everything in it; choose a new or "
        "empty directory"
    )


def mark_output(out: Path) -> None:
    """Mark `out` as a site build, so that the next build may replace it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def check_data(data_dir: Path, allow_empty: bool = False) -> None:
    """Raise ConfigError when the data directory is missing, unless an empty site is wanted."""
    path = Path(data_dir)
    if path.is_dir() or (allow_empty and not path.exists()):
        return
    if path.exists():
        raise ConfigError(f"the data directory {path} is not a directory")
    raise ConfigError(
        f"there is no data directory {path}; give the directory of observation shards with "
        "--data, or --allow-empty to build a site that says the matrix is not published yet"
    )


def build_site(
    data_dir: Path,
    out: Path,
    config_file: Path | None = None,
    strict: bool = True,
    allow_empty: bool = False,
) -> float:
    """Build the site from the shards under `data_dir` into `out`; returns the seconds it took.

    A missing `data_dir` is a ConfigError unless `allow_empty`; so is an `out` that is neither
    empty nor an earlier build (see `check_output`). The data directory reaches the MkDocs hooks
    through $PULL_MATRIX_DATA, which is restored afterwards.
    """
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config_path = find_config(config_file)
    check_data(data_dir, allow_empty)
    check_output(out, (Path(data_dir), config_path))
    started = time.perf_counter()
    saved = {name: os.environ.get(name) for name in (DATA_ENV, ALLOW_EMPTY_ENV)}
    os.environ[DATA_ENV] = str(Path(data_dir).resolve())
    os.environ[ALLOW_EMPTY_ENV] = "1" if allow_empty else ""
    try:
        config = load_config(
            config_file=str(config_path), site_dir=str(Path(out).resolve()), strict=strict
        )
        build(config)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    seconds = time.perf_counter() - started
    log.info("built the site from %s into %s in %.1fs", data_dir, out, seconds)
    return seconds
