"""Docker engines from Debian's archive: the docker.io, containerd and runc of one suite, unpacked.

Each Debian suite carries one docker.io version together with the containerd and runc it was
built against. The lab fetches those three packages with `apt-get download` through a private apt
configuration (its own sources list, package lists and cache, nothing of the host's apt state is
read or changed) and unpacks them with `dpkg-deb -x` into one root per suite, side by side in the
cache directory. Which package versions a root holds is decided by the suite at fetch time and
recorded next to it, so later runs start the same engines without touching the network.

Limitation: the runc of trixie and sid is linked against a newer glibc than bookworm's, so on a
bookworm host it does not run. Pulling never starts a container, so the engines pull regardless;
they only log that `runc features` failed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from matrix.errors import LabError
from matrix.lab.state import default_cache_dir, locked

log = logging.getLogger(__name__)

ARCHIVE = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
PACKAGES = ("docker.io", "containerd", "runc")

# The lab's engines: the upstream docker.io version each suite carried when the lab was set up.
# The suite, not this table, decides what is fetched; a suite that has moved on gives a newer
# engine (with a warning), and the engine reports its own version when it starts.
SUITES: dict[str, str] = {
    "bullseye": "20.10.5",
    "bookworm": "20.10.24",
    "trixie": "26.1.5",
    "sid": "28.5.2",
}

_MANIFEST = "packages.json"


@dataclass(frozen=True)
class EngineRoot:
    """An unpacked engine: where its binaries are and which package versions they came from."""

    suite: str
    root: Path
    packages: dict[str, str]

    @property
    def version(self) -> str:
        """The upstream docker.io version: `20.10.24` for `20.10.24+dfsg1-1+deb12u1+b6`."""
        return upstream_version(self.packages["docker.io"])

    @property
    def dockerd(self) -> Path:
        return self.root / "usr" / "sbin" / "dockerd"

    @property
    def path(self) -> str:
        """A PATH on which dockerd finds this suite's containerd, shims and runc first."""
        own = [self.root / "usr" / "sbin", self.root / "usr" / "bin"]
        return os.pathsep.join([*map(str, own), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


def upstream_version(debian_version: str) -> str:
    """The upstream part of a Debian version: no epoch, no revision, no `+dfsg`/`~ds` suffix."""
    text = debian_version.split(":", 1)[-1]
    text = text.rsplit("-", 1)[0] if "-" in text else text
    for mark in ("+", "~"):
        text = text.split(mark, 1)[0]
    return text


def suite_for(name: str) -> str:
    """The suite of an engine named by suite (`bookworm`) or by docker.io version (`20.10.24`)."""
    if name in SUITES:
        return name
    for suite, version in SUITES.items():
        if version == name:
            return suite
    known = ", ".join(f"{v} ({s})" for s, v in SUITES.items())
    raise LabError(f"no lab engine {name!r}; the lab has {known}")


class _Apt:
    """apt-get and apt-cache with a configuration of their own under `base`."""

    def __init__(self, base: Path, suites: Sequence[str]) -> None:
        self.base = base
        self.suites = list(suites)
        sources = base / "sources.list"
        for directory in (base / "lists" / "partial", base / "cache" / "archives" / "partial"):
            directory.mkdir(parents=True, exist_ok=True)
        lines = [f"deb [signed-by={KEYRING}] {ARCHIVE} {suite} main\n" for suite in self.suites]
        sources.write_text("".join(lines), encoding="utf-8")
        self.options = [
            f"-oDir::Etc::SourceList={sources}",
            "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={base / 'lists'}",
            f"-oDir::Cache={base / 'cache'}",
            "-oDir::State::Status=/dev/null",
            # Downloads land in a directory only root can write; the sandbox user could not.
            "-oAPT::Sandbox::User=root",
            "-oAcquire::Retries=3",
        ]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        command = [tool, *self.options, *args]
        try:
            done = subprocess.run(
                command, cwd=cwd, capture_output=True, text=True, check=False, timeout=900
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LabError(f"{tool} {args[0]} failed: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise LabError(f"{tool} {' '.join(args[:2])} failed: {' '.join(detail)}")
        return done.stdout

    def update(self) -> None:
        log.info("reading package lists of %s", ", ".join(self.suites))
        self.run("apt-get", "-q", "update")

    def versions(self, package: str) -> dict[str, str]:
        """Suite -> version of `package`, as the suites' package lists give it."""
        return parse_madison(self.run("apt-cache", "madison", package))

    def download(self, pins: Sequence[str], target: Path) -> None:
        self.run("apt-get", "-q", "download", *pins, cwd=target)


def parse_madison(text: str) -> dict[str, str]:
    """Suite -> version from `apt-cache madison` lines (`pkg | version | uri suite/main arch …`)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 3 or "Sources" in fields[2]:
            continue
        words = fields[2].split()
        if len(words) < 2:
            continue
        suite = words[1].split("/", 1)[0]
        found.setdefault(suite, fields[1])
    return found


def _locked(directory: Path) -> AbstractContextManager[None]:
    """Hold an exclusive lock on `directory`, so two processes never fetch into it at once."""
    return locked(directory / ".lock")


def _cached(base: Path, suite: str) -> EngineRoot | None:
    pointer = base / f"{suite}.json"
    try:
        packages = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    root = base / "roots" / packages.get("docker.io", "missing")
    complete = (root / _MANIFEST).exists() and (root / "usr" / "sbin" / "dockerd").exists()
    return EngineRoot(suite, root, packages) if complete else None


def ensure_engines(
    suites: Sequence[str], cache_dir: Path | None = None, refresh: bool = False
) -> dict[str, EngineRoot]:
    """The unpacked engine of each suite, fetched from Debian's archive when not cached yet.

    With `refresh`, the suites' package lists are read again and a suite that carries newer
    packages than the cached ones is fetched anew.
    """
    base = Path(cache_dir or default_cache_dir()) / "engines"
    with _locked(base):
        roots = {suite: _cached(base, suite) for suite in suites}
        missing = [suite for suite, root in roots.items() if root is None or refresh]
        if missing:
            roots.update(_fetch(base, missing))
    return {suite: root for suite, root in roots.items() if root is not None}


def _fetch(base: Path, suites: Sequence[str]) -> dict[str, EngineRoot]:
    apt = _Apt(base / "apt", suites)
    apt.update()
    available = {package: apt.versions(package) for package in PACKAGES}
    roots = {}
    for suite in suites:
        packages = {}
        for package in PACKAGES:
            if suite not in available[package]:
                raise LabError(f"Debian {suite} has no {package} package")
            packages[package] = available[package][suite]
        expected = SUITES.get(suite)
        if expected and upstream_version(packages["docker.io"]) != expected:
            log.warning(
                "Debian %s now carries docker.io %s, not %s", suite, packages["docker.io"], expected
            )
        roots[suite] = _unpack(base, apt, suite, packages)
        (base / f"{suite}.json").write_text(json.dumps(packages, indent=2), encoding="utf-8")
    return roots


def _unpack(base: Path, apt: _Apt, suite: str, packages: dict[str, str]) -> EngineRoot:
    root = base / "roots" / packages["docker.io"]
    if (root / _MANIFEST).exists():
        return EngineRoot(suite, root, packages)
    debs = base / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pins = [f"{package}={version}" for package, version in packages.items()]
    log.info("downloading %s from Debian %s", " ".join(pins), suite)
    apt.download(pins, debs)

    staging = Path(tempfile.mkdtemp(prefix=f".{suite}.", dir=root.parent.parent))
    try:
        for package, version in packages.items():
            deb = _deb_path(debs, package, version)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True, timeout=300)
        (staging / _MANIFEST).write_text(json.dumps(packages, indent=2), encoding="utf-8")
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
        for package, version in packages.items():
            _deb_path(debs, package, version).unlink()
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"cannot unpack the engine of Debian {suite}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EngineRoot(suite, root, packages)


def _deb_path(directory: Path, package: str, version: str) -> Path:
    # apt-get download writes an epoch's colon as %3a in the file name.
    name = f"{package}_{version.replace(':', '%3a')}_"
    matches = sorted(p for p in directory.glob(f"{package}_*.deb") if p.name.startswith(name))
    if not matches:
        raise LabError(f"apt-get download left no {package} {version} in {directory}")
    return matches[0]
