"""`lab down` acts only on what this lab started, whatever its state file says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrix.errors import LabError
from matrix.lab import engines, registries
from matrix.lab.state import STATE_FILE, ensure_private_lab_dir, locked

SLEEPER = "import time; time.sleep(300)"


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab runs as root")


@pytest.fixture
def lab_dir() -> Iterator[Path]:
    _require_root()
    directory = Path(tempfile.mkdtemp(prefix="pm-safe-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def bystanders() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Harmless processes standing in for a user's; each must survive `lab down`."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _bystander(started: list[subprocess.Popen[bytes]], *args: str) -> int:
    process = subprocess.Popen([sys.executable, "-c", SLEEPER, *args])
    started.append(process)
    time.sleep(0.2)
    return process.pid


def _record_engine(lab_dir: Path, base: Path, pids: list[int]) -> None:
    part = {
        "kind": "engine",
        "role": "20.10",
        "endpoint": f"unix://{base}/docker.sock",
        "version": "20.10.5",
        "pids": pids,
        "healthy": True,
        "extra": {"base": str(base), "suite": "bullseye"},
    }
    (lab_dir / STATE_FILE).write_text(json.dumps({"parts": [part]}), encoding="utf-8")


def _alive(pid: int) -> bool:
    return engines._alive(pid)


def test_down_leaves_alone_an_engine_directory_recorded_outside_the_lab(
    lab_dir: Path, tmp_path: Path, bystanders: list[subprocess.Popen[bytes]]
) -> None:
    victim = tmp_path / "victim"
    for name in ("data", "run", "mnt"):
        (victim / name).mkdir(parents=True)
    (victim / "data" / "precious.txt").write_text("precious")
    (victim / "run" / "keep.txt").write_text("keep")
    pid = _bystander(
        bystanders, str(victim / "notes.txt"), f"--data-root={victim / 'data'}", str(victim)
    )
    mounted = subprocess.run(["mount", "-t", "tmpfs", "none", str(victim / "mnt")]).returncode == 0
    try:
        _record_engine(lab_dir, victim, [pid])
        engines.down(lab_dir)

        assert _alive(pid)
        assert (victim / "data" / "precious.txt").read_text() == "precious"
        assert (victim / "run" / "keep.txt").read_text() == "keep"
        if mounted:
            assert engines.mounts_below(victim) == [str(victim / "mnt")]
        assert json.loads((lab_dir / STATE_FILE).read_text())["parts"] == []
    finally:
        if mounted:
            subprocess.run(["umount", str(victim / "mnt")], check=False)


def test_down_spares_a_user_process_naming_the_engine_directory(
    lab_dir: Path, tmp_path: Path, bystanders: list[subprocess.Popen[bytes]]
) -> None:
    base = lab_dir / "engines" / "bookworm"
    (base / "data").mkdir(parents=True)
    (base / "dockerd.log").write_text("")
    # A user following the engine's log, and a backup elsewhere whose path contains the lab's.
    tailing = _bystander(bystanders, str(base / "dockerd.log"), f"--data-root={base / 'data'}")
    copy = tmp_path / str(base).lstrip("/") / "dockerd.log"
    copy.parent.mkdir(parents=True)
    elsewhere = _bystander(bystanders, str(copy))
    _record_engine(lab_dir, base, [tailing, elsewhere])

    engines.down(lab_dir)

    assert _alive(tailing)
    assert _alive(elsewhere)
    assert copy.parent.is_dir()


def test_down_does_not_follow_a_symbolic_link_out_of_the_engines_directory(
    lab_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    (victim / "data").mkdir(parents=True)
    (victim / "data" / "precious.txt").write_text("precious")
    (lab_dir / "engines").mkdir()
    (lab_dir / "engines" / "bookworm").symlink_to(victim)
    _record_engine(lab_dir, lab_dir / "engines" / "bookworm", [])

    engines.down(lab_dir)

    assert (victim / "data" / "precious.txt").read_text() == "precious"


def test_an_engine_directory_must_be_a_direct_entry_of_the_engines_directory(
    tmp_path: Path,
) -> None:
    engines_dir = tmp_path / "engines"
    (engines_dir / "bookworm").mkdir(parents=True)

    assert engines._confined(engines_dir, engines_dir / "bookworm") == engines_dir / "bookworm"
    assert engines._confined(engines_dir, engines_dir / ".." / "engines" / "x") is None
    assert engines._confined(engines_dir, tmp_path / "elsewhere") is None
    assert engines._confined(engines_dir, Path("engines/bookworm")) is None


def test_engine_processes_are_matched_by_exact_arguments() -> None:
    place = engines.EngineLayout(Path("/lab/engines/bookworm"))

    assert engines.names_engine(["dockerd", "--data-root=/lab/engines/bookworm/data"], place)
    assert engines.names_engine(
        ["containerd", "--config", "/lab/engines/bookworm/run/containerd/containerd.toml"], place
    )
    assert not engines.names_engine(["tail", "/x/lab/engines/bookworm/dockerd.log"], place)
    assert not engines.names_engine(["dockerd", "--data-root=/lab/engines/bookworm2/data"], place)
    assert not engines.names_engine(["dockerd", "--data-root=/x/lab/engines/bookworm/data"], place)


def test_a_recorded_pid_that_is_not_a_lab_binary_is_not_an_engine_process(
    bystanders: list[subprocess.Popen[bytes]],
) -> None:
    place = engines.EngineLayout(Path("/lab/engines/bookworm"))
    pid = _bystander(bystanders, "--data-root=/lab/engines/bookworm/data")

    assert not engines._is_engine_process(pid, place)


def test_registry_processes_must_name_this_labs_registry_directory(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    other = tmp_path / "other"
    config = "registries/docker.io/registry/config.yml"

    assert registries.is_lab_command(["/usr/bin/docker-registry", "serve", f"{lab}/{config}"], lab)
    proxy = [sys.executable, "-m", "matrix.lab.proxy", "--token-dir", f"{lab}/registries/x/tokens"]
    assert registries.is_lab_command(proxy, lab)
    assert not registries.is_lab_command(
        ["/usr/bin/docker-registry", "serve", f"{other}/{config}"], lab
    )
    assert not registries.is_lab_command(["/usr/bin/docker-registry", "300"], lab)
    assert not registries.is_lab_command(["/usr/bin/tail", f"{lab}/{config}"], lab)


def test_down_spares_someone_elses_registry_whose_pid_the_state_names(lab_dir: Path) -> None:
    other = subprocess.Popen(["bash", "-c", "exec -a /usr/bin/docker-registry sleep 300"])
    try:
        time.sleep(0.2)
        part = {"kind": "registry", "role": "docker.io", "endpoint": "127.0.0.1:5399"}
        state = {"parts": [{**part, "pids": [other.pid], "healthy": True}]}
        (lab_dir / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")

        registries.down(lab_dir)

        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("stop", [engines.down, registries.down])
def test_down_refuses_a_lab_directory_others_may_write(tmp_path: Path, stop: object) -> None:
    _require_root()
    lab = tmp_path / "lab"
    lab.mkdir()
    lab.chmod(0o777)
    with pytest.raises(LabError, match="writable by other users"):
        stop(lab)  # type: ignore[operator]

    lab.chmod(0o700)
    (lab / STATE_FILE).write_text('{"parts": []}')
    (lab / STATE_FILE).chmod(0o666)
    with pytest.raises(LabError, match="writable by other users"):
        stop(lab)  # type: ignore[operator]

    (lab / STATE_FILE).chmod(0o600)
    os.chown(lab, 65534, 65534)
    with pytest.raises(LabError, match="belongs to user 65534"):
        stop(lab)  # type: ignore[operator]


def test_a_new_lab_directory_is_private(tmp_path: Path) -> None:
    lab = ensure_private_lab_dir(tmp_path / "lab")

    assert lab.stat().st_mode & 0o777 == 0o700


def test_registries_down_waits_for_the_registries_lock(tmp_path: Path) -> None:
    lab = ensure_private_lab_dir(tmp_path / "lab")
    stopper = threading.Thread(target=registries.down, args=(lab,))
    with locked(lab / ".registries.lock"):
        stopper.start()
        time.sleep(0.5)
        assert stopper.is_alive()
    stopper.join(10)
    assert not stopper.is_alive()


def test_a_lab_directory_may_be_a_link_of_this_users_own(tmp_path: Path) -> None:
    _require_root()
    target = ensure_private_lab_dir(tmp_path / "target")
    link = tmp_path / "lab"
    link.symlink_to(target)

    assert ensure_private_lab_dir(link) == target
    target.chmod(0o777)
    with pytest.raises(LabError, match="writable by other users"):
        ensure_private_lab_dir(link)
    os.lchown(link, 65534, 65534)
    with pytest.raises(LabError, match="belongs to user 65534"):
        ensure_private_lab_dir(link)


def test_lab_down_command_refuses_a_world_writable_lab_directory(tmp_path: Path) -> None:
    _require_root()
    lab = tmp_path / "lab"
    (lab / "engines" / "bookworm" / "data").mkdir(parents=True)
    (lab / "engines" / "bookworm" / "data" / "kept.txt").write_text("kept")
    lab.chmod(0o777)

    result = subprocess.run(
        [sys.executable, "-m", "matrix", "lab", "down", "--lab-dir", str(lab)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "writable by other users" in result.stderr
    assert (lab / "engines" / "bookworm" / "data" / "kept.txt").read_text() == "kept"
