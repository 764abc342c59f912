"""The lab's Docker engines: one real dockerd per Debian suite, each fully separate from the others.

Every engine has its own directory under `<lab>/engines/<suite>/` holding its socket, data root,
exec root, pid file, config and log, and starts its own containerd (dockerd launches one below
its exec root and uses a containerd namespace named after the suite). Storage is `vfs` and
networking is off (`--bridge=none`, no iptables), so an engine needs nothing from the host but
loopback. Where `unshare` is available each engine runs in its own mount and PID namespaces:
dockerd is the namespace's first process, so when it dies the kernel ends its containerd and any
shim, and mounts it made never show up on the host.

The processes outlive the command that started them; the lab state file records them, so
`status` and `down` work from any later process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

from matrix.errors import LabError
from matrix.lab.debian import SUITES, EngineRoot, ensure_engines, suite_for
from matrix.lab.state import (
    Part,
    default_cache_dir,
    ensure_private_lab_dir,
    load_state,
    locked,
    save_state,
)

log = logging.getLogger(__name__)

KIND = "engine"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
# sockaddr_un holds 108 bytes; containerd's sockets sit a few levels below the exec root.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class EngineLayout:
    """Where one engine keeps its files."""

    base: Path

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    @property
    def exec_root(self) -> Path:
        return self.base / "run"

    @property
    def pidfile(self) -> Path:
        """Where dockerd writes its own pid. In its own PID namespace that pid is 1, which on
        the host names init, so the file is named for the namespace; see `host_pidfile`."""
        return self.base / "dockerd.ns-pid"

    @property
    def host_pidfile(self) -> Path:
        """dockerd's pid as the host sees it, written by the lab once the engine answers."""
        return self.base / "dockerd.pid"

    @property
    def config(self) -> Path:
        return self.base / "daemon.json"

    @property
    def log(self) -> Path:
        return self.base / "dockerd.log"


def layout(lab_dir: Path, suite: str) -> EngineLayout:
    return EngineLayout(Path(lab_dir).absolute() / "engines" / suite)


def dockerd_command(
    root: EngineRoot, place: EngineLayout, insecure_registries: Sequence[str]
) -> list[str]:
    """The dockerd command line of one lab engine."""
    namespace = f"pull-matrix-{root.suite}"
    command = [
        str(root.dockerd),
        f"--config-file={place.config}",
        f"--data-root={place.data_root}",
        f"--exec-root={place.exec_root}",
        f"--host={place.endpoint}",
        f"--pidfile={place.pidfile}",
        f"--containerd-namespace={namespace}",
        f"--containerd-plugins-namespace={namespace}-plugins",
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--log-level=info",
    ]
    command += [f"--insecure-registry={registry}" for registry in insecure_registries]
    return command


