"""Where the engines that pull come from.

- `lab`: the lab's Debian-packaged engines, from the lab state file, started when not running.
- `dind`: one `docker:<version>-dind` container per version on a host engine (how CI gets any
  engine version it wants), reached on a published loopback port or a Unix socket in a
  bind-mounted directory; removed again afterwards.
- `host`: engines that are already running at given endpoints.

`provision(...)` is a context manager over all three that yields the engines and cleans up
whatever it started.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from docker.errors import DockerException, ImageNotFound, NotFound
from requests.exceptions import RequestException

from matrix.engines.model import Engine, check_endpoint, connect
from matrix.errors import ConfigError, EngineError
from matrix.lab.state import default_lab_dir

log = logging.getLogger(__name__)

PROVISIONERS = ("lab", "dind", "host")
DIND_PORT = 2375
DIND_SOCKET_DIR = "/run/pull-matrix"
DIND_LABEL = "pull-matrix.dind"


def lab_engines(
    lab_dir: Path | None = None,
    versions: Sequence[str] | None = None,
    insecure_registries: Sequence[str] = (),
) -> list[Engine]:
    """The lab's engines of `versions` (all when None), started if they are not running."""
    from matrix.lab import engines as lab

    parts = lab.up(Path(lab_dir or default_lab_dir()), list(insecure_registries), versions)
    return [
        Engine(part.endpoint, part.version, name=f"lab {part.extra.get('suite', part.role)}")
        for part in parts
    ]


def host_engines(endpoints: Sequence[str]) -> list[Engine]:
    """Engines already running at `endpoints`, each asked for its version."""
    return [connect(check_endpoint(endpoint), name=f"host {endpoint}") for endpoint in endpoints]


Connect = Callable[[str, str], Engine]


