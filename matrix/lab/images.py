"""The lab's images: one tag per image shape, and a Buildozer-like family on two registries.

Two entry points push real, tiny images to running registries:

- `publish_shapes(host, repository)` pushes one tag per shape the matrix meets, each tag named
  after its shape (see `SHAPES`). Integration tests pull these with real engines.
- `publish_family(hub_host, ghcr_host, repository)` pushes the same release history to a
  registry in the role of Docker Hub and one in the role of GHCR, then replays the incident on
  the Hub: `latest` overwritten by a BuildKit build-cache export.

Content is deterministic, so a tag gets the same digest on every run and on both registries.
The one exception is a schema 1 manifest's signature (made by skopeo with a throwaway key);
registries take a schema 1 digest over the unsigned payload, so its digest is stable too.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from matrix.errors import LabError
from matrix.lab.imagebuild import (
    Blob,
    build_cache_export,
    build_image,
    image_index,
    multi_platform_image,
)
from matrix.lab.push import Pusher
from matrix.platforms import Platform

log = logging.getLogger(__name__)

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")

HUB_ROLE = "docker.io"
GHCR_ROLE = "ghcr.io"

SHAPE_V2S2 = "v2s2"
SHAPE_OCI = "oci"
SHAPE_SCHEMA1 = "schema1"
SHAPE_ZSTD = "zstd"
SHAPE_ARM_ONLY = "arm-only"
SHAPE_BUILD_CACHE = "build-cache-on-tag"

#: Every shape `publish_shapes` pushes, in the order it pushes them; each is also its tag.
SHAPES = (SHAPE_V2S2, SHAPE_OCI, SHAPE_SCHEMA1, SHAPE_ZSTD, SHAPE_ARM_ONLY, SHAPE_BUILD_CACHE)

#: The family's tags that hold a good multi-platform image with attestations.
FAMILY_RELEASE_TAGS = ("1.5.0", "1.6.0", "stable", "latest")
FAMILY_SCHEMA1_TAG = "0.9"
FAMILY_ZSTD_TAG = "1.6.0-zstd"
FAMILY_ARM64_TAG = "1.6.0-arm64"
INCIDENT_TAG = "latest"

SKOPEO = "/usr/bin/skopeo"
SKOPEO_TIMEOUT = 120.0
# skopeo writes its fatal error as a logfmt line: time="…" level=fatal msg="…".
_SKOPEO_MESSAGE = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class TagPlan:
    """What goes under one tag: a tree of blobs, optionally converted to schema 1 afterwards.

    With `schema1`, `root` must be a Docker v2 schema 2 manifest: it is pushed first, then
    skopeo rewrites the tag as a signed schema 1 manifest made from it.
    """

    tag: str
    root: Blob
    schema1: bool = False


def shape_plans(repository: str) -> list[TagPlan]:
    """One plan per shape of `SHAPES`, tagged with the shape's name."""
    return [
        TagPlan(SHAPE_V2S2, build_image(AMD64, SHAPE_V2S2, oci=False)),
        TagPlan(SHAPE_OCI, build_image(AMD64, SHAPE_OCI)),
        TagPlan(SHAPE_SCHEMA1, build_image(AMD64, SHAPE_SCHEMA1, oci=False), schema1=True),
        TagPlan(SHAPE_ZSTD, build_image(AMD64, SHAPE_ZSTD, compression="zstd")),
        TagPlan(SHAPE_ARM_ONLY, image_index([build_image(ARM64, SHAPE_ARM_ONLY)])),
        TagPlan(SHAPE_BUILD_CACHE, build_cache_export(f"{repository} {SHAPE_BUILD_CACHE}")),
    ]


def family_plans(repository: str) -> list[TagPlan]:
    """The family's good tags, in push order, identical for every registry.

    `1.6.0`, `stable` and `latest` hold the same index; `1.5.0` an older one.
    """
    subject = f"pkg:docker/{repository}"
    release = {
        version: multi_platform_image([AMD64, ARM64], version, subject=subject)
        for version in ("1.5.0", "1.6.0")
    }
    # The zstd tag's layers hold their own files: an engine that already has a layer with the
    # same diff_id skips downloading it, and the zstd blob would never be decompressed.
    zstd = multi_platform_image(
        [AMD64, ARM64], FAMILY_ZSTD_TAG, subject=subject, compression="zstd"
    )
    arm_only = image_index([build_image(ARM64, "1.6.0")])
    old = build_image(AMD64, FAMILY_SCHEMA1_TAG, oci=False)
    return [
        TagPlan(FAMILY_SCHEMA1_TAG, old, schema1=True),
        TagPlan("1.5.0", release["1.5.0"]),
        TagPlan("1.6.0", release["1.6.0"]),
        TagPlan("stable", release["1.6.0"]),
        TagPlan("latest", release["1.6.0"]),
        TagPlan(FAMILY_ZSTD_TAG, zstd),
        TagPlan(FAMILY_ARM64_TAG, arm_only),
    ]


