"""The entry scripts under scripts/ci/, run as the workflow runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from matrix.observations import load, write_shard
from tests.test_regressions import BROKEN, FakeGh, pulls

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "ci"


def write_config(directory: Path, refs: list[str], extra: str = "") -> Path:
    config = directory / "pull-matrix.toml"
    config.write_text(
        f'data_dir = "{directory / "data"}"\n'
        f'[[images]]\nname = "app"\nrefs = {json.dumps(refs)}\n'
        f'platforms = ["linux/amd64"]\n{extra}',
        encoding="utf-8",
    )
    return config


def run(script: str, *args: str, config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "PULL_MATRIX_CONFIG": str(config),
            "PULL_MATRIX_PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT),
            **env,
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_merge_never_overwrites_and_is_idempotent(tmp_path: Path) -> None:
    config = write_config(tmp_path, ["docker.io/kivy/buildozer"])
    incoming = tmp_path / "incoming"
    write_shard(pulls(1), incoming, "pull-a")
    write_shard(pulls(2), incoming, "pull-b")
    (incoming / "manifests" / "sha256").mkdir(parents=True)
    (incoming / "manifests" / "sha256" / "abc").write_text("new")
    data = tmp_path / "data"
    write_shard(pulls(3), data, "pull-b")  # same name, different run
    (data / "manifests" / "sha256").mkdir(parents=True)
    (data / "manifests" / "sha256" / "abc").write_text("kept")
    before = (data / "observations" / "pull-b.csv").read_bytes()

    first = run("merge.sh", str(incoming), config=config)
    second = run("merge.sh", str(incoming), config=config)

    assert sorted(Path(line).name for line in first.stdout.split()) == [
        "pull-a.csv",
        "pull-b.1.csv",
    ]
    assert second.stdout == ""
    assert (data / "observations" / "pull-b.csv").read_bytes() == before
    assert (data / "manifests" / "sha256" / "abc").read_text() == "kept"
    assert sorted(set(load([data])["run_id"])) == sorted(
        {row.run_id for run_rows in (pulls(1), pulls(2), pulls(3)) for row in run_rows}
    )


def test_alert_script_opens_an_issue_for_this_runs_regression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh = FakeGh(tmp_path, monkeypatch)
    config = write_config(tmp_path, ["docker.io/kivy/buildozer"])
    write_shard(pulls(1), tmp_path / "data", "run1")
    write_shard(pulls(2, BROKEN), tmp_path / "incoming", "run2")

    dry = run("alert.sh", str(tmp_path / "incoming"), "--dry-run", config=config)
    assert gh.writes() == []
    assert dry.stdout.startswith("gh issue create --title")

    run("alert.sh", str(tmp_path / "incoming"), config=config, GITHUB_REPOSITORY="o/r")
    assert [call[:2] + call[-2:] for call in gh.writes()] == [["issue", "create", "--repo", "o/r"]]


def test_alert_script_without_new_observations_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh = FakeGh(tmp_path, monkeypatch)
    config = write_config(tmp_path, ["docker.io/kivy/buildozer"])

    done = run("alert.sh", str(tmp_path / "incoming"), config=config)

    assert "no observations of this run" in done.stdout
    assert gh.calls() == []


def test_pull_script_with_nothing_planned_starts_no_engine(tmp_path: Path) -> None:
    config = write_config(tmp_path, ["docker.io/kivy/buildozer"])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"now": [], "deferred": [], "available": {}}))

    done = run(
        "pull.sh", "27", "app", config=config, PULL_MATRIX_PLAN=str(plan), PATH="/usr/bin:/bin"
    )

    assert "nothing planned for engine 27" in done.stdout


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def test_commit_data_commits_only_the_data_and_pushes(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    work = tmp_path / "work"
    _git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    _git("clone", "-q", str(remote), str(work), cwd=tmp_path)
    (work / "scripts").mkdir()
    subprocess.run(["cp", "-r", str(SCRIPTS), str(work / "scripts" / "ci")], check=True)
    config = write_config(work, ["docker.io/kivy/buildozer"])
    identity = ["-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    _git("add", ".", cwd=work)
    _git(*identity, "commit", "-q", "-m", "start", cwd=work)
    _git("push", "-q", "origin", "HEAD:main", cwd=work)
    write_shard(pulls(1), work / "data", "run1")
    (work / "unrelated.txt").write_text("not data")
    token = "ghs_" + "Z9y8X7w6V5u4T3s2R1q0P9o8"
    script = str(work / "scripts" / "ci" / "commit-data.sh")

    env = {
        **os.environ,
        "PULL_MATRIX_CONFIG": str(config),
        "PULL_MATRIX_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "GITHUB_TOKEN": token,
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "42",
    }
    first = subprocess.run([script], capture_output=True, text=True, env=env, check=False)
    second = subprocess.run([script], capture_output=True, text=True, env=env, check=False)

    assert first.returncode == 0, first.stderr
    pushed = _git("log", "--name-only", "--format=%s", "main", cwd=remote)
    assert pushed.splitlines()[0] == "Data: observations of run 42"
    assert "data/observations/run1.csv" in pushed
    assert "unrelated.txt" not in pushed
    assert second.returncode == 0 and "no new data" in second.stdout
    assert token not in first.stdout + first.stderr + second.stdout + second.stderr
