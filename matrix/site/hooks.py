"""MkDocs hooks that add the generated pages to a build, in memory.

`on_config` loads the observation tables once and sets the navigation; `on_files` adds one
Markdown file per generated page plus the site's JavaScript and CSS; `on_page_content` puts the
rendered HTML body in place of a generated page's placeholder. The standalone files (tag pages,
data, badges, feed) are written by child processes started in `on_files`, once MkDocs has
emptied the site directory; `on_post_build` waits for them.

The data directory is `$PULL_MATRIX_DATA` (relative to the working directory), else
`extra.pull_matrix.data` in mkdocs.yml (relative to that file), else `data` beside it. Without
observations every page says "not published (yet?)"; but a data directory named in
$PULL_MATRIX_DATA that does not exist fails the build (a typo there would publish an empty
matrix) unless $PULL_MATRIX_ALLOW_EMPTY is `1`.

The site directory must be empty, missing or an earlier build: every build leaves the marker
file `matrix.site.build.MARKER` in it (see `matrix.site.build.check_output`).
"""

from __future__ import annotations

import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page as MkDocsPage

from matrix.errors import ConfigError, MatrixError
from matrix.site import generator, model
from matrix.site.build import ALLOW_EMPTY_ENV, check_output, mark_output

log = logging.getLogger("mkdocs.plugins.pull_matrix")

DATA_ENV = "PULL_MATRIX_DATA"
STATIC = ("pull-matrix.js", "pull-matrix.css")

_state: dict[str, Any] = {}


def data_dir(config: MkDocsConfig) -> Path:
    """Where the observation shards are: $PULL_MATRIX_DATA (relative to the working directory,
    like any path given on a command line), else mkdocs.yml (relative to that file)."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).resolve()
    extra = config.extra.get("pull_matrix") or {}
    if not isinstance(extra, dict):
        raise PluginError("extra.pull_matrix in mkdocs.yml must be a mapping")
    path = Path(str(extra.get("data") or "data"))
    if not path.is_absolute():
        path = Path(config.config_file_path or ".").resolve().parent / path
    return path


def _handwritten(config: MkDocsConfig) -> list[str]:
    docs = Path(config.docs_dir)
    found = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    return [path for path in found if not path.startswith("generated/")]


def _check_paths(config: MkDocsConfig, source: Path) -> None:
    if os.environ.get(DATA_ENV) and not source.exists() and os.environ.get(ALLOW_EMPTY_ENV) != "1":
        raise PluginError(
            f"there is no data directory {source} (from ${DATA_ENV}); "
            f"set ${ALLOW_EMPTY_ENV}=1 to build a site without observations"
        )
    keep = [source, Path(config.docs_dir)]
    if config.config_file_path:
        keep.append(Path(config.config_file_path))
    try:
        check_output(Path(config.site_dir), tuple(keep))
    except ConfigError as exc:
        raise PluginError(str(exc)) from exc
    # Marked before anything is written, so that a build that fails half-way leaves a
    # directory the next build may still replace (MkDocs keeps dot files when it cleans).
    mark_output(Path(config.site_dir))


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    source = data_dir(config)
    _check_paths(config, source)
    try:
        data = model.load_data(source)
    except MatrixError as exc:
        raise PluginError(f"cannot read observations under {source}: {exc}") from exc
    if data.empty:
        log.info("no observations under %s: the site says %r", source, model.NOT_PUBLISHED)
    pages = generator.pages(data)
    handwritten = _handwritten(config)
    clash = sorted({page.src_uri for page in pages} & set(handwritten))
    if clash:
        raise PluginError(f"docs/ has files the site generates; remove them: {clash}")
    _state.update(data=data, pages={page.src_uri: page for page in pages})
    if not config.nav:
        config.nav = generator.nav(data, handwritten)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    # The site directory has been emptied by now: start writing the standalone files, which
    # goes on in child processes while MkDocs renders the pages.
    _state["wait"] = generator.start_standalone(
        _state["data"],
        Path(config.site_dir),
        config.site_url or "",
        stylesheets=theme_stylesheets(files),
    )
    for page in _state["pages"].values():
        files.append(File.generated(config, page.src_uri, content=page.markdown))
    static = resources.files("matrix.site") / "static"
    for name in STATIC:
        content = (static / name).read_text(encoding="utf-8")
        files.append(File.generated(config, f"assets/{name}", content=content))
    return files


# The theme's own stylesheets (Material names them with a content hash).
_THEME_CSS = re.compile(r"assets/stylesheets/(main|palette)\.[0-9a-f]+\.min\.css")


def theme_stylesheets(files: Files) -> tuple[str, ...]:
    """The theme's stylesheets among the build's files, main first, for the standalone pages."""
    found = [f.src_uri for f in files if _THEME_CSS.fullmatch(f.src_uri)]
    return tuple(
        sorted(found, key=lambda uri: (not uri.startswith("assets/stylesheets/main"), uri))
    )


def relative_root(url: str) -> str:
    """The relative path from a page's URL to the site root: `matrix/x/` -> `../../`."""
    return "../" * url.count("/") or "./"


def on_page_content(html: str, page: MkDocsPage, config: MkDocsConfig, files: Files) -> str | None:
    generated = _state["pages"].get(page.file.src_uri)
    if generated is None:
        return html
    return generated.body(relative_root(page.url))


def on_post_build(config: MkDocsConfig) -> None:
    try:
        _state.pop("wait")()
    except MatrixError as exc:
        raise PluginError(str(exc)) from exc


def on_build_error(error: Exception) -> None:
    """Wait for the standalone writers even when the build fails, so none is left running."""
    wait = _state.pop("wait", None)
    if wait is not None:
        try:
            wait()
        except MatrixError as exc:
            log.warning("%s", exc)