class Dind:
    """`docker:<version>-dind` containers on a host engine, one per version.

    `client` is a `docker.DockerClient` of the host engine. With `transport="tcp"` each engine
    listens in its container on plain TCP, published on a random 127.0.0.1 port of the host;
    with `transport="unix"` it listens on a socket in `socket_dir/<version>/`, bind-mounted
    from the host. The containers run privileged (dockerd needs it) and carry a label, so
    leftovers of an interrupted run can be found and removed.
    """

    def __init__(
        self,
        client: Any,
        versions: Sequence[str],
        *,
        insecure_registries: Sequence[str] = (),
        transport: str = "tcp",
        socket_dir: Path | None = None,
        start_timeout: float = 120.0,
        connect: Connect | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if transport not in ("tcp", "unix"):
            raise ConfigError(f"dind transport must be tcp or unix, not {transport!r}")
        if transport == "unix" and socket_dir is None:
            raise ConfigError("dind over Unix sockets needs a socket directory")
        self.client = client
        self.versions = list(versions)
        self.insecure_registries = list(insecure_registries)
        self.transport = transport
        self.socket_dir = Path(socket_dir) if socket_dir else None
        self.start_timeout = start_timeout
        self._connect = connect or (lambda endpoint, name: _connect_quietly(endpoint, name))
        self._sleep = sleep
        self.containers: dict[str, Any] = {}

    def image(self, version: str) -> str:
        return f"docker:{version}-dind"

    def container_name(self, version: str) -> str:
        return f"pull-matrix-dind-{version}"

    def container_spec(self, version: str) -> dict[str, Any]:
        """The keyword arguments of `client.containers.run` for the engine of `version`.

        The image's entrypoint, given flags only, starts dockerd listening on its Unix socket
        (`DOCKER_HOST` when that names one) and on TCP port 2375 without TLS when the
        certificate directory is empty; `--tls=false` says so explicitly, as newer engines
        refuse plain TCP otherwise. No `--host` is passed: the entrypoint adds its own.
        """
        environment = {"DOCKER_TLS_CERTDIR": ""}
        if self.transport == "unix":
            environment["DOCKER_HOST"] = f"unix://{DIND_SOCKET_DIR}/docker.sock"
        command = ["--tls=false"]
        command += [f"--insecure-registry={registry}" for registry in self.insecure_registries]
        spec: dict[str, Any] = {
            "image": self.image(version),
            "name": self.container_name(version),
            "command": command,
            "detach": True,
            "privileged": True,
            "environment": environment,
            "labels": {DIND_LABEL: version},
        }
        if self.transport == "tcp":
            spec["ports"] = {f"{DIND_PORT}/tcp": ("127.0.0.1", None)}
        else:
            assert self.socket_dir is not None
            spec["volumes"] = {
                str(self._socket_host_dir(version)): {"bind": DIND_SOCKET_DIR, "mode": "rw"}
            }
        return spec

    def _socket_host_dir(self, version: str) -> Path:
        assert self.socket_dir is not None
        return self.socket_dir / version

    def start(self) -> list[Engine]:
        """Start every version's container and wait until each engine answers."""
        self.remove_leftovers()
        try:
            for version in self.versions:
                self._ensure_image(version)
                if self.transport == "unix":
                    self._socket_host_dir(version).mkdir(parents=True, exist_ok=True)
                log.info("starting %s", self.image(version))
                self.containers[version] = self.client.containers.run(
                    **self.container_spec(version)
                )
            return [self._wait(version) for version in self.versions]
        except BaseException:
            self.stop()
            raise

    def _ensure_image(self, version: str) -> None:
        try:
            self.client.images.get(self.image(version))
        except ImageNotFound:
            log.info("pulling %s onto the host engine", self.image(version))
            try:
                self.client.images.pull("docker", tag=f"{version}-dind")
            except (DockerException, RequestException) as exc:
                raise EngineError(f"cannot pull {self.image(version)}: {exc}") from exc

    def endpoint(self, version: str) -> str:
        """The engine's endpoint as the host reaches it (the container must be running)."""
        if self.transport == "unix":
            return f"unix://{self._socket_host_dir(version)}/docker.sock"
        container = self.containers[version]
        container.reload()
        ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        bindings = ports.get(f"{DIND_PORT}/tcp") or []
        if not bindings:
            return ""
        return f"tcp://127.0.0.1:{bindings[0]['HostPort']}"

    def _wait(self, version: str) -> Engine:
        deadline = time.monotonic() + self.start_timeout
        container = self.containers[version]
        while time.monotonic() < deadline:
            endpoint = self.endpoint(version)
            if container.status not in ("created", "running"):
                logs = container.logs(tail=10)
                text = logs.decode(errors="replace") if isinstance(logs, bytes) else str(logs)
                raise EngineError(
                    f"{self.image(version)} stopped ({container.status}): {text.strip()}"
                )
            if endpoint:
                engine = self._connect(endpoint, f"dind {version}")
                if engine.version:
                    return engine
            self._sleep(0.5)
        raise EngineError(f"{self.image(version)} did not answer within {self.start_timeout:.0f} s")

    def stop(self) -> None:
        """Stop and remove every container this provisioner started (and their volumes)."""
        for version, container in list(self.containers.items()):
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass
            except (DockerException, RequestException) as exc:
                log.warning("could not remove %s: %s", self.container_name(version), exc)
            self.containers.pop(version, None)

    def remove_leftovers(self) -> None:
        """Remove dind containers an earlier, interrupted run left on the host engine."""
        for container in self.client.containers.list(all=True, filters={"label": DIND_LABEL}):
            log.warning("removing leftover container %s", container.name)
            container.remove(force=True, v=True)

    def __enter__(self) -> list[Engine]:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _connect_quietly(endpoint: str, name: str) -> Engine:
    """The engine at `endpoint`, or an Engine without version while it does not answer yet."""
    try:
        return connect(endpoint, name=name, timeout=5.0)
    except EngineError:
        return Engine(endpoint, "", name=name)


@contextmanager
def provision(
    provisioner: str,
    *,
    versions: Sequence[str] | None = None,
    endpoints: Sequence[str] = (),
    insecure_registries: Sequence[str] = (),
    lab_dir: Path | None = None,
    host_client: Any = None,
    client: str = "docker",
) -> Iterator[list[Engine]]:
    """The engines of one provisioner, for the duration of a `with` block.

    Lab engines stay running afterwards (`lab down` stops them); dind containers are removed.
    `client` is the name pull observations record for these engines.
    """
    with _engines(
        provisioner, versions, endpoints, insecure_registries, lab_dir, host_client
    ) as engines:
        yield [replace(engine, client=client) for engine in engines]


@contextmanager
def _engines(
    provisioner: str,
    versions: Sequence[str] | None,
    endpoints: Sequence[str],
    insecure_registries: Sequence[str],
    lab_dir: Path | None,
    host_client: Any,
) -> Iterator[list[Engine]]:
    if provisioner == "host":
        if not endpoints:
            raise ConfigError("the host provisioner needs at least one engine endpoint")
        yield host_engines(endpoints)
    elif provisioner == "lab":
        yield lab_engines(lab_dir, versions, insecure_registries)
    elif provisioner == "dind":
        if not versions:
            raise ConfigError("the dind provisioner needs engine versions")
        client = host_client or _host_client(endpoints)
        with Dind(client, versions, insecure_registries=insecure_registries) as engines:
            yield engines
    else:
        raise ConfigError(f"provisioner must be one of {', '.join(PROVISIONERS)}")


def _host_client(endpoints: Sequence[str]) -> Any:
    import docker

    try:
        if endpoints:
            return docker.DockerClient(base_url=check_endpoint(endpoints[0]), version="auto")
        return docker.from_env(version="auto")
    except (DockerException, RequestException) as exc:
        raise EngineError(f"no host engine to run dind containers on: {exc}") from exc
