"""The lab's two registries, in the roles of Docker Hub (`docker.io`) and GHCR (`ghcr.io`).

Each role is a real distribution registry with `auth: token`, behind the lab proxy, which
serves the role's token endpoint (and, for the Hub, its pull limit). Clients only ever see the
proxy, at a fixed port so results stay comparable between runs: 127.0.0.1:5101 for the Hub
role and 127.0.0.1:5102 for GHCR. Anonymous clients may pull; the lab's publisher (a user with
a password generated on first start and kept in the lab directory) may also push.

`up` starts the parts as background processes that outlive the command that started them and
records them in the lab state as one part of kind `registry` per role, whose endpoint is the
proxy's address. `start_role` runs the same arrangement inside the calling process, for tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from matrix.errors import LabError
from matrix.lab.proxy import GHCR_ROLE, HUB_ROLE, Proxy, ProxyConfig
from matrix.lab.registry import (
    Registry,
    TokenAuth,
    free_port,
    is_healthy,
    log_tail,
    port_is_busy,
    registry_version,
    start_registry,
)
from matrix.lab.state import (
    STATE_FILE,
    Part,
    ensure_private_lab_dir,
    load_state,
    locked,
    save_state,
)
from matrix.lab.tokens import GHCR_SHAPE, HUB_SHAPE, TokenIssuer

log = logging.getLogger(__name__)

KIND = "registry"
ISSUER = "pull-matrix-lab"
PUBLISHER = "lab-publisher"
CREDENTIALS_FILE = "publisher.json"


@dataclass(frozen=True)
class RoleSpec:
    """What a role stands in for: its name, the proxy's behaviour and token service, its port."""

    name: str
    proxy_role: str
    service: str
    port: int


ROLES: dict[str, RoleSpec] = {
    "docker.io": RoleSpec("docker.io", HUB_ROLE, "registry.docker.io", 5101),
    "ghcr.io": RoleSpec("ghcr.io", GHCR_ROLE, "ghcr.io", 5102),
}


def role_dir(lab_dir: Path, role: str) -> Path:
    return Path(lab_dir) / "registries" / role


def publisher_credentials(lab_dir: Path) -> tuple[str, str]:
    """The lab publisher's (user, password), created on first use; the file is private."""
    path = Path(lab_dir) / "registries" / CREDENTIALS_FILE
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
        return str(raw["user"]), str(raw["password"])
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(json.dumps({"user": PUBLISHER, "password": password}), encoding="utf-8")
    return PUBLISHER, password


def _issuer(directory: Path, spec: RoleSpec, users: Mapping[str, str]) -> TokenIssuer:
    shape = GHCR_SHAPE if spec.proxy_role == GHCR_ROLE else HUB_SHAPE
    return TokenIssuer(directory, service=spec.service, issuer=ISSUER, users=users, shape=shape)


# In-process roles, for tests ------------------------------------------------------------------


@dataclass
class RunningRole:
    """A role run by this process: a registry subprocess behind a proxy thread."""

    spec: RoleSpec
    registry: Registry
    proxy: Proxy
    issuer: TokenIssuer

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def realm(self) -> str:
        return f"{self.proxy.url}/token"

    def reset(self) -> None:
        """Forget counts and faults and lift the pull limit, as if the proxy had just started."""
        state = self.proxy.state
        with state.lock:
            state.clients.clear()
            state.faults.clear()
            state.pull_limit = None

    def stop(self) -> None:
        self.proxy.stop()
        self.registry.stop()

    def __enter__(self) -> RunningRole:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_role(
    root: Path,
    role: str,
    *,
    port: int = 0,
    users: Mapping[str, str] | None = None,
    pull_limit: int | None = None,
) -> RunningRole:
    """Run `role` (`docker.io` or `ghcr.io`) below `root` within this process."""
    spec = ROLES[role]
    port = port or free_port()
    issuer = _issuer(Path(root) / "tokens", spec, users or {})
    auth = TokenAuth(f"http://127.0.0.1:{port}/token", spec.service, ISSUER, issuer.cert_path)
    registry = start_registry(Path(root) / "registry", auth=auth)
    try:
        config = ProxyConfig(registry.url, spec.proxy_role, issuer, pull_limit)
        proxy = Proxy(config, port)
    except LabError:
        registry.stop()
        raise
    return RunningRole(spec, registry, proxy, issuer)


