"""One day of lab-like observations for the site tests.

Shaped like a first lab run: two loopback registries in the roles of Docker Hub and GHCR, a
build-cache export over `latest` on the Hub role only, two engines, and one tag (`0.9`) that
only the registry check has reached on the Hub role.
"""

from __future__ import annotations

import json
from pathlib import Path

from matrix.observations import ROLES_FILE, Observation, write_shard

HUB = "127.0.0.1:5101"
GHCR = "127.0.0.1:5102"
REPOSITORY = "kivy/buildozer"
ENGINES = ("20.10.24+dfsg1", "28.5.2+dfsg1")
RUN = "20261203T165604Z-lab"
GOOD = "sha256:" + "4c" * 32
CACHE = "sha256:" + "d4" * 32
PREDICTED_CACHE = {
    "20.10": "no-platform-match",
    "23.0": "no-platform-match",
    "24.0": "no-platform-match",
    "25.0": "no-platform-match",
    "26.1": "registry-error",
    "27.0": "registry-error",
    "28.0": "registry-error",
    "28.5": "registry-error",
    "29.0": "registry-error",
}
CACHE_MESSAGE = "this tag does not point at an image: its index holds a BuildKit cache config"


def _probe(registry: str, tag: str, digest: str, broken: bool) -> Observation:
    predictions = PREDICTED_CACHE if broken else dict.fromkeys(PREDICTED_CACHE, "ok")
    details = {"kind": "not-an-image" if broken else "index", "predictions": predictions}
    details["image"] = {"layers": 1, "compressions": ["gzip"]}
    return Observation(
        run_id=RUN,
        registry=registry,
        repository=REPOSITORY,
        tag=tag,
        platform="linux/amd64",
        client="probe",
        client_version="0.1.0",
        method="probe",
        outcome="fail" if broken else "ok",
        observed_at="2026-12-03T16:56:04Z",
        digest=digest,
        error_class="not-an-image" if broken else "",
        message=CACHE_MESSAGE if broken else "",
        cause=CACHE_MESSAGE if broken else "",
        kind=details["kind"],
        details=json.dumps(details),
    )


def _pull(registry: str, tag: str, engine: str, broken: bool) -> Observation:
    message = "received unexpected HTTP status: 500 Internal Server Error"
    return Observation(
        run_id=RUN,
        registry=registry,
        repository=REPOSITORY,
        tag=tag,
        platform="linux/amd64",
        client="docker",
        client_version=engine,
        method="pull",
        outcome="fail" if broken else "ok",
        observed_at="2026-12-03T16:56:06Z",
        digest="" if broken else GOOD,
        error_class="registry-error" if broken else "",
        verdict="not-an-image" if broken else "",
        message=message if broken else "",
        cause=CACHE_MESSAGE if broken else "",
    )


def write_lab_data(directory: Path) -> Path:
    """Write the shard and the registry roles into `directory`; returns it."""
    rows = []
    for registry in (HUB, GHCR):
        broken = registry == HUB
        rows.append(_probe(registry, "latest", CACHE if broken else GOOD, broken))
        rows.append(_probe(registry, "0.9", GOOD, False))
        rows += [_pull(registry, "latest", engine, broken) for engine in ENGINES]
        if registry == GHCR:
            rows += [_pull(registry, "0.9", engine, False) for engine in ENGINES]
    write_shard(rows, directory, RUN)
    (directory / ROLES_FILE).write_text(json.dumps({HUB: "docker.io", GHCR: "ghcr.io"}))
    return directory
