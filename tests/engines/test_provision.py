"""Provisioners: the dind container spec and lifecycle (against a fake host engine), endpoints.

Real dind containers need the `docker:<version>-dind` images, which cannot be fetched in the
offline lab; the fake below stands in for the host engine's API objects only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from matrix.engines.model import Engine, check_endpoint
from matrix.engines.provision import DIND_LABEL, Dind, host_engines, provision
from matrix.errors import ConfigError, EngineError


class FakeContainer:
    next_port = 40000

    def __init__(self, spec: dict[str, Any], fail: bool = False) -> None:
        self.spec = spec
        self.name = spec["name"]
        self.status = "created"
        self.removed = False
        self.fail = fail
        self.attrs: dict[str, Any] = {"NetworkSettings": {"Ports": {}}}
        self.reloads = 0
        FakeContainer.next_port += 1
        self.port = FakeContainer.next_port

    def reload(self) -> None:
        # The port appears once the container runs, as with a real engine.
        self.reloads += 1
        if self.fail:
            self.status = "exited"
            return
        self.status = "running"
        if "ports" in self.spec:
            self.attrs["NetworkSettings"]["Ports"] = {
                "2375/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(self.port)}]
            }

    def logs(self, tail: int = 10) -> bytes:
        return b"failed to start daemon: permission denied"

    def remove(self, force: bool = False, v: bool = False) -> None:
        assert force and v
        self.removed = True


class FakeContainers:
    def __init__(self, fail: bool = False) -> None:
        self.started: list[FakeContainer] = []
        self.leftovers: list[FakeContainer] = []
        self.fail = fail

    def run(self, **spec: Any) -> FakeContainer:
        container = FakeContainer(spec, self.fail)
        self.started.append(container)
        return container

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        assert all and filters == {"label": DIND_LABEL}
        return [c for c in self.leftovers if not c.removed]


class FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.pulled: list[str] = []

    def get(self, name: str) -> object:
        if name not in self.present:
            raise ImageNotFound(name)
        return object()

    def pull(self, repository: str, tag: str) -> object:
        self.pulled.append(f"{repository}:{tag}")
        self.present.add(f"{repository}:{tag}")
        return object()


class FakeClient:
    def __init__(self, fail: bool = False, present: set[str] | None = None) -> None:
        self.containers = FakeContainers(fail)
        self.images = FakeImages(present if present is not None else set())


class FakeConnect:
    """Answers like an engine that needs a few tries before it is up."""

    def __init__(self, tries_until_up: int = 2) -> None:
        self.calls: list[str] = []
        self.tries_until_up = tries_until_up

    def __call__(self, endpoint: str, name: str) -> Engine:
        self.calls.append(endpoint)
        up = self.calls.count(endpoint) >= self.tries_until_up
        version = name.removeprefix("dind ") if up else ""
        return Engine(endpoint, version, name=name)


def test_dind_spec_runs_a_privileged_engine_on_a_loopback_port() -> None:
    dind = Dind(FakeClient(), ["27.3.1"], insecure_registries=["127.0.0.1:5101"])

    spec = dind.container_spec("27.3.1")

    assert spec["image"] == "docker:27.3.1-dind"
    assert spec["privileged"] is True
    assert spec["detach"] is True
    assert spec["ports"] == {"2375/tcp": ("127.0.0.1", None)}
    assert spec["environment"] == {"DOCKER_TLS_CERTDIR": ""}
    assert spec["labels"] == {DIND_LABEL: "27.3.1"}
    # The image's entrypoint adds the --host flags itself; a second tcp --host would clash.
    assert spec["command"] == ["--tls=false", "--insecure-registry=127.0.0.1:5101"]


def test_dind_over_a_unix_socket_binds_a_host_directory(tmp_path: Path) -> None:
    dind = Dind(FakeClient(), ["26.1.5"], transport="unix", socket_dir=tmp_path)

    spec = dind.container_spec("26.1.5")

    assert "ports" not in spec
    assert spec["volumes"] == {str(tmp_path / "26.1.5"): {"bind": "/run/pull-matrix", "mode": "rw"}}
    assert spec["environment"]["DOCKER_HOST"] == "unix:///run/pull-matrix/docker.sock"
    assert not any(arg.startswith("--host") for arg in spec["command"])
    assert dind.endpoint("26.1.5") == f"unix://{tmp_path}/26.1.5/docker.sock"


def test_dind_lifecycle_starts_waits_for_health_and_removes_the_containers() -> None:
    client = FakeClient(present={"docker:27.3.1-dind"})
    connect = FakeConnect(tries_until_up=3)
    dind = Dind(client, ["27.3.1", "28.5.2"], connect=connect, sleep=lambda _: None)

    with dind as engines:
        assert [engine.version for engine in engines] == ["27.3.1", "28.5.2"]
        assert all(e.endpoint.startswith("tcp://127.0.0.1:") for e in engines)
        assert len({e.endpoint for e in engines}) == 2
        assert client.images.pulled == ["docker:28.5.2-dind"]
        assert not any(c.removed for c in client.containers.started)

    assert all(c.removed for c in client.containers.started)
    assert dind.containers == {}


def test_dind_that_exits_is_reported_with_its_log_and_removed() -> None:
    client = FakeClient(fail=True, present={"docker:27.3.1-dind"})
    dind = Dind(client, ["27.3.1"], connect=FakeConnect(), sleep=lambda _: None)

    with pytest.raises(EngineError, match="permission denied"):
        dind.start()

    assert [c.removed for c in client.containers.started] == [True]


def test_dind_that_never_answers_times_out_and_is_removed() -> None:
    client = FakeClient(present={"docker:27.3.1-dind"})
    never = FakeConnect(tries_until_up=10**9)
    dind = Dind(client, ["27.3.1"], connect=never, start_timeout=0.05, sleep=lambda _: None)

    with pytest.raises(EngineError, match="did not answer"):
        dind.start()

    assert client.containers.started[0].removed


def test_dind_removes_containers_an_interrupted_run_left() -> None:
    client = FakeClient(present={"docker:27.3.1-dind"})
    leftover = FakeContainer({"name": "pull-matrix-dind-27.3.1"})
    client.containers.leftovers.append(leftover)

    with Dind(client, ["27.3.1"], connect=FakeConnect(1), sleep=lambda _: None):
        assert leftover.removed


def test_dind_needs_a_known_transport() -> None:
    with pytest.raises(ConfigError):
        Dind(FakeClient(), ["27.3.1"], transport="ssh")
    with pytest.raises(ConfigError):
        Dind(FakeClient(), ["27.3.1"], transport="unix")


@pytest.mark.parametrize(
    "endpoint", ["", "http://127.0.0.1:2375", "/var/run/docker.sock", "unix://"]
)
def test_endpoints_must_be_unix_or_tcp(endpoint: str) -> None:
    with pytest.raises(EngineError, match="not unix:///path or tcp://host:port"):
        check_endpoint(endpoint)


def test_a_host_engine_that_is_not_there_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not answer"):
        host_engines([f"unix://{tmp_path}/docker.sock"])


def test_unknown_provisioner_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="provisioner must be one of"), provision("podman"):
        pass
    with pytest.raises(ConfigError, match="needs at least one engine endpoint"), provision("host"):
        pass
