"""What the lab has running: one record per part, kept as JSON in the lab directory."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from matrix.errors import LabError

STATE_FILE = "lab.json"


def default_lab_dir() -> Path:
    """Where the lab keeps its processes' state: $PULL_MATRIX_LAB_DIR, or a short path under /tmp.

    The path is short on purpose: Unix socket paths of the engines live below it and are limited
    to about 100 bytes.
    """
    return Path(os.environ.get("PULL_MATRIX_LAB_DIR", "/tmp/pull-matrix-lab"))


def default_cache_dir() -> Path:
    """Where downloads (engine packages) are cached between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("PULL_MATRIX_CACHE_DIR", Path(base) / "pull-matrix"))


@dataclass
class Part:
    """One running part of the lab.

    `kind` is `registry`, `proxy`, `token-service` or `engine`; `role` says what it stands in for
    (`docker.io`, `ghcr.io`, or an engine version); `endpoint` is how clients reach it
    (`http://127.0.0.1:PORT`, `127.0.0.1:PORT` for registries, `unix:///…/docker.sock` for engines).
    """

    kind: str
    role: str
    endpoint: str
    version: str = ""
    pids: list[int] = field(default_factory=list)
    healthy: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class LabState:
    parts: list[Part] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Part]:
        return [part for part in self.parts if part.kind == kind]

    def replace(self, kind: str, parts: list[Part]) -> None:
        """Replace every part of `kind` with `parts` (other kinds are kept)."""
        self.parts = [part for part in self.parts if part.kind != kind] + list(parts)


def load_state(lab_dir: Path) -> LabState:
    path = Path(lab_dir) / STATE_FILE
    if not path.exists():
        return LabState()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LabState([Part(**item) for item in raw.get("parts", [])])
    except (OSError, ValueError, TypeError) as exc:
        raise LabError(f"lab state {path} cannot be read: {exc}") from exc


def save_state(lab_dir: Path, state: LabState) -> None:
    """Write the state atomically, so a reader never sees half a file."""
    directory = Path(lab_dir)
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".lab.", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump({"parts": [asdict(part) for part in state.parts]}, stream, indent=2)
    os.replace(temporary, directory / STATE_FILE)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refuse_unsafe(path: Path, what: str) -> None:
    """Raise LabError unless `path` (not followed if a link) belongs to this user and no one
    else may write to it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LabError(f"{what} {path} cannot be inspected: {exc}") from exc
    if info.st_uid != os.geteuid():
        raise LabError(f"{what} {path} belongs to user {info.st_uid}, not to this user; refusing")
    if stat.S_ISLNK(info.st_mode):
        raise LabError(f"{what} {path} is a symbolic link; refusing")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LabError(f"{what} {path} is writable by other users; refusing")


def _refuse_unsafe_owner(path: Path, what: str) -> None:
    owner = os.lstat(path).st_uid
    if owner != os.geteuid():
        raise LabError(f"{what} {path} belongs to user {owner}, not to this user; refusing")


def ensure_private_lab_dir(lab_dir: Path) -> Path:
    """Create the lab directory (mode 0700) if missing, and refuse a lab directory or state file
    that another user owns or may write: the lab stops processes and deletes files by what its
    state says, so the state must come from this user alone."""
    directory = Path(lab_dir).absolute()
    if directory.is_symlink():
        # A link of this user's own may name the lab directory; both must be safe.
        _refuse_unsafe_owner(directory, "lab directory link")
        directory = directory.resolve()
    _refuse_unsafe(directory, "lab directory")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _refuse_unsafe(directory, "lab directory")
    _refuse_unsafe(directory / STATE_FILE, "lab state file")
    return directory