def _in_namespaces(command: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        log.warning("unshare not found; engines run in the host's mount and PID namespaces")
        return command
    return [
        unshare,
        "--mount",
        "--pid",
        "--fork",
        "--propagation=private",
        "--mount-proc",
        "--kill-child=SIGKILL",
        *command,
    ]


def up(
    lab_dir: Path, insecure_registries: list[str], versions: Sequence[str] | None = None
) -> list[Part]:
    """Start the lab's engines (all, or those named by version or suite) and record them.

    Engines already running and answering are kept as they are. Returns the parts of the engines
    asked for, in the order of the suites.
    """
    suites = [suite_for(name) for name in versions] if versions else list(SUITES)
    suites = sorted(set(suites), key=list(SUITES).index)
    if os.geteuid() != 0:
        raise LabError("the lab's engines run as root (dockerd needs it)")
    ensure_private_lab_dir(lab_dir)
    with _locked(Path(lab_dir)):
        return _up(Path(lab_dir), suites, insecure_registries)


def _up(lab_dir: Path, suites: list[str], insecure_registries: list[str]) -> list[Part]:
    state = load_state(lab_dir)
    running = {part.extra.get("suite", ""): part for part in state.of_kind(KIND)}
    roots = ensure_engines(suites)

    def bring_up(suite: str) -> Part:
        current = running.get(suite)
        if current is not None and _check(current).healthy:
            return current
        return _start(lab_dir, roots[suite], insecure_registries)

    with ThreadPoolExecutor(max_workers=len(suites)) as pool:
        futures = {suite: pool.submit(bring_up, suite) for suite in suites}
    started, failures = {}, []
    for suite, future in futures.items():
        try:
            started[suite] = future.result()
        except LabError as exc:
            failures.append(str(exc))

    kept = [part for suite, part in running.items() if suite not in started]
    state = load_state(lab_dir)
    state.replace(KIND, _ordered([*kept, *started.values()]))
    save_state(lab_dir, state)
    if failures:
        raise LabError("; ".join(failures))
    return [started[suite] for suite in suites]


def _locked(lab_dir: Path) -> AbstractContextManager[None]:
    """Hold the lab's engine lock, so two processes never start or stop engines at once."""
    return locked(lab_dir / ".engines.lock")


def _start(lab_dir: Path, root: EngineRoot, insecure_registries: Sequence[str]) -> Part:
    place = layout(lab_dir, root.suite)
    socket_paths = [place.socket, place.exec_root / "containerd" / "containerd.sock.ttrpc"]
    if max(len(str(path)) for path in socket_paths) > MAX_SOCKET_PATH:
        raise LabError(f"lab directory {lab_dir} is too long for Unix socket paths below it")
    _stop_engine(place, [])
    place.base.mkdir(parents=True, exist_ok=True)
    place.config.write_text("{}\n", encoding="utf-8")

    command = _in_namespaces(dockerd_command(root, place, insecure_registries))
    with open(place.log, "ab") as log_stream:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            env={"PATH": root.path, "HOME": str(place.base), "LANG": "C.UTF-8"},
            start_new_session=True,
        )
    log.info("starting dockerd %s (Debian %s) at %s", root.version, root.suite, place.endpoint)
    try:
        version = _wait_healthy(place, process)
    except LabError:
        _stop_engine(place, [process.pid])
        # The launcher (unshare, or dockerd itself) is this process's own child.
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        raise
    pids = [process.pid, *_children(process.pid)]
    _write_host_pid(place, pids)
    return Part(
        kind=KIND,
        role=root.version,
        endpoint=place.endpoint,
        version=version,
        pids=pids,
        healthy=True,
        extra={
            "suite": root.suite,
            "packages": " ".join(f"{name}={ver}" for name, ver in root.packages.items()),
            "base": str(place.base),
            "log": str(place.log),
        },
    )


def _write_host_pid(place: EngineLayout, pids: Sequence[int]) -> None:
    daemons = [pid for pid in pids if _command_name(pid) == "dockerd"]
    if daemons:
        place.host_pidfile.write_text(f"{daemons[0]}\n", encoding="utf-8")


def _wait_healthy(place: EngineLayout, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(
                f"dockerd at {place.endpoint} exited with status {process.returncode}: "
                f"{_log_tail(place.log)}"
            )
        if place.socket.exists():
            version = engine_version(place.endpoint)
            if version:
                return version
        time.sleep(0.2)
    raise LabError(f"dockerd at {place.endpoint} did not answer within {START_TIMEOUT:.0f} s")


def engine_version(endpoint: str, timeout: float = 5.0) -> str:
    """The version the engine at `endpoint` reports, or "" when it does not answer."""
    try:
        client = docker.APIClient(base_url=endpoint, version="auto", timeout=timeout)
        try:
            return str(client.version().get("Version", ""))
        finally:
            client.close()
    except (DockerException, RequestException, OSError):
        return ""


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])


def status(lab_dir: Path) -> list[Part]:
    """The recorded engines, each checked again: alive, answering, and the version it reports."""
    state = load_state(lab_dir)
    parts = [_check(part) for part in state.of_kind(KIND)]
    state.replace(KIND, _ordered(parts))
    save_state(lab_dir, state)
    return _ordered(parts)


def _check(part: Part) -> Part:
    version = engine_version(part.endpoint) if any(map(_alive, part.pids)) else ""
    part.healthy = bool(version)
    part.version = version or part.version
    return part


def down(lab_dir: Path) -> None:
    """Stop every lab engine, leaving no process, mount or runtime directory behind.

    Engines are stopped by their recorded pids and by what still refers to their directories,
    so an engine whose state record was lost is stopped too. Only directories inside
    `<lab>/engines/` are touched, and only processes run from the lab's own engine binaries.
    """
    ensure_private_lab_dir(lab_dir)
    with _locked(Path(lab_dir)):
        _down(Path(lab_dir))


def _down(lab_dir: Path) -> None:
    state = load_state(lab_dir)
    engines_dir = Path(lab_dir).absolute() / "engines"
    recorded: dict[Path, list[int]] = {}
    for part in state.of_kind(KIND):
        base = _confined(engines_dir, Path(part.extra.get("base", "")))
        if base is None:
            log.warning(
                "ignoring the recorded engine %r: its directory is not inside %s",
                part.extra.get("base", ""),
                engines_dir,
            )
            continue
        recorded[base] = part.pids
    bases = set(recorded)
    if engines_dir.is_dir() and _confined_root(engines_dir) is not None:
        for path in engines_dir.iterdir():
            base = _confined(engines_dir, path)
            if base is not None and path.is_dir():
                bases.add(base)
    for base in sorted(bases):
        _stop_engine(EngineLayout(base), recorded.get(base, []))
    state = load_state(lab_dir)
    state.replace(KIND, [])
    save_state(lab_dir, state)