def incident_plan(repository: str) -> TagPlan:
    """The build-cache export that overwrites `latest` on the Hub-role registry."""
    return TagPlan(INCIDENT_TAG, build_cache_export(f"{repository} {INCIDENT_TAG}"))


def publish_shapes(
    host: str, repository: str, *, credentials: tuple[str, str] | None = None
) -> dict[str, str]:
    """Push one tag per shape of `SHAPES` to the registry at `host`; return tag -> digest.

    `host` is `127.0.0.1:PORT` of a plain-HTTP registry; `credentials` (user, password) go to
    its token service if it asks for one. The schema 1 tag needs skopeo and a registry with
    `compatibility.schema1.enabled: true`.
    """
    with Pusher(host, credentials=credentials) as pusher:
        return {
            plan.tag: _publish(pusher, repository, plan, credentials)
            for plan in shape_plans(repository)
        }


def publish_family(
    hub_host: str,
    ghcr_host: str,
    repository: str = "kivy/buildozer",
    *,
    credentials: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Push the family to both registries and replay the incident on the Hub-role one.

    Returns registry role (`HUB_ROLE`, `GHCR_ROLE`) -> tag -> digest, as the tags stand after
    publishing. Every tag has the same digest on both registries except `latest`: on the Hub
    it holds a build-cache export (pushed over the good image, which stays in the repository
    by digest), on GHCR the good image. `credentials` maps a host to (user, password) for
    its token service.
    """
    credentials = credentials or {}
    published: dict[str, dict[str, str]] = {}
    for role, host in ((HUB_ROLE, hub_host), (GHCR_ROLE, ghcr_host)):
        login = credentials.get(host)
        with Pusher(host, credentials=login) as pusher:
            tags = {
                plan.tag: _publish(pusher, repository, plan, login)
                for plan in family_plans(repository)
            }
            if role == HUB_ROLE:
                incident = incident_plan(repository)
                tags[incident.tag] = _publish(pusher, repository, incident, login)
        published[role] = tags
    return published


def _publish(
    pusher: Pusher, repository: str, plan: TagPlan, credentials: tuple[str, str] | None
) -> str:
    digest = pusher.push(repository, plan.tag, plan.root)
    if not plan.schema1:
        return digest
    return convert_to_schema1(pusher.host, repository, plan.tag, credentials)


# Schema 1 -------------------------------------------------------------------------------------


def convert_to_schema1(
    host: str, repository: str, tag: str, credentials: tuple[str, str] | None = None
) -> str:
    """Rewrite `host/repository:tag` in place as a signed schema 1 manifest; return its digest.

    skopeo reads the schema 2 manifest the tag holds and pushes the converted manifest back to
    the same tag. Credentials reach skopeo through a private auth file, never its arguments.
    """
    binary = SKOPEO if Path(SKOPEO).exists() else shutil.which("skopeo")
    if not binary:
        raise LabError(f"{SKOPEO} is missing: install the Debian package skopeo")
    reference = f"docker://{host}/{repository}:{tag}"
    with tempfile.TemporaryDirectory(prefix="pull-matrix-skopeo-") as scratch:
        auth_file = _write_auth_file(Path(scratch), host, credentials)
        policy = Path(scratch) / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        command = [
            binary, "--policy", str(policy), "copy", "--format", "v2s1", "--quiet",
            "--authfile", str(auth_file), "--src-tls-verify=false", "--dest-tls-verify=false",
            "--digestfile", str(Path(scratch) / "digest"), reference, reference,
        ]  # fmt: skip
        _run_skopeo(command, reference)
        digest = (Path(scratch) / "digest").read_text(encoding="utf-8").strip()
    log.info("converted %s/%s:%s to schema 1 as %s", host, repository, tag, digest)
    return digest


def _write_auth_file(directory: Path, host: str, credentials: tuple[str, str] | None) -> Path:
    auths = {}
    if credentials:
        encoded = base64.b64encode(":".join(credentials).encode()).decode()
        auths[host] = {"auth": encoded}
    path = directory / "auth.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps({"auths": auths}), encoding="utf-8")
    return path


def _run_skopeo(command: list[str], reference: str) -> None:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SKOPEO_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"skopeo could not convert {reference} to schema 1: {exc}") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        found = _SKOPEO_MESSAGE.search(lines[-1])
        message = found.group(1).replace('\\"', '"') if found else lines[-1]
        raise LabError(f"skopeo could not convert {reference} to schema 1: {message}")
