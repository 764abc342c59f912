"""The GitHub Actions workflows: lint-clean, pinned, least-privilege, and thin over scripts/ci."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from matrix.config import load_config

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
REQUIRED_ENGINES = {"20.10", "23.0", "24.0", "25.0", "26.1", "27", "28", "29"}
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _tool(name: str) -> str:
    """The tool from the virtualenv of this interpreter, or from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def _load(name: str) -> dict[Any, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _lines(name: str) -> list[str]:
    return (WORKFLOWS / name).read_text(encoding="utf-8").splitlines()


@pytest.fixture(params=["collect.yml", "ci.yml"])
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_actionlint_finds_nothing() -> None:
    done = subprocess.run(
        [_tool("actionlint"), "-no-color", *sorted(map(str, WORKFLOWS.glob("*.yml")))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_zizmor_finds_nothing() -> None:
    done = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert json.loads(done.stdout) == []
    assert done.returncode == 0, done.stderr


def test_actions_are_pinned_to_commits_with_a_version_comment(name: str) -> None:
    uses = [line.strip() for line in _lines(name) if re.match(r"^\s*(- )?uses:", line.strip())]
    assert uses
    for line in uses:
        reference, _, comment = line.split("uses:", 1)[1].partition("#")
        assert PINNED.match(reference.strip()), line
        assert re.match(r"^\s*v\d+(\.\d+)*$", comment), line


def test_permissions_are_empty_at_the_top_and_granted_per_job(name: str) -> None:
    workflow = _load(name)
    assert workflow["permissions"] == {}
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, job_name
        assert job["permissions"] != "write-all", job_name


def test_writes_are_granted_only_where_needed() -> None:
    jobs = _load("collect.yml")["jobs"]
    writes = {
        job_name: sorted(k for k, v in job["permissions"].items() if v == "write")
        for job_name, job in jobs.items()
    }
    assert writes == {
        "probe": [],
        "pull": [],
        "publish": ["contents"],
        "deploy": ["id-token", "pages"],
        "alert": ["issues"],
    }


def test_checkouts_keep_no_credentials(name: str) -> None:
    checkouts = [
        s for s in _steps(_load(name)) if s.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    assert all(step["with"]["persist-credentials"] is False for step in checkouts)


def test_run_steps_only_call_scripts_and_expand_nothing(name: str) -> None:
    runs = [step["run"] for step in _steps(_load(name)) if "run" in step]
    assert runs
    for command in runs:
        assert "\n" not in command.strip(), command
        assert "${{" not in command, command
        script = command.split()[0]
        assert re.match(r"^scripts/ci/[a-z-]+\.sh$", script), command
        assert os.access(ROOT / script, os.X_OK), script


def test_secrets_reach_scripts_only_through_env(name: str) -> None:
    for line in _lines(name):
        if "secrets." in line or "github.token" in line:
            assert re.match(r"^\s+[A-Z_]+: \$\{\{ (secrets\.[A-Z_]+|github\.token) \}\}$", line), (
                line
            )


def test_collect_schedules_probe_and_pulls_and_merges_shards() -> None:
    workflow = _load("collect.yml")
    crons = [entry["cron"] for entry in workflow["on"]["schedule"]]
    assert len(crons) == 2
    assert crons[0].split()[1] == "*/6"
    assert "workflow_dispatch" in workflow["on"]

    jobs = workflow["jobs"]
    # Probe-only runs (the six-hourly schedule) skip the engine jobs.
    assert f"github.event.schedule == '{crons[1]}'" in jobs["pull"]["if"]
    assert crons[0] not in jobs["pull"]["if"]

    engines = jobs["pull"]["strategy"]["matrix"]["engine"]
    assert set(engines) >= REQUIRED_ENGINES
    assert engines == list(load_config(ROOT / "pull-matrix.toml").engines.versions)
    assert jobs["pull"]["strategy"]["matrix"]["image"] == ["kivy/buildozer"]
    assert jobs["pull"]["services"]["engine"]["image"] == "docker:${{ matrix.engine }}-dind"

    uploads = [
        s for s in _steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")
    ]
    assert any(s["with"]["name"].startswith("shard-pull-") for s in uploads)
    assert set(jobs["publish"]["needs"]) == {"probe", "pull"}
    publish_uses = [s.get("uses", "").split("@")[0] for s in jobs["publish"]["steps"]]
    publish_runs = [s.get("run", "") for s in jobs["publish"]["steps"]]
    assert "actions/configure-pages" in publish_uses
    assert "actions/upload-pages-artifact" in publish_uses
    assert publish_runs.index("scripts/ci/merge.sh incoming") < publish_runs.index(
        "scripts/ci/commit-data.sh"
    )
    assert jobs["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages@")


def test_ci_runs_the_test_script() -> None:
    runs = [step["run"] for step in _steps(_load("ci.yml")) if "run" in step]
    assert runs == ["scripts/ci/test.sh"]
    assert "exec scripts/test.sh" in (ROOT / "scripts" / "ci" / "test.sh").read_text()
    assert {"push", "pull_request"} <= set(_load("ci.yml")["on"])


def test_ci_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    scripts = sorted(str(path) for path in (ROOT / "scripts" / "ci").glob("*.sh"))
    done = subprocess.run(
        [shellcheck, "-x", "-P", str(ROOT / "scripts" / "ci"), *scripts],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "")
