"""The scheduled job's scripts end to end: probe, plan within budget, pull with real engines,
merge, and a second run that pulls only what the first one deferred."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from matrix.engines.model import Engine
from matrix.lab.registry import Registry
from matrix.observations import load
from matrix.plan import Plan
from tests.engines.conftest import SHAPES_REPOSITORY, engine_of

pytestmark = [pytest.mark.engines, pytest.mark.registry]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "ci"
VERSIONS = ("20.10.24", "26.1.5")


def _config(directory: Path, registry: Registry) -> Path:
    path = directory / "pull-matrix.toml"
    path.write_text(
        f'data_dir = "{directory / "data"}"\n'
        "[[images]]\n"
        'name = "shapes"\n'
        f'refs = ["{registry.host}/{SHAPES_REPOSITORY}"]\n'
        'platforms = ["linux/amd64"]\n'
        'tags = ["v2s2", "zstd"]\n'
        "[engines]\n"
        'provisioner = "lab"\n'
        f"versions = {json.dumps(list(VERSIONS))}\n"
        f'[registries."{registry.host}"]\n'
        "insecure = true\n"
        # Three single-manifest pulls fit; the fourth waits for the next run.
        "budget = 3\n",
        encoding="utf-8",
    )
    return path


def _script(config: Path, *args: str, **env: str) -> str:
    done = subprocess.run(
        [str(SCRIPTS / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={
            **os.environ,
            "PULL_MATRIX_CONFIG": str(config),
            "PULL_MATRIX_PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT),
            **env,
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _run_once(
    config: Path, directory: Path, engines: list[Engine], name: str
) -> tuple[Plan, list[str]]:
    incoming = directory / name
    plan_path = directory / f"{name}-plan.json"
    _script(config, "probe.sh", str(incoming))
    _script(config, "plan.sh", str(incoming), str(plan_path))
    for version in VERSIONS:
        _script(
            config,
            "pull.sh",
            version,
            "shapes",
            PULL_MATRIX_PLAN=str(plan_path),
            PULL_MATRIX_OUT=str(incoming),
            PULL_MATRIX_ENGINE=engine_of(engines, version).endpoint,
        )
    merged = _script(config, "merge.sh", str(incoming)).split()
    return Plan.read(plan_path), merged


def test_two_scheduled_runs_pull_incrementally_within_budget(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str], tmp_path: Path
) -> None:
    config = _config(tmp_path, registry)

    first, merged = _run_once(config, tmp_path, lab_engines, "run1")

    assert [(p.tag, p.version) for p in first.now] == [
        ("v2s2", "20.10.24"),
        ("v2s2", "26.1.5"),
        ("zstd", "20.10.24"),
    ]
    assert [(p.tag, p.version) for p in first.deferred] == [("zstd", "26.1.5")]
    assert len(merged) == 3  # the probe shard and one pull shard per engine
    data = load([tmp_path / "data"])
    pulls = data[data["method"] == "pull"]
    verdicts = {(r.tag, r.client_version.split("+")[0]): r.verdict for r in pulls.itertuples()}
    assert verdicts == {
        ("v2s2", "20.10.24"): "ok",
        ("v2s2", "26.1.5"): "ok",
        ("zstd", "20.10.24"): "layer-extract-failed",
    }

    second, _ = _run_once(config, tmp_path, lab_engines, "run2")

    assert [(p.tag, p.version, p.reason) for p in second.now] == [("zstd", "26.1.5", "new tag")]
    assert second.deferred == []
    data = load([tmp_path / "data"])
    latest = data[(data["method"] == "pull") & (data["tag"] == "zstd")]
    assert sorted(pd.unique(latest["verdict"])) == ["layer-extract-failed", "ok"]