# Background roles, for the lab ----------------------------------------------------------------


def up(lab_dir: Path, ports: Mapping[str, int] | None = None) -> list[Part]:
    """Start both roles (or keep them, if they already run and answer); return their parts.

    `ports` maps a role to the proxy's port when the defaults (5101, 5102) are not wanted.
    """
    lab_dir = Path(lab_dir)
    ensure_private_lab_dir(lab_dir)
    with locked(lab_dir / ".registries.lock"):
        return _up(lab_dir, dict(ports or {}))


def _up(lab_dir: Path, ports: dict[str, int]) -> list[Part]:
    state = load_state(lab_dir)
    recorded = {part.role: _check(part) for part in state.of_kind(KIND)}
    parts: list[Part] = []
    for name, spec in ROLES.items():
        port = ports.get(name, spec.port)
        current = recorded.get(name)
        if current is not None and current.healthy and current.endpoint == f"127.0.0.1:{port}":
            parts.append(current)
            continue
        if current is not None:
            _stop_pids(current.pids, lab_dir)
            del recorded[name]
        parts.append(_start_background(lab_dir, spec, port))
        # Recorded at once, so a failure starting the next role leaves this one stoppable.
        _record(lab_dir, _merge(parts, recorded.values()))
    _record(lab_dir, parts)
    return parts


def _merge(started: list[Part], recorded: Iterable[Part]) -> list[Part]:
    roles = {part.role for part in started}
    return [*started, *(part for part in recorded if part.role not in roles)]


def _record(lab_dir: Path, parts: list[Part]) -> None:
    state = load_state(lab_dir)
    state.replace(KIND, parts)
    save_state(lab_dir, state)


def _start_background(lab_dir: Path, spec: RoleSpec, port: int) -> Part:
    if port_is_busy(port):
        raise LabError(
            f"cannot start the {spec.name} role on 127.0.0.1:{port}: the port is in use "
            "(another program, or a lab started from another directory)"
        )
    root = role_dir(lab_dir, spec.name)
    root.mkdir(parents=True, exist_ok=True)
    user, password = publisher_credentials(lab_dir)
    users_file = root / "users.json"
    users_file.touch(mode=0o600)
    users_file.write_text(json.dumps({user: password}), encoding="utf-8")
    issuer = _issuer(root / "tokens", spec, {})

    auth = TokenAuth(f"http://127.0.0.1:{port}/token", spec.service, ISSUER, issuer.cert_path)
    registry = start_registry(root / "registry", auth=auth, detach=True)
    started = [registry.pid]
    try:
        proxy = _spawn_proxy(root, spec, port, registry.url, users_file)
        started.insert(0, proxy.pid)
        _wait_for_proxy(port, proxy, root / "proxy.log")
    except LabError:
        _stop_pids(started, lab_dir)
        raise
    log.info("%s role at 127.0.0.1:%d (registry %s)", spec.name, port, registry.url)
    return Part(
        kind=KIND,
        role=spec.name,
        endpoint=f"127.0.0.1:{port}",
        version=_version(),
        pids=[proxy.pid, registry.pid],
        healthy=True,
        extra={
            "upstream": registry.url,
            "realm": auth.realm,
            "service": spec.service,
            "directory": str(root),
        },
    )


def _spawn_proxy(
    root: Path, spec: RoleSpec, port: int, upstream: str, users_file: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "matrix.lab.proxy",
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        upstream,
        "--role",
        spec.proxy_role,
        "--token-dir",
        str(root / "tokens"),
        "--service",
        spec.service,
        "--issuer",
        ISSUER,
        "--users-file",
        str(users_file),
    ]
    # The proxy runs from the role's directory; it must import this very package.
    package_parent = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    with open(root / "proxy.log", "ab") as log_stream:
        try:
            return subprocess.Popen(
                command,
                env={**os.environ, "PYTHONPATH": python_path},
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=root,
            )
        except OSError as exc:
            raise LabError(f"cannot start the {spec.name} proxy: {exc}") from exc


