"""`collect` as a user runs it: probe-only against a real registry, twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from matrix.lab.images import publish_shapes
from matrix.lab.registry import Registry


def _collect(config: Path, data: Path) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "matrix",
            "collect",
            "--config",
            str(config),
            "--probe-only",
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_collect_reports_gets_per_registry_and_a_second_run_costs_none(
    registry: Registry, tmp_path: Path
) -> None:
    publish_shapes(registry.host, "collect/shapes")
    config = tmp_path / "pull-matrix.toml"
    config.write_text(
        f"""
[[images]]
name = "shapes"
refs = ["{registry.host}/collect/shapes"]
platforms = ["linux/amd64"]

[engines]
provisioner = "host"
endpoint = "unix:///nonexistent/docker.sock"  # not used: --probe-only
versions = ["28.5.2"]

[registries."{registry.host}"]
insecure = true
budget = 50
""",
        encoding="utf-8",
    )

    first = _collect(config, tmp_path / "data")
    second = _collect(config, tmp_path / "data")

    assert f"{registry.host}: " in first and "(budget 50)" in first
    assert "counted manifest GETs: 0" not in first
    assert "counted manifest GETs: 0" in second
    assert "build-cache-on-tag" in second, "the matrix of earlier runs is printed again"
    assert len(list((tmp_path / "data" / "observations").glob("*.csv"))) == 2
