"""`python -m matrix pull`: tags pulled with real engines, observations written as CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from matrix.cli import cli
from matrix.engines.model import Engine
from matrix.lab.registry import Registry
from tests.engines.conftest import SHAPES_REPOSITORY, engine_of

pytestmark = pytest.mark.engines


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-q", "pull", *args], obj={})
    return result.exit_code, result.output


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_pull_command_lists_tags_pulls_and_explains(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str], tmp_path: Path
) -> None:
    old = engine_of(lab_engines, "20.10.24")
    new = engine_of(lab_engines, "28.5.2")
    out = tmp_path / "pulls.csv"

    code, output = _run(
        [
            f"{registry.host}/{SHAPES_REPOSITORY}",
            "--tags",
            "zstd,build-cache-on-tag",
            "--engine",
            old.endpoint,
            "--engine",
            new.endpoint,
            "--platform",
            "linux/amd64",
            "--insecure",
            registry.host,
            "--out",
            str(out),
        ]
    )

    assert code == 0, output
    frame = _read(out)
    cells = {(row.tag, row.client_version): row for row in frame.itertuples()}
    assert len(frame) == 4
    zstd_old = cells[("zstd", old.version)]
    assert (zstd_old.outcome, zstd_old.error_class) == ("fail", "layer-extract-failed")
    assert zstd_old.predicted == "layer-extract-failed"
    assert "zstd" in zstd_old.cause
    zstd_new = cells[("zstd", new.version)]
    assert (zstd_new.outcome, zstd_new.digest) == ("ok", shapes["zstd"])
    cache_new = cells[("build-cache-on-tag", new.version)]
    assert (cache_new.error_class, cache_new.verdict) == ("registry-error", "not-an-image")
    assert set(frame["registry"]) == {registry.host}
    assert set(frame["repository"]) == {SHAPES_REPOSITORY}


def test_pull_command_takes_explicit_tags_and_reports_a_dead_engine(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str], tmp_path: Path
) -> None:
    alive = engine_of(lab_engines, "26.1.5")
    out = tmp_path / "pulls.csv"

    code, output = _run(
        [
            f"{registry.host}/{SHAPES_REPOSITORY}:v2s2",
            f"{registry.host}/{SHAPES_REPOSITORY}:schema1",
            "--engine",
            alive.endpoint,
            "--engine",
            f"unix://{tmp_path}/gone.sock",
            "--platform",
            "linux/amd64",
            "--no-analysis",
            "--out",
            str(out),
        ]
    )

    # The dead engine's pulls are harness errors; the live engine's pulls are all there.
    assert code == 1
    assert "does not answer" in output
    frame = _read(out)
    dead = frame[frame["client_version"] == ""]
    assert list(dead["outcome"]) == ["error", "error"]
    live = frame[frame["client_version"] == alive.version]
    assert list(live["outcome"]) == ["ok", "fail"]

    code, output = _run(
        [
            f"{registry.host}/{SHAPES_REPOSITORY}:v2s2",
            f"{registry.host}/{SHAPES_REPOSITORY}:schema1",
            "--engine",
            alive.endpoint,
            "--platform",
            "linux/amd64",
            "--no-analysis",
            "--out",
            str(out),
        ]
    )
    assert code == 0, output
    frame = _read(out)
    assert list(frame["tag"]) == ["v2s2", "schema1"]
    assert list(frame["error_class"]) == ["ok", "schema1-disabled"]
    assert list(frame["predicted"]) == ["", ""]


def test_pull_command_needs_an_engine(tmp_path: Path) -> None:
    code, output = _run(["127.0.0.1:1/demo/app:1.0", "--out", str(tmp_path / "x.csv")])
    assert code == 2
    assert "--engine" in output


def test_pull_command_uses_the_labs_engines(
    lab_engines: list[Engine],
    engine_lab_dir: Path,
    registry: Registry,
    shapes: dict[str, str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "pulls.csv"

    code, output = _run(
        [
            f"{registry.host}/{SHAPES_REPOSITORY}:schema1",
            "--lab",
            "--lab-dir",
            str(engine_lab_dir),
            "--lab-engine",
            "20.10.5",
            "--lab-engine",
            "sid",
            "--platform",
            "linux/amd64",
            "--insecure",
            registry.host,
            "--out",
            str(out),
        ]
    )

    assert code == 0, output
    frame = _read(out)
    assert list(frame["client_version"]) == [
        engine_of(lab_engines, "20.10.5").version,
        engine_of(lab_engines, "28.5.2").version,
    ]
    assert list(frame["error_class"]) == ["ok", "schema1-removed"]
    assert list(frame["verdict"]) == ["ok", "schema1-removed"]
    assert frame["cause"][1].startswith("the tag is a Docker schema 1 manifest")