def _wait_for_proxy(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 20
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_tail(log_path, 5)
            raise LabError(f"the proxy on {url} exited ({process.returncode}):\n{tail}")
        if is_healthy(url):
            return
        time.sleep(0.1)
    raise LabError(f"the proxy on {url} did not answer within 20s")


def _version() -> str:
    version = registry_version()
    return f"distribution {version}" if version else "distribution"


def status(lab_dir: Path) -> list[Part]:
    """The recorded roles, each checked again: both processes alive and the proxy answering."""
    state = load_state(Path(lab_dir))
    parts = [_check(part) for part in state.of_kind(KIND)]
    _record(lab_dir, parts)
    return sorted(parts, key=lambda part: part.endpoint)


def _check(part: Part) -> Part:
    alive = bool(part.pids) and all(_alive(pid) for pid in part.pids)
    upstream = part.extra.get("upstream", "")
    part.healthy = (
        alive and is_healthy(f"http://{part.endpoint}") and bool(upstream) and is_healthy(upstream)
    )
    return part


def down(lab_dir: Path) -> None:
    """Stop both roles: the recorded processes, and any process still running from the lab's
    registry directories (if a state record was lost)."""
    lab_dir = Path(lab_dir)
    ensure_private_lab_dir(lab_dir)
    with locked(lab_dir / ".registries.lock"):
        state = load_state(lab_dir)
        pids = [pid for part in state.of_kind(KIND) for pid in part.pids]
        pids += _referring(lab_dir / "registries")
        _stop_pids(sorted(set(pids)), lab_dir)
        if (lab_dir / STATE_FILE).exists():
            state = load_state(lab_dir)
            state.replace(KIND, [])
            save_state(lab_dir, state)
    log.info("registries stopped")


# Processes ------------------------------------------------------------------------------------


def _stop_pids(pids: Iterable[int], lab_dir: Path, timeout: float = 10.0) -> None:
    """Stop processes this lab started: SIGTERM, then SIGKILL for those still there."""
    ours = [pid for pid in pids if _is_lab_process(pid, lab_dir)]
    for pid in ours:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in ours):
        time.sleep(0.05)
    for pid in ours:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    for pid in ours:
        _reap(pid)


def _is_lab_process(pid: int, lab_dir: Path) -> bool:
    """Whether `pid` is still a registry or proxy of this lab (a recorded pid may have been
    reused, or name another lab's registry)."""
    return is_lab_command(_cmdline(pid), lab_dir)


def is_lab_command(args: list[str], lab_dir: Path) -> bool:
    """Whether a command line is a registry or proxy run from this lab's registry directory:
    the program is one of the two, and an argument is a path below `<lab>/registries/`."""
    registry = bool(args) and Path(args[0]).name == "docker-registry"
    program = registry or "matrix.lab.proxy" in args
    return program and any(_below(arg, lab_dir / "registries") for arg in args[1:])


def _below(argument: str, directory: Path) -> bool:
    """Whether the path `argument` lies below `directory` (compared as written and resolved)."""
    forms = {str(directory.absolute()), str(directory.resolve()), str(directory)}
    return any(argument.startswith(form.rstrip("/") + "/") for form in forms)


def _signal(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stream:
            fields = stream.read().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    if fields and fields[0] == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so no zombie is left behind."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            raw = stream.read()
    except OSError:
        return []
    return [item.decode(errors="replace") for item in raw.split(b"\0") if item]


def _referring(base: Path) -> list[int]:
    """Processes whose command line names a path below `base`."""
    prefix = str(base.resolve() if base.exists() else base)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if any(argument.startswith(prefix + os.sep) for argument in _cmdline(int(entry))):
            found.append(int(entry))
    return found
