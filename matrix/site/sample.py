"""Realistic sample observations, for developing the site and for the build benchmark.

The sample follows one image published on two registries (roles `docker.io` and `ghcr.io`)
over a number of daily runs. Each run probes and pulls the moving tags, the newest releases and
any tag published that day; the first run covers every tag. It contains what the real data
shows: old schema 1 tags that new engines refuse, zstd tags that old engines cannot unpack, a
build-cache export pushed over `latest` on the Hub role (an open incident), a one-day registry
outage on the GHCR role and a rate limit on the Hub role (both resolved), and a tag re-pushed
on one registry only (mirror drift).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from matrix.observations import Observation, to_frame, write_shard

ENGINES = (
    "20.10.5+dfsg1",
    "20.10.24+dfsg1",
    "23.0.6",
    "24.0.9",
    "25.0.5",
    "26.1.5+dfsg1",
    "27.5.1",
    "28.5.2+dfsg1",
)
REGISTRIES = ("docker.io", "ghcr.io")
REPOSITORY = "kivy/buildozer"
MOVING_TAGS = ("latest", "stable", "master")

MESSAGES = {
    "layer-extract-failed": (
        "failed to register layer: ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"
    ),
    "schema1-disabled": (
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
        "support is disabled by default and will be removed in an upcoming release. Suggest the "
        "author of {ref} to upgrade the image to the OCI Format or Docker Image manifest v2, "
        "schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/"
    ),
    "schema1-removed": (
        "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been "
        "removed. Suggest the author of {ref} to upgrade the image to the OCI Format or Docker "
        "Image manifest v2, schema 2. More information at "
        "https://docs.docker.com/go/deprecated-image-specs/"
    ),
    "500": "Error response from daemon: received unexpected HTTP status: 500 Internal Server Error",
    "503": "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable",
    "no-platform-match": "no matching manifest for {platform} in the manifest list entries",
    "rate-limited": (
        "toomanyrequests: You have reached your pull rate limit. You may increase the limit by "
        "authenticating and upgrading: https://www.docker.com/increase-rate-limit"
    ),
}
CACHE_CAUSE = (
    "The tag points at a BuildKit build-cache export (an index of a layer blob and an "
    "application/vnd.buildkit.cacheconfig.v0 config), not at an image."
)
MEDIA_TYPES = {
    "image": "application/vnd.docker.distribution.manifest.v2+json",
    "index": "application/vnd.oci.image.index.v1+json",
    "schema1": "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "not-an-image": "application/vnd.oci.image.index.v1+json",
}


@dataclass(frozen=True)
class SampleTag:
    name: str
    published: int  # index of the run that first sees it
    shape: str  # v2s2, schema1, zstd, index, zstd-index


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def sample_tags(count: int, days: int, rng: random.Random) -> list[SampleTag]:
    """`count` tags: the moving tags plus releases, the oldest first, some published later."""
    releases: list[str] = []
    major, minor, patch = 0, 1, 0
    while len(releases) < count - len(MOVING_TAGS):
        releases.append(f"{major}.{minor}.{patch}")
        step = rng.random()
        if step < 0.03:
            major, minor, patch = major + 1, 0, 0
        elif step < 0.25:
            minor, patch = minor + 1, 0
        else:
            patch += 1
    late = max(1, min(days // 3, len(releases) // 10))
    tags = []
    for position, name in enumerate(releases):
        age = position / max(1, len(releases) - 1)
        if age < 0.04:
            shape = "schema1"
        elif age < 0.5:
            shape = "v2s2"
        elif 0.7 <= age < 0.85:
            shape = "zstd-index"
        else:
            shape = "index"
        published = 0
        if position >= len(releases) - late:
            published = max(1, (days * (position - len(releases) + late)) // late)
        tags.append(SampleTag(name, published, shape))
    tags.extend(SampleTag(name, 0, "index") for name in MOVING_TAGS)
    return tags


def _platforms(shape: str) -> list[str]:
    return ["linux/amd64", "linux/arm64"] if "index" in shape else ["linux/amd64"]


def _engine_verdict(shape: str, engine: str) -> str:
    major = int(engine.split(".")[0])
    if shape == "schema1":
        if major >= 28:
            return "schema1-removed"
        return "schema1-disabled" if major >= 26 else "ok"
    if shape.startswith("zstd") and major < 23:
        return "layer-extract-failed"
    return "ok"


@dataclass
class _Day:
    index: int
    run_id: str
    at: datetime


class SampleWriter:
    """Builds the observations of each run; one instance per sample."""

    def __init__(self, tags: list[SampleTag], days: int, engines: tuple[str, ...]) -> None:
        self.tags = tags
        self.days = days
        self.engines = engines
        self.incident_day = int(days * 2 / 3)
        self.outage_day = days // 3
        self.rate_limit_day = days // 2
        self.drift_day = int(days * 0.8)
        releases = [tag for tag in tags if tag.name not in MOVING_TAGS]
        self.drift_tag = releases[-3].name if len(releases) >= 3 else ""

    def digest(self, tag: SampleTag, registry: str, day: int) -> str:
        if tag.name == "latest" and registry == "docker.io" and day >= self.incident_day:
            return _digest("cache", tag.name)
        if tag.name == self.drift_tag and registry == "docker.io" and day >= self.drift_day:
            return _digest("repush", tag.name)
        moving = day // 7 if tag.name in MOVING_TAGS else 0
        return _digest(tag.name, tag.shape, moving)

    def is_cache(self, tag: SampleTag, registry: str, day: int) -> bool:
        return tag.name == "latest" and registry == "docker.io" and day >= self.incident_day

    def rows(self, day: _Day, covered: list[SampleTag]) -> list[Observation]:
        rows: list[Observation] = []
        for registry in REGISTRIES:
            for tag in covered:
                rows.extend(self._tag_rows(day, registry, tag))
        return rows

    def _tag_rows(self, day: _Day, registry: str, tag: SampleTag) -> list[Observation]:
        digest = self.digest(tag, registry, day.index)
        cache = self.is_cache(tag, registry, day.index)
        kind = (
            "not-an-image"
            if cache
            else (
                "schema1"
                if tag.shape == "schema1"
                else "index"
                if "index" in tag.shape
                else "image"
            )
        )
        details = self._details(tag, kind, digest)
        common: dict[str, Any] = {
            "run_id": day.run_id,
            "registry": registry,
            "repository": REPOSITORY,
            "tag": tag.name,
            "digest": digest,
            "kind": kind,
            "media_type": MEDIA_TYPES[kind],
        }
        rows = []
        stamp = day.at
        for platform in _platforms(tag.shape):
            stamp += timedelta(seconds=1)
            probe_verdict = "not-an-image" if cache else "ok"
            rows.append(
                Observation(
                    **common,
                    platform=platform,
                    client="probe",
                    client_version="",
                    method="probe",
                    outcome="ok" if probe_verdict == "ok" else "fail",
                    observed_at=_iso(stamp),
                    error_class="" if probe_verdict == "ok" else "not-an-image",
                    verdict=probe_verdict,
                    cause=CACHE_CAUSE if cache else "",
                    details=details,
                    http_status=200,
                    duration_s=0.2,
                    platform_digest="" if kind != "index" else _digest(digest, platform),
                )
            )
            for engine in self.engines:
                stamp += timedelta(seconds=7)
                rows.append(self._pull(common, platform, engine, tag, cache, day, stamp))
        return rows

    def _pull(
        self,
        common: dict[str, Any],
        platform: str,
        engine: str,
        tag: SampleTag,
        cache: bool,
        day: _Day,
        stamp: datetime,
    ) -> Observation:
        ref = f"{common['repository']}:{tag.name}"
        predicted = _engine_verdict(tag.shape, engine)
        verdict, error_class, message, cause, status = predicted, predicted, "", "", None
        major = int(engine.split(".")[0])
        if cache:
            verdict, cause = "not-an-image", CACHE_CAUSE
            predicted = "no-platform-match" if engine_tuple(engine) < (26, 1) else "registry-error"
            if engine_tuple(engine) < (26, 1):
                error_class = "no-platform-match"
                message = MESSAGES["no-platform-match"].format(platform=platform)
            else:
                error_class, message, status = "registry-error", MESSAGES["500"], 500
        elif common["registry"] == "ghcr.io" and day.index == self.outage_day:
            verdict = error_class = "registry-error"
            message, status = MESSAGES["503"], 503
        elif common["registry"] == "docker.io" and day.index == self.rate_limit_day and major >= 26:
            verdict = error_class = "rate-limited"
            message, status = MESSAGES["rate-limited"], 429
        elif verdict != "ok":
            message = MESSAGES[verdict].format(ref=ref, platform=platform)
        outcome = "ok" if verdict == "ok" else "fail"
        return Observation(
            **common,
            platform=platform,
            client="docker",
            client_version=engine,
            method="pull",
            outcome=outcome,
            observed_at=_iso(stamp),
            error_class=error_class if outcome != "ok" else "ok",
            verdict=verdict,
            message=message,
            cause=cause,
            predicted=predicted,
            finding="" if (error_class if outcome != "ok" else "ok") == predicted else "unexpected",
            http_status=status,
            duration_s=round(5 + 20 * (int(_digest(tag.name)[-2:], 16) % 7) / 7, 1),
            bytes=None if outcome != "ok" else 700_000_000,
        )

    @staticmethod
    def _details(tag: SampleTag, kind: str, digest: str) -> str:
        """The format analysis as `matrix.analysis.Analysis.summary()` writes it."""
        analysis: dict[str, object] = {
            "kind": kind,
            "media_type": MEDIA_TYPES[kind],
            "digest": digest,
            "size": 1_234,
        }
        if kind == "not-an-image":
            analysis["platforms"] = []
            analysis["attestations"] = []
            analysis["children"] = [
                {
                    "digest": _digest(digest, "layer"),
                    "platform": "",
                    "role": "blob",
                    "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
                },
                {
                    "digest": _digest(digest, "config"),
                    "platform": "",
                    "role": "blob",
                    "media_type": "application/vnd.buildkit.cacheconfig.v0",
                },
            ]
            analysis["reason"] = "the index lists no image manifest, only a build-cache export"
        elif kind == "index":
            analysis["platforms"] = _platforms(tag.shape)
            analysis["attestations"] = []
            analysis["children"] = [
                {
                    "digest": _digest(digest, platform),
                    "platform": platform,
                    "role": "image",
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                }
                for platform in _platforms(tag.shape)
            ]
        else:
            compression = "zstd" if tag.shape.startswith("zstd") else "gzip"
            analysis.update(
                {
                    "platform": "linux/amd64",
                    "layers": 14,
                    "compressions": [compression],
                    "config_media_type": "application/vnd.docker.container.image.v1+json",
                    "image_size": 712_345_678,
                }
            )
        return json.dumps(analysis, separators=(",", ":"), sort_keys=True)


def engine_tuple(engine: str) -> tuple[int, ...]:
    return tuple(int(part) for part in engine.split("+")[0].split(".")[:2])


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def generate(
    data_dir: Path,
    *,
    tags: int = 60,
    days: int = 14,
    engines: tuple[str, ...] = ENGINES,
    newest: int = 20,
    end: datetime | None = None,
    seed: int = 7,
) -> list[Path]:
    """Write one shard per daily run under `data_dir` and return their paths.

    Each run after the first covers the moving tags, the `newest` newest releases and the tags
    published that day.
    """
    rng = random.Random(seed)
    end = end or datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    all_tags = sample_tags(tags, days, rng)
    writer = SampleWriter(all_tags, days, engines)
    releases = [tag for tag in all_tags if tag.name not in MOVING_TAGS]
    paths = []
    for index in range(days):
        at = end - timedelta(days=days - 1 - index)
        day = _Day(index, f"{at:%Y%m%dT%H%M%SZ}-sample{index:03d}", at)
        published = [tag for tag in releases if tag.published <= index]
        if index == 0:
            covered = [tag for tag in all_tags if tag.published == 0]
        else:
            fresh = [tag for tag in published if tag.published == index]
            covered = [t for t in all_tags if t.name in MOVING_TAGS] + published[-newest:] + fresh
            covered = list({tag.name: tag for tag in covered}.values())
        paths.append(write_shard(writer.rows(day, covered), data_dir, day.run_id))
    return paths


def frame(**kwargs: object) -> pd.DataFrame:
    """The sample as one DataFrame without writing files (same arguments as `generate`)."""
    import tempfile

    from matrix.observations import load

    with tempfile.TemporaryDirectory() as directory:
        generate(Path(directory), **kwargs)  # type: ignore[arg-type]
        return load([Path(directory)])


__all__ = ["ENGINES", "REGISTRIES", "REPOSITORY", "frame", "generate", "to_frame"]
