"""What tests can steer in the lab proxy: injected faults, and the pull limit with its counts.

One `ProxyState` is shared by the proxy's request threads; every change goes through its lock.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Docker Hub's window for anonymous pulls, in seconds (six hours).
RATE_WINDOW = 21600
#: The limit advertised in `ratelimit-limit` when none is enforced: Hub's anonymous limit.
ADVERTISED_PULL_LIMIT = 100


@dataclass
class Fault:
    """A misbehaviour to inject on requests whose path matches `path` (a regular expression).

    Faults apply to the registry API and to /token, never to the control API. `method` limits
    a fault to one HTTP method; `latency` (seconds) delays the answer. Then one of: `status`
    answers that status with `body` (JSON or text) without asking the upstream; `truncate`
    forwards the upstream's answer but closes the connection after that many body bytes;
    `reset` drops the connection with a TCP reset. `headers` are set on the answer, forwarded
    or made up (a registry that lies about a digest or a media type). `times` limits how often
    the fault applies (None: until faults are cleared).
    """

    path: str
    method: str | None = None
    status: int | None = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    latency: float = 0.0
    truncate: int | None = None
    reset: bool = False
    times: int | None = None
    applied: int = 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Fault:
        """A fault from its JSON form; ValueError names what is wrong with it."""
        known = {f.name for f in fields(cls)} - {"applied"}
        if not isinstance(raw, Mapping) or set(raw) - known or "path" not in raw:
            raise ValueError(f"a fault is an object with `path` and only {sorted(known)}")
        fault = cls(**{key: raw[key] for key in known if key in raw})
        fault.method = fault.method.upper() if isinstance(fault.method, str) else fault.method
        for problem, wrong in _checks(fault):
            if wrong:
                raise ValueError(f"fault {problem}")
        try:
            re.compile(fault.path)
        except re.error as exc:
            raise ValueError(f"fault path is not a regular expression: {exc}") from exc
        return fault

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        if self.method and self.method != method:
            return False
        return re.search(self.path, path) is not None


@dataclass
class ClientCount:
    manifest_get: int = 0
    manifest_head: int = 0
    refused: int = 0
    window_start: float = field(default_factory=time.monotonic)


class ProxyState:
    """Counts, limit and faults, shared by the proxy's request threads."""

    def __init__(self, pull_limit: int | None = None, window: int = RATE_WINDOW) -> None:
        self.pull_limit = pull_limit
        self.window = window
        self.faults: list[Fault] = []
        self.clients: dict[str, ClientCount] = {}
        self.lock = threading.Lock()

    def client(self, address: str) -> ClientCount:
        count = self.clients.get(address)
        if count is None or time.monotonic() - count.window_start > self.window:
            count = self.clients[address] = ClientCount()
        return count

    def refuse_pull(self, address: str) -> bool:
        """Whether a manifest GET from `address` must be refused (counted as refused if so)."""
        with self.lock:
            count = self.client(address)
            spent = self.pull_limit is not None and count.manifest_get >= self.pull_limit
            if spent:
                count.refused += 1
        return spent

    def count(self, address: str, method: str, status: int) -> None:
        """Count a manifest request: every HEAD, and each GET that got its manifest."""
        with self.lock:
            count = self.client(address)
            if method == "HEAD":
                count.manifest_head += 1
            elif method == "GET" and status == 200:
                count.manifest_get += 1

    def rate_headers(self, address: str) -> dict[str, str]:
        """Docker Hub's rate-limit headers, as `address` would see them now."""
        with self.lock:
            limit = self.pull_limit if self.pull_limit is not None else ADVERTISED_PULL_LIMIT
            used = self.client(address).manifest_get
            window = self.window
        return {
            "ratelimit-limit": f"{limit};w={window}",
            "ratelimit-remaining": f"{max(limit - used, 0)};w={window}",
            "docker-ratelimit-source": address,
        }

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.applied += 1
                    return fault
        return None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "limit": self.pull_limit,
                "window": self.window,
                "clients": {
                    address: {
                        "manifest_get": count.manifest_get,
                        "manifest_head": count.manifest_head,
                        "refused": count.refused,
                    }
                    for address, count in sorted(self.clients.items())
                },
                "faults": [asdict(fault) for fault in self.faults],
            }


def limit_from_json(body: Any, window: int) -> tuple[int | None, int]:
    """The pull limit and window of a /_lab/limit request, checked."""
    if not isinstance(body, Mapping):
        raise ValueError('the limit is an object like {"pulls": 10, "window": 21600}')
    pulls = body.get("pulls")
    window = body.get("window", window)
    if pulls is not None and (not isinstance(pulls, int) or pulls < 0):
        raise ValueError("pulls is a number of at least 0, or null for no limit")
    if not isinstance(window, int) or window < 1:
        raise ValueError("window is a number of seconds, at least 1")
    return pulls, window


def _checks(fault: Fault) -> list[tuple[str, bool]]:
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    headers = fault.headers
    return [
        ("path is a string", not isinstance(fault.path, str)),
        ("method is a string", fault.method is not None and not isinstance(fault.method, str)),
        (
            "status is an HTTP status",
            fault.status is not None and not (count(fault.status) and 100 <= fault.status <= 599),
        ),
        ("body is a string", fault.body is not None and not isinstance(fault.body, str)),
        ("latency is seconds, at least 0", not number(fault.latency) or fault.latency < 0),
        ("truncate is a byte count", fault.truncate is not None and not count(fault.truncate)),
        ("reset is true or false", not isinstance(fault.reset, bool)),
        ("times is a count", fault.times is not None and not count(fault.times)),
        ("headers are an object of header names and single-line values", not _headers_ok(headers)),
    ]


def _headers_ok(headers: Any) -> bool:
    if not isinstance(headers, dict):
        return False
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return False
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name) or set(value) & {"\r", "\n"}:
            return False
    return True