def _confined_root(engines_dir: Path) -> Path | None:
    """`engines_dir` resolved, when it is a real directory inside the lab directory."""
    if engines_dir.is_symlink():
        return None
    resolved = engines_dir.resolve()
    return resolved if resolved.is_relative_to(engines_dir.parent.resolve()) else None


def _confined(engines_dir: Path, base: Path) -> Path | None:
    """`base` as an absolute path when it is an engine directory: a direct entry of
    `engines_dir`, not a symbolic link, resolving to inside it. None otherwise."""
    if not base.is_absolute() or base.parent != engines_dir or base.is_symlink():
        return None
    root = _confined_root(engines_dir)
    if root is None or base.resolve().parent != root:
        return None
    return base


def _stop_engine(place: EngineLayout, pids: Iterable[int]) -> None:
    """SIGTERM to dockerd, a grace period, then SIGKILL to whatever of the engine is left."""
    recorded = {pid for pid in pids if _is_engine_process(pid, place)}
    processes = set(_referring(place)) | recorded
    if processes:
        log.info("stopping the engine in %s (pids %s)", place.base, sorted(processes))
        daemons = [pid for pid in processes if _command_name(pid) == "dockerd"]
        for pid in daemons or processes:
            _signal(pid, signal.SIGTERM)
        _wait_gone(processes, STOP_TIMEOUT)
        leftovers = {pid for pid in set(_referring(place)) | processes if _alive(pid)}
        for pid in leftovers:
            log.warning("engine process %d did not stop; killing it", pid)
            _signal(pid, signal.SIGKILL)
        _wait_gone(leftovers, 10.0)
    _unmount_below(place.base)
    for directory in (place.exec_root, place.data_root):
        shutil.rmtree(directory, ignore_errors=True)
    for path in (place.socket, place.pidfile, place.host_pidfile):
        path.unlink(missing_ok=True)


def _signal(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, number)


def _wait_gone(pids: Iterable[int], timeout: float) -> None:
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            _reap(pid)
            if not _alive(pid):
                pending.discard(pid)
        if pending:
            time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet collected) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _command_name(pid: int) -> str:
    args = _cmdline(pid)
    return Path(args[0]).name if args else ""


def engine_binaries_dir() -> Path:
    """Where the lab's unpacked engine binaries live; only processes run from here are stopped."""
    return (default_cache_dir() / "engines").resolve()


def _is_lab_binary(pid: int) -> bool:
    """True when the process runs a dockerd or containerd binary of the lab's engine roots."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False
    named = exe.name == "dockerd" or exe.name.startswith("containerd")
    return named and exe.is_relative_to(engine_binaries_dir())


def names_engine(args: Sequence[str], place: EngineLayout) -> bool:
    """True when a command line names the engine directory of `place` by an exact argument:
    its own `--data-root=`/`--exec-root=` option, or a path equal to or below the directory."""
    base = str(place.base).rstrip("/")
    flags = {f"--data-root={place.data_root}", f"--exec-root={place.exec_root}"}
    return any(arg in flags or arg == base or arg.startswith(base + "/") for arg in args)


def _is_engine_process(pid: int, place: EngineLayout) -> bool:
    """True for a live dockerd/containerd of the lab's binaries that belongs to this engine."""
    return _alive(pid) and _is_lab_binary(pid) and names_engine(_cmdline(pid), place)


def _referring(place: EngineLayout) -> list[int]:
    """Live processes of the lab's engine binaries that name this engine's directory."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if pid != os.getpid() and _is_engine_process(pid, place)]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def mounts_below(base: Path) -> list[str]:
    """Mount points of this mount namespace at or below `base`, deepest first."""
    prefix = str(Path(base).absolute()).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as three-digit octal escapes.
    for code in ("040", "011", "012", "134"):
        text = text.replace("\\" + code, chr(int(code, 8)))
    return text


def _unmount_below(base: Path) -> None:
    for point in mounts_below(base):
        log.warning("unmounting %s left behind by an engine", point)
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _ordered(parts: Iterable[Part]) -> list[Part]:
    order = list(SUITES)

    def key(part: Part) -> int:
        suite = part.extra.get("suite", "")
        return order.index(suite) if suite in order else len(order)

    return sorted(parts, key=key)
