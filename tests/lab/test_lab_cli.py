"""`python -m matrix lab up | status | down` with the real registries, as separate processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from matrix.lab.registry import free_port, registry_binary
from tests.lab.helpers import login

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(registry_binary() is None, reason="/usr/bin/docker-registry is missing"),
]


def lab(lab_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matrix", "lab", *arguments, "--lab-dir", str(lab_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PULL_MATRIX_LAB_DIR": str(lab_dir)},
    )


def running_below(directory: Path) -> list[str]:
    """Live (not zombie) processes whose command line names a path below `directory`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(directory) in command and state != "Z":
            found.append(f"{entry}: {command}")
    return found


def recorded_pids(lab_dir: Path) -> list[list[int]]:
    state = json.loads((lab_dir / "lab.json").read_text())
    return [part["pids"] for part in state["parts"] if part["kind"] == "registry"]


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "lab"
    yield directory
    lab(directory, "down", "--registries-only")


@pytest.fixture
def ports() -> list[str]:
    return ["--hub-port", str(free_port()), "--ghcr-port", str(free_port())]


def test_up_status_down_leaves_nothing_running(lab_dir: Path, ports: list[str]) -> None:
    started = lab(lab_dir, "up", "--registries-only", "--no-publish", *ports)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["docker.io", "ghcr.io"]
    assert all(line.split()[-1] == "healthy" for line in lines)
    assert len(running_below(lab_dir)) == 4

    status = lab(lab_dir, "status")
    assert status.returncode == 0, status.stderr
    assert f"127.0.0.1:{ports[1]}" in status.stdout
    assert "distribution 2.8.2" in status.stdout

    stopped = lab(lab_dir, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert running_below(lab_dir) == []
    after = lab(lab_dir, "status")
    assert after.returncode == 1
    assert "nothing running" in after.stderr


def test_up_is_idempotent(lab_dir: Path, ports: list[str]) -> None:
    assert lab(lab_dir, "up", "--registries-only", "--no-publish", *ports).returncode == 0
    first = recorded_pids(lab_dir)
    again = lab(lab_dir, "up", "--registries-only", "--no-publish", *ports)
    assert again.returncode == 0, again.stderr
    assert recorded_pids(lab_dir) == first
    assert len(running_below(lab_dir)) == 4


def test_up_publishes_the_family_to_both_roles(lab_dir: Path, ports: list[str]) -> None:
    started = lab(lab_dir, "up", "--registries-only", *ports)
    assert started.returncode == 0, started.stderr
    for port in (ports[1], ports[3]):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client() as client:
            login(client, base, "kivy/buildozer")
            tags = client.get(f"{base}/v2/kivy/buildozer/tags/list").json()["tags"]
        assert "latest" in tags and "1.6.0" in tags
    credentials = lab_dir / "registries" / "publisher.json"
    assert credentials.stat().st_mode & 0o077 == 0
    password = json.loads(credentials.read_text())["password"]
    assert password not in started.stdout + started.stderr


def test_down_without_a_state_record_still_stops_everything(
    lab_dir: Path, ports: list[str]
) -> None:
    assert lab(lab_dir, "up", "--registries-only", "--no-publish", *ports).returncode == 0
    (lab_dir / "lab.json").unlink()
    assert lab(lab_dir, "down", "--registries-only").returncode == 0
    assert running_below(lab_dir) == []


def test_busy_port_fails_clearly(lab_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = lab(
            lab_dir,
            "up",
            "--registries-only",
            "--no-publish",
            "--hub-port",
            str(port),
            "--ghcr-port",
            str(free_port()),
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}: the port is in use" in result.stderr
    assert running_below(lab_dir) == []


def test_status_of_engines_lists_no_registries(lab_dir: Path, ports: list[str]) -> None:
    assert lab(lab_dir, "up", "--registries-only", "--no-publish", *ports).returncode == 0
    result = lab(lab_dir, "status", "--engines")
    assert "docker.io" not in result.stdout
    assert result.returncode == 1


def test_up_repairs_a_role_whose_registry_died(lab_dir: Path, ports: list[str]) -> None:
    assert lab(lab_dir, "up", "--registries-only", "--no-publish", *ports).returncode == 0
    hub_pids, ghcr_pids = recorded_pids(lab_dir)
    os.kill(hub_pids[1], signal.SIGKILL)

    status = lab(lab_dir, "status", "--registries")
    assert status.returncode == 1
    assert "docker.io" in status.stdout and "unhealthy" in status.stdout

    repaired = lab(lab_dir, "up", "--registries-only", "--no-publish", *ports)
    assert repaired.returncode == 0, repaired.stderr
    new_hub, new_ghcr = recorded_pids(lab_dir)
    assert new_ghcr == ghcr_pids
    assert new_hub != hub_pids
    assert lab(lab_dir, "status", "--registries").returncode == 0
    assert len(running_below(lab_dir)) == 4


def test_down_of_a_lab_never_started_changes_nothing(tmp_path: Path) -> None:
    result = lab(tmp_path / "never", "down", "--registries-only")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "never" / "lab.json").exists()
