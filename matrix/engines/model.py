"""An engine is an API endpoint plus the version that answers there."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

from matrix.errors import EngineError

log = logging.getLogger(__name__)

SCHEMES = ("unix://", "tcp://")
# Long enough for a multi-gigabyte layer to arrive over a slow registry; a pull that sends
# nothing for this long counts as a dead engine.
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Engine:
    """A Docker engine: its API endpoint and the version it reports (e.g. `20.10.24+dfsg1`).

    `name` tells engines apart in logs (`lab bookworm`, `dind 27.3.1`); `client` is what pull
    observations record as the pulling client.
    """

    endpoint: str
    version: str = ""
    name: str = ""
    client: str = "docker"

    @property
    def label(self) -> str:
        return self.name or f"{self.client} {self.version} at {self.endpoint}"


def check_endpoint(endpoint: str) -> str:
    """`endpoint` if it is a `unix://` or `tcp://` URL; an EngineError otherwise."""
    text = endpoint.strip()
    if not text.startswith(SCHEMES) or len(text) <= len("unix://"):
        raise EngineError(f"engine endpoint {endpoint!r} is not unix:///path or tcp://host:port")
    return text


def api_client(endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> docker.APIClient:
    """A low-level API client with the API version negotiated with the engine.

    Raises EngineError when the engine does not answer.
    """
    try:
        return docker.APIClient(base_url=check_endpoint(endpoint), version="auto", timeout=timeout)
    except (DockerException, RequestException, OSError) as exc:
        raise EngineError(f"engine at {endpoint} does not answer: {exc}") from exc


def connect(endpoint: str, name: str = "", timeout: float = 10.0) -> Engine:
    """The engine at `endpoint`, with the version it reports; EngineError if it does not answer."""
    client = api_client(endpoint, timeout=timeout)
    try:
        version = str(client.version().get("Version", ""))
    except (DockerException, RequestException, OSError) as exc:
        raise EngineError(f"engine at {endpoint} does not answer: {exc}") from exc
    finally:
        client.close()
    if not version:
        raise EngineError(f"engine at {endpoint} reports no version")
    log.info("engine at %s reports version %s", endpoint, version)
    return Engine(endpoint=endpoint, version=version, name=name)


def is_alive(endpoint: str, timeout: float = 5.0) -> bool:
    """True when the engine at `endpoint` answers a ping."""
    try:
        client = docker.APIClient(base_url=endpoint, version="auto", timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (DockerException, RequestException, OSError):
        return False
