"""An engine is an API endpoint plus the version that answers there."""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass
from typing import Any

import docker
import requests.exceptions
import urllib3.exceptions
from docker.errors import DockerException, StreamParseError
from requests.exceptions import RequestException

from matrix.errors import EngineError

log = logging.getLogger(__name__)

SCHEMES = ("unix://", "tcp://")

# What talking to an engine can raise when the engine, its socket or the stream it sends breaks,
# from each layer of the client stack (docker SDK, requests, urllib3, http.client, sockets).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    DockerException,
    RequestException,
    OSError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    StreamParseError,
)
_TIMEOUTS = (TimeoutError, requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for an engine, in seconds.

    `control` bounds each short API call (version, ping, inspect, remove). `stream` bounds the
    silence between two progress events of a pull: long enough for a slow registry or a large
    layer being unpacked, after which the engine counts as hung.
    """

    control: float = 30.0
    stream: float = 600.0


DEFAULT_TIMEOUTS = Timeouts()


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


class _BoundedClient(docker.APIClient):  # type: ignore[misc]
    """An API client whose streamed answers (pulls) wait at most `stream_timeout` per read.

    The docker SDK sends streaming calls without a read timeout, so an engine that stops
    sending in the middle of a pull would block its caller forever.
    """

    def __init__(self, *args: Any, stream_timeout: float, **kwargs: Any) -> None:
        self.stream_timeout = stream_timeout
        super().__init__(*args, **kwargs)

    def _post(self, url: str, **kwargs: Any) -> Any:
        if kwargs.get("stream") and kwargs.get("timeout", 0) is None:
            kwargs["timeout"] = self.stream_timeout
        return super()._post(url, **kwargs)


def api_client(endpoint: str, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> docker.APIClient:
    """A low-level API client with the API version negotiated with the engine.

    Raises EngineError when the engine does not answer.
    """
    try:
        return _BoundedClient(
            base_url=check_endpoint(endpoint),
            version="auto",
            timeout=timeouts.control,
            stream_timeout=timeouts.stream,
        )
    except TRANSPORT_ERRORS as exc:
        raise EngineError(f"engine at {endpoint} does not answer: {exc}") from exc


def timed_out(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, is a timeout."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _TIMEOUTS):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def connect(endpoint: str, name: str = "", timeout: float = 10.0) -> Engine:
    """The engine at `endpoint`, with the version it reports; EngineError if it does not answer."""
    client = api_client(endpoint, Timeouts(control=timeout))
    try:
        version = str(client.version().get("Version", ""))
    except TRANSPORT_ERRORS as exc:
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
    except TRANSPORT_ERRORS:
        return False
