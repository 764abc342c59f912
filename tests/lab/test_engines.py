"""The lab's Docker engines: fetched from Debian, started side by side, stopped without traces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrix.errors import LabError
from matrix.lab import engines
from matrix.lab.debian import (
    SUITES,
    EngineRoot,
    ensure_engines,
    parse_madison,
    suite_for,
    upstream_version,
)
from matrix.lab.state import Part, load_state, save_state

MADISON = """\
 docker.io | 28.5.2+dfsg4-5 | http://deb.debian.org/debian sid/main amd64 Packages
 docker.io | 26.1.5+dfsg1-9+deb13u1+b1 | http://deb.debian.org/debian trixie/main amd64 Packages
 docker.io | 20.10.24+dfsg1-1+deb12u1+b6 | http://deb.debian.org/debian bookworm/main amd64 Packages
 docker.io | 20.10.5+dfsg1-1+deb11u2 | http://deb.debian.org/debian bullseye/main amd64 Packages
"""


def test_madison_lines_give_each_suites_version() -> None:
    assert parse_madison(MADISON) == {
        "sid": "28.5.2+dfsg4-5",
        "trixie": "26.1.5+dfsg1-9+deb13u1+b1",
        "bookworm": "20.10.24+dfsg1-1+deb12u1+b6",
        "bullseye": "20.10.5+dfsg1-1+deb11u2",
    }


@pytest.mark.parametrize(
    ("debian", "upstream"),
    [
        ("20.10.24+dfsg1-1+deb12u1+b6", "20.10.24"),
        ("1.4.13~ds1-1~deb11u4", "1.4.13"),
        ("1.0.0~rc93+ds1-5+deb11u5", "1.0.0"),
        ("1:2.3-4", "2.3"),
        ("28.5.2", "28.5.2"),
    ],
)
def test_upstream_version_drops_epoch_revision_and_repack_marks(debian: str, upstream: str) -> None:
    assert upstream_version(debian) == upstream


def test_engines_are_named_by_version_or_suite() -> None:
    assert suite_for("20.10.24") == "bookworm"
    assert suite_for("sid") == "sid"
    with pytest.raises(LabError, match=r"no lab engine '19\.03'"):
        suite_for("19.03")


def _root(suite: str = "bookworm") -> EngineRoot:
    packages = {"docker.io": "20.10.24+dfsg1-1", "containerd": "1.6.20~ds1-1", "runc": "1.1.5-1"}
    return EngineRoot(suite, Path("/cache/roots/x"), packages)


def test_dockerd_command_keeps_every_engine_apart(tmp_path: Path) -> None:
    place = engines.layout(tmp_path, "bookworm")
    command = engines.dockerd_command(_root(), place, ["127.0.0.1:5000"])

    assert command[0] == "/cache/roots/x/usr/sbin/dockerd"
    for flag in (
        f"--data-root={place.data_root}",
        f"--exec-root={place.exec_root}",
        f"--host=unix://{place.socket}",
        f"--pidfile={place.pidfile}",
        f"--config-file={place.config}",
        "--containerd-namespace=pull-matrix-bookworm",
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--insecure-registry=127.0.0.1:5000",
    ):
        assert flag in command
    assert str(place.base).startswith(str(tmp_path))


def test_engine_path_finds_the_suites_own_binaries_first() -> None:
    path = _root().path.split(os.pathsep)
    assert path[:2] == ["/cache/roots/x/usr/sbin", "/cache/roots/x/usr/bin"]


def test_a_lab_directory_too_long_for_sockets_is_refused() -> None:
    long_dir = Path("/tmp") / ("x" * 90)
    with pytest.raises(LabError, match="too long for Unix socket paths"):
        engines._start(long_dir, _root(), [])
    assert not long_dir.exists()


def test_status_of_a_lab_without_engines_is_empty_and_keeps_other_parts(tmp_path: Path) -> None:
    state = load_state(tmp_path)
    registry = Part("registry", "docker.io", "127.0.0.1:5101", healthy=True)
    state.replace("registry", [registry])
    save_state(tmp_path, state)

    assert engines.status(tmp_path) == []
    engines.down(tmp_path)

    assert load_state(tmp_path).of_kind("registry") == [registry]


# Real engines ---------------------------------------------------------------------------------


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab's engines run as root")


@pytest.fixture
def lab_dir() -> Iterator[Path]:
    _require_root()
    # Short, because the engines' Unix sockets live below it.
    directory = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    try:
        yield directory
    finally:
        engines.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def _processes_below(directory: Path) -> list[int]:
    return [pid for suite in SUITES for pid in engines._referring(engines.layout(directory, suite))]


@pytest.mark.engines
def test_four_engines_come_up_report_their_versions_and_go_down_without_trace(
    lab_dir: Path,
) -> None:
    parts = engines.up(lab_dir, ["127.0.0.1:5999"])

    assert [part.role for part in parts] == list(SUITES.values())
    for part in parts:
        # The version as the engine reports it, e.g. 20.10.24+dfsg1.
        assert part.version.startswith(part.role + "+"), part
        assert part.healthy
        assert part.endpoint == f"unix://{lab_dir}/engines/{part.extra['suite']}/docker.sock"
        assert engines.engine_version(part.endpoint) == part.version
        # Each engine has its own containerd, below its own exec root.
        containerd = lab_dir / "engines" / part.extra["suite"] / "run" / "containerd"
        assert (containerd / "containerd.sock").is_socket()
        assert (lab_dir / "engines" / part.extra["suite"] / "data" / "containerd").is_dir()
    recorded = load_state(lab_dir).of_kind("engine")
    assert [part.endpoint for part in recorded] == [part.endpoint for part in parts]
    assert _processes_below(lab_dir)

    engines.down(lab_dir)

    assert _processes_below(lab_dir) == []
    assert engines.mounts_below(lab_dir) == []
    assert not list(lab_dir.glob("engines/*/docker.sock"))
    assert not list(lab_dir.glob("engines/*/run"))
    assert engines.status(lab_dir) == []


@pytest.mark.engines
def test_up_keeps_a_running_engine_and_status_sees_one_that_died(lab_dir: Path) -> None:
    [first] = engines.up(lab_dir, [], versions=["20.10.24"])
    [again] = engines.up(lab_dir, [], versions=["bookworm"])
    assert again.pids == first.pids

    dockerd = first.pids[-1]
    # dockerd.pid names the daemon as the host sees it (never 1, its pid in its namespace).
    pidfile = Path(first.extra["base"]) / "dockerd.pid"
    assert int(pidfile.read_text()) == dockerd
    assert engines._command_name(dockerd) == "dockerd"
    os.kill(dockerd, signal.SIGKILL)
    engines._wait_gone([dockerd], 10)

    [seen] = engines.status(lab_dir)
    assert not seen.healthy

    [restarted] = engines.up(lab_dir, [], versions=["20.10.24"])
    assert restarted.healthy
    assert restarted.pids != first.pids
    assert engines.engine_version(restarted.endpoint) == restarted.version
    assert int(pidfile.read_text()) == restarted.pids[-1]


def test_a_cached_engine_is_used_without_asking_debian(tmp_path: Path) -> None:
    packages = {"docker.io": "20.10.24+dfsg1-1", "containerd": "1.6.20~ds1-1", "runc": "1.1.5-1"}
    root = tmp_path / "engines" / "roots" / packages["docker.io"]
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "sbin" / "dockerd").write_text("")
    (root / "packages.json").write_text(json.dumps(packages))
    (tmp_path / "engines" / "bookworm.json").write_text(json.dumps(packages))

    # No apt configuration exists below the cache: any fetch would have to create one.
    [(suite, engine)] = ensure_engines(["bookworm"], cache_dir=tmp_path).items()

    assert (suite, engine.root, engine.version) == ("bookworm", root, "20.10.24")
    assert engine.dockerd == root / "usr" / "sbin" / "dockerd"
    assert not (tmp_path / "engines" / "apt").exists()
