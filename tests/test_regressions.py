import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from matrix.config import default_config
from matrix.errors import redact_message
from matrix.observations import Observation, to_frame, write_shard
from matrix.regressions import (
    GitHub,
    detect,
    engine_label,
    plain,
    split_latest,
    sync_issues,
)

FAKE_GH = Path(__file__).with_name("fake_gh.py")
ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ("20.10", "29")
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"
INCIDENT = (
    "Error response from daemon: received unexpected HTTP status: 500 Internal Server Error "
    f"(GET https://registry-1.docker.io/v2/kivy/buildozer/blobs/x?token={TOKEN})"
)


class FakeGh:
    """The fake `gh` on PATH, with its recorded calls and issues."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        gh = bin_dir / "gh"
        gh.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_GH} "$@"\n')
        gh.chmod(0o755)
        self.log = directory / "gh-calls.jsonl"
        self.state = directory / "gh-state.json"
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_GH_LOG", str(self.log))
        monkeypatch.setenv("FAKE_GH_STATE", str(self.state))
        monkeypatch.setenv("GH_TOKEN", TOKEN)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def writes(self) -> list[list[str]]:
        return [call for call in self.calls() if call[1] in ("create", "comment", "close")]

    def issues(self) -> list[dict[str, object]]:
        return json.loads(self.state.read_text())["issues"] if self.state.exists() else []

    def reset_log(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGh:
    return FakeGh(tmp_path, monkeypatch)


def pulls(
    run: int,
    outcome: dict[tuple[str, str, str], str] | None = None,
    *,
    registries: tuple[str, ...] = ("docker.io", "ghcr.io"),
    tags: tuple[str, ...] = ("latest", "1.0"),
    message: str = INCIDENT,
    verdict: str = "not-an-image",
) -> list[Observation]:
    """One pull run: every (registry, tag, engine) ok unless `outcome` says otherwise."""
    outcome = outcome or {}
    rows = []
    for registry in registries:
        for tag in tags:
            for version in ("20.10.24", "29.1.2"):
                result = outcome.get((registry, tag, version), "ok")
                failing = result == "fail"
                rows.append(
                    Observation(
                        run_id=f"run{run}-{version}",
                        registry=registry,
                        repository="kivy/buildozer",
                        tag=tag,
                        platform="linux/amd64",
                        client="docker",
                        client_version=version,
                        method="pull",
                        outcome=result,
                        observed_at=f"2026-12-0{run}T00:00:00Z",
                        digest="sha256:" + f"{run:064x}",
                        error_class="registry-error" if failing else "",
                        verdict=verdict if failing else "",
                        message=message if result != "ok" else "",
                    )
                )
    return rows


def frame(*runs: list[Observation]) -> pd.DataFrame:
    return to_frame([row for run in runs for row in run])


def alert(history: pd.DataFrame, **kwargs: object) -> list[object]:
    previous, latest = split_latest(history)
    changes = detect(previous, latest, VERSIONS)
    github = GitHub(**kwargs)  # type: ignore[arg-type]
    return sync_issues(changes, github, default_config().runbook_url)  # type: ignore[return-value]


BROKEN = {("docker.io", "latest", "29.1.2"): "fail"}
KEY = "docker.io/kivy/buildozer:latest linux/amd64 docker 29"


def test_engine_label_uses_the_configured_series() -> None:
    assert engine_label("docker", "29.1.2", VERSIONS) == "docker 29"
    assert engine_label("docker", "20.10.24", ("20.10", "20.10.24")) == "docker 20.10.24"
    assert engine_label("docker", "27.0.1", VERSIONS) == "docker 27.0.1"


def test_ok_then_fail_opens_one_issue(gh: FakeGh) -> None:
    alert(frame(pulls(1), pulls(2, BROKEN)))

    assert [call[:2] for call in gh.writes()] == [["issue", "create"]]
    (issue,) = gh.issues()
    assert issue["title"] == f"[pull-matrix] {KEY}: pull fails"
    body = str(issue["body"])
    assert "`not-an-image` (symptom: `registry-error`)" in body
    assert "received unexpected HTTP status: 500 Internal Server Error" in body
    assert "https://kivy.github.io/pull-matrix/runbook/#not-an-image" in body
    assert "Last pulled fine: 2026-12-01T00:00:00Z" in body
    assert "docker 29.1.2" in body


def test_no_token_reaches_an_issue(gh: FakeGh) -> None:
    message = f"{INCIDENT} Authorization: Bearer {TOKEN}x https://user:hunter22@r.test/v2/"
    alert(frame(pulls(1), pulls(2, BROKEN, message=message)))

    everything = gh.log.read_text()
    assert "REDACTED" in everything
    assert TOKEN not in everything
    assert "hunter22" not in everything
    assert redact_message("pass s3cr3t-value here", ["s3cr3t-value"]) == "pass REDACTED here"


def test_repeated_failure_updates_the_issue_once_per_run(gh: FakeGh) -> None:
    alert(frame(pulls(1), pulls(2, BROKEN)))
    gh.reset_log()

    history = frame(pulls(1), pulls(2, BROKEN), pulls(3, BROKEN))
    alert(history)
    alert(history)  # the same run again: nothing new to say

    assert [call[:3] for call in gh.writes()] == [["issue", "comment", "1"]]
    (issue,) = gh.issues()
    assert issue["state"] == "open"
    assert "run3-29.1.2" in str(issue["comments"])


def test_fail_then_ok_closes_the_issue(gh: FakeGh) -> None:
    alert(frame(pulls(1), pulls(2, BROKEN)))
    gh.reset_log()

    alert(frame(pulls(1), pulls(2, BROKEN), pulls(3)))

    assert [call[:3] for call in gh.writes()] == [["issue", "close", "1"]]
    assert gh.issues()[0]["state"] == "closed"


def test_failing_again_after_recovery_opens_a_new_issue(gh: FakeGh) -> None:
    alert(frame(pulls(1), pulls(2, BROKEN)))
    alert(frame(pulls(1), pulls(2, BROKEN), pulls(3)))
    alert(frame(pulls(1), pulls(2, BROKEN), pulls(3), pulls(4, BROKEN)))

    assert [issue["state"] for issue in gh.issues()] == ["closed", "open"]


def test_harness_errors_never_count(gh: FakeGh) -> None:
    harness = {("docker.io", "latest", "29.1.2"): "error"}
    alert(frame(pulls(1), pulls(2, harness)))
    assert gh.writes() == []

    # After a harness error the previous verdict is still the ok before it.
    alert(frame(pulls(1), pulls(2, harness), pulls(3, BROKEN)))
    assert [call[:2] for call in gh.writes()] == [["issue", "create"]]


def test_failure_that_never_pulled_opens_nothing(gh: FakeGh) -> None:
    alert(frame(pulls(1, BROKEN), pulls(2, BROKEN)))
    assert gh.writes() == []


def test_registry_wide_failure_is_one_issue(gh: FakeGh) -> None:
    everything_fails = {
        ("docker.io", tag, version): "fail"
        for tag in ("latest", "1.0")
        for version in ("20.10.24", "29.1.2")
    }
    outage = pulls(2, everything_fails, verdict="registry-error")
    alert(frame(pulls(1), outage))

    titles = [issue["title"] for issue in gh.issues()]
    assert titles == ["[pull-matrix] registry docker.io: every pull fails"]
    assert "Every pull from **docker.io** failed" in str(gh.issues()[0]["body"])

    alert(frame(pulls(1), outage, pulls(3)))
    assert gh.issues()[0]["state"] == "closed"


def test_broken_images_on_every_tag_are_not_a_registry_failure(gh: FakeGh) -> None:
    everything_broken = {
        ("docker.io", tag, version): "fail"
        for tag in ("latest", "1.0")
        for version in ("20.10.24", "29.1.2")
    }
    alert(frame(pulls(1), pulls(2, everything_broken)))

    titles = sorted(str(issue["title"]) for issue in gh.issues())
    assert len(titles) == 4
    assert all(title.endswith(": pull fails") and "registry" not in title for title in titles)


def test_dry_run_prints_and_changes_nothing(gh: FakeGh) -> None:
    printed: list[str] = []
    alert(frame(pulls(1), pulls(2, BROKEN)), dry_run=True, echo=printed.append)

    assert gh.writes() == []
    assert gh.issues() == []
    assert len(printed) == 1
    assert printed[0].startswith("gh issue create --title")
    assert KEY in printed[0]


def test_alert_command_end_to_end(gh: FakeGh, tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_shard(pulls(1), data, "run1")
    write_shard(pulls(2, BROKEN), data, "run2")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, "-m", "matrix", "alert", "--data", str(data), "--repo", "o/r"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "1 regressions" in done.stderr
    assert [call[:2] + call[-2:] for call in gh.writes()] == [["issue", "create", "--repo", "o/r"]]
    assert TOKEN not in done.stdout + done.stderr


def test_data_cannot_add_markup_to_an_issue(gh: FakeGh) -> None:
    assert plain("29.1.2 <!-- @someone [x](y) -->") == "29.1.2 -- someone xy --"

    hostile = [
        Observation(**{**row.__dict__, "client_version": row.client_version + "-@admin<b>"})
        for row in pulls(2, BROKEN)
    ]
    before = [
        Observation(**{**row.__dict__, "client_version": row.client_version + "-@admin<b>"})
        for row in pulls(1)
    ]
    alert(frame(before, hostile))

    (issue,) = gh.issues()
    text = str(issue["title"]) + str(issue["body"]).split("```text")[0]
    assert "@" not in text and "<b>" not in text
