"""A real CNCF distribution registry (`/usr/bin/docker-registry`) on loopback.

Each registry gets its own directory holding its config, its storage and its log. Schema 1
manifests are accepted (old images still carry them) and deletes are enabled, so tests can
build every image shape the matrix meets.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from matrix.errors import LabError

log = logging.getLogger(__name__)

REGISTRY_BINARY = "/usr/bin/docker-registry"
CONFIG_FILE = "config.yml"
LOG_FILE = "registry.log"


@dataclass(frozen=True)
class TokenAuth:
    """`auth: token` settings: where clients get tokens, and which certificates sign them."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


def registry_binary() -> str | None:
    """The registry binary's path, or None when the Debian package is not installed."""
    binary = os.environ.get("PULL_MATRIX_REGISTRY_BINARY", REGISTRY_BINARY)
    return binary if os.access(binary, os.X_OK) else shutil.which("docker-registry")


def registry_version(binary: str | None = None) -> str:
    """The version the binary reports, such as `2.8.2+ds1`; empty if it cannot be asked."""
    binary = binary or registry_binary()
    if not binary:
        return ""
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    words = done.stdout.split()
    return words[-1] if words else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def write_config(root: Path, port: int, auth: TokenAuth | None = None) -> Path:
    """Write the registry's config YAML below `root` and return its path.

    The YAML is written by hand: every value is either a number, a path or a URL this module
    built, and each is quoted, so no YAML library is needed.
    """
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  formatter: text",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {_quote(str(storage))}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {_quote(f'127.0.0.1:{port}')}",
        f"  secret: {_quote(secrets.token_hex(16))}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
        "compatibility:",
        "  schema1:",
        "    enabled: true",
    ]
    if auth is not None:
        lines += [
            "auth:",
            "  token:",
            f"    realm: {_quote(auth.realm)}",
            f"    service: {_quote(auth.service)}",
            f"    issuer: {_quote(auth.issuer)}",
            f"    rootcertbundle: {_quote(str(auth.rootcertbundle))}",
        ]
    path = root / CONFIG_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _quote(value: str) -> str:
    if any(char in value for char in '"\\\n'):
        raise LabError(f"registry config value cannot be written: {value!r}")
    return f'"{value}"'


class Registry:
    """A running registry process. Stop it with `stop()` (or use it as a context manager)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, root: Path) -> None:
        self.process = process
        self.port = port
        self.root = root

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.root / LOG_FILE

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_registry(
    root: Path,
    port: int | None = None,
    auth: TokenAuth | None = None,
    *,
    detach: bool = False,
    timeout: float = 20.0,
) -> Registry:
    """Start a registry storing below `root`, listening on 127.0.0.1:`port` (or a free port).

    With `detach`, the process gets its own session, so it outlives the Python process that
    started it (the lab's registries do); otherwise it is stopped when its caller says so.
    """
    binary = registry_binary()
    if binary is None:
        raise LabError(f"{REGISTRY_BINARY} is missing: install the Debian package docker-registry")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if port is not None and port_is_busy(port):
        hint = " (by the Debian package's own registry service?)" if port == 5000 else ""
        raise LabError(f"cannot start a registry on 127.0.0.1:{port}: the port is in use{hint}")

    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        config = write_config(root, chosen, auth)
        process = _spawn(binary, config, root / LOG_FILE, detach)
        registry = Registry(process, chosen, root)
        try:
            wait_until_healthy(registry.url, timeout, process)
        except LabError as exc:
            registry.stop()
            if attempt + 1 == attempts:
                tail = log_tail(registry.log_path, 5)
                raise LabError(f"{exc}; its log ends with:\n{tail}") from exc
            continue
        log.info("registry started at %s (pid %d)", registry.url, process.pid)
        return registry
    raise AssertionError("unreachable")  # pragma: no cover


def _spawn(binary: str, config: Path, log_path: Path, detach: bool) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log_stream:
        try:
            return subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
                cwd=config.parent,
                env=_registry_environment(),
            )
        except OSError as exc:
            raise LabError(f"cannot start {binary}: {exc}") from exc


def _registry_environment() -> dict[str, str]:
    """The environment without REGISTRY_* variables, which would override the config file."""
    return {name: value for name, value in os.environ.items() if not name.startswith("REGISTRY_")}


def wait_until_healthy(
    url: str, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until GET `url`/v2/ answers 200 or 401 (a registry that wants a token is healthy)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LabError(f"registry for {url} exited with status {process.returncode}")
        if is_healthy(url):
            return
        last = "no answer yet"
        time.sleep(0.1)
    raise LabError(f"registry at {url} did not answer GET /v2/ within {timeout:.0f}s ({last})")


def is_healthy(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/v2/", timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code in (200, 401)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate `process`, then kill it if it has not exited within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a part's log, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
