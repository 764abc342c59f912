"""Probe a repository: every tag, what it points at, and what each engine version will make of it.

For each tag the probe resolves the digest (HEAD), fetches manifests the store does not hold yet,
analyses the format, checks that the blobs of each requested platform's image are there (HEAD, or
a full download with `verify_blobs`) and predicts the verdict of every reference engine version.
It records one observation per (tag, platform). A tag that fails is recorded as failed and the
probe goes on with the next; only the probe's own faults are recorded with outcome `error`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from matrix import __version__
from matrix.analysis import Analysis, analyse
from matrix.capabilities import REFERENCE_VERSIONS, explain, predictions
from matrix.classify import CLASS_INFO, ErrorClass, classify, classify_http
from matrix.errors import (
    DigestMismatchError,
    MatrixError,
    RegistryError,
    TransportError,
)
from matrix.observations import Observation
from matrix.reference import Repository
from matrix.registry.client import RegistryClient

log = logging.getLogger(__name__)

CLIENT = "probe"
# The tag recorded for observations about the tag list itself (no real tag can be empty).
TAG_LIST = ""


@dataclass
class TagProbe:
    """What the probe found for one tag, across the requested platforms."""

    repository: Repository
    tag: str
    analysis: Analysis | None = None
    observations: list[Observation] = field(default_factory=list)
    predicted: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def failure(self) -> str:
        """The error class when the tag could not be analysed at all, else empty."""
        if self.analysis is not None or not self.observations:
            return ""
        return self.observations[0].error_class


@dataclass
class ProbeRun:
    run_id: str
    observations: list[Observation] = field(default_factory=list)
    tags: list[TagProbe] = field(default_factory=list)
    incomplete: dict[str, str] = field(default_factory=dict)


def failure_class(error: BaseException) -> ErrorClass:
    """The class of a failure met while probing (registry and transport errors only)."""
    if isinstance(error, DigestMismatchError):
        return ErrorClass.DIGEST_MISMATCH
    if isinstance(error, RegistryError) and error.status is not None:
        return classify_http(error.status, error.codes)
    if isinstance(error, TransportError):
        return ErrorClass.NETWORK
    return classify(str(error))


def _is_harness_fault(error: BaseException) -> bool:
    return not isinstance(error, RegistryError | TransportError)


class Prober:
    """Probes repositories with one registry client, collecting observations."""

    def __init__(
        self,
        client: RegistryClient,
        run_id: str,
        platforms: Iterable[str],
        *,
        verify_blobs: bool = False,
    ) -> None:
        self.client = client
        self.run = ProbeRun(run_id)
        self.platforms = list(platforms)
        self.verify_blobs = verify_blobs
        self._blobs: dict[tuple[str, str], BaseException | None] = {}

    # Listing ------------------------------------------------------------------------------

    def list_tags(self, repository: Repository, tags: Iterable[str] | None = None) -> list[str]:
        """The tags to probe: those given, else every tag the registry lists.

        A failed listing is recorded as one observation per platform with an empty tag.
        """
        if tags:
            return list(dict.fromkeys(tags))
        started = time.monotonic()
        try:
            listing = self.client.list_tags(repository)
        except Exception as exc:  # every failure becomes an observation
            probe = TagProbe(repository, TAG_LIST)
            for platform in self.platforms:
                probe.observations.append(self._failed(probe, platform, exc, started))
            self._keep(probe)
            return []
        if listing.incomplete:
            self.run.incomplete[str(repository)] = listing.incomplete
        return listing.tags

    # One tag --------------------------------------------------------------------------------

    def probe_tag(self, repository: Repository, tag: str) -> TagProbe:
        started = time.monotonic()
        probe = TagProbe(repository, tag)
        try:
            probe.analysis = self._analyse(repository, tag)
        except Exception as exc:  # every failure becomes an observation
            log.info("probed %s: %s", repository.with_tag(tag), failure_class(exc))
            for platform in self.platforms:
                probe.observations.append(self._failed(probe, platform, exc, started))
            return self._keep(probe)
        for platform in self.platforms:
            probe.predicted[platform] = predictions(probe.analysis, platform)
            probe.observations.append(self._observe(probe, platform, started))
        log.info(
            "probed %s: %s %s", repository.with_tag(tag), probe.analysis.kind, probe.analysis.digest
        )
        return self._keep(probe)

    def _keep(self, probe: TagProbe) -> TagProbe:
        self.run.tags.append(probe)
        self.run.observations.extend(probe.observations)
        return probe

    def _analyse(self, repository: Repository, tag: str) -> Analysis:
        manifest = self.client.fetch_tag(repository, tag)
        return analyse(
            manifest,
            lambda digest: self.client.manifest(repository, digest),
            lambda digest, size: self.client.read_blob(repository, digest, size),
        )

    def _observe(self, probe: TagProbe, platform: str, started: float) -> Observation:
        analysis = probe.analysis
        assert analysis is not None
        image = analysis.for_platform(platform)
        details: dict[str, Any] = {**analysis.summary(), "predictions": probe.predicted[platform]}
        observation = self._base(probe, platform, started)
        observation.digest = analysis.digest
        observation.kind = analysis.kind
        observation.media_type = analysis.media_type
        if image is not None and image is not analysis:
            observation.platform_digest = image.digest
            details["image"] = image.summary()
        symptom = self._symptom(analysis, image)
        if symptom is None and image is not None:
            blob_error = self._check_blobs(probe.repository, image)
            if blob_error is not None:
                return self._with_failure(observation, blob_error, details)
        if image is not None:
            observation.bytes = image.image_size
        observation.details = _compact(details)
        if symptom is None:
            observation.outcome, observation.error_class, observation.verdict = "ok", "ok", "ok"
            return observation
        verdict, cause = explain(analysis, platform, symptom)
        observation.outcome = "fail"
        observation.error_class = str(symptom)
        observation.verdict = str(verdict)
        observation.cause = cause
        observation.message = cause
        return observation

    @staticmethod
    def _symptom(analysis: Analysis, image: Analysis | None) -> ErrorClass | None:
        """What is wrong for this platform as seen from the registry, or None."""
        if analysis.kind == "not-an-image" or (image is not None and image.kind == "not-an-image"):
            return ErrorClass.NOT_AN_IMAGE
        if analysis.kind == "unknown":
            return ErrorClass.UNSUPPORTED_MEDIA_TYPE
        if image is None:
            return ErrorClass.NO_PLATFORM_MATCH
        return None

    def _check_blobs(self, repository: Repository, image: Analysis) -> BaseException | None:
        blobs = [(image.config_digest, image.config_size)] if image.config_digest else []
        blobs += [(layer.digest, layer.size) for layer in image.layers]
        for digest, size in blobs:
            key = (str(repository), digest)
            if key not in self._blobs:
                self._blobs[key] = self._check_blob(repository, digest, size)
            if self._blobs[key] is not None:
                return self._blobs[key]
        return None

    def _check_blob(self, repository: Repository, digest: str, size: int) -> BaseException | None:
        try:
            if self.verify_blobs:
                self.client.verify_blob(repository, digest, size or None)
            else:
                self.client.blob_size(repository, digest)
        except Exception as exc:  # recorded with the observation
            return exc
        return None

    # Observations -------------------------------------------------------------------------

    def _base(self, probe: TagProbe, platform: str, started: float) -> Observation:
        repository = probe.repository
        limits = self.client.ratelimits.get(repository.registry)
        return Observation(
            run_id=self.run.run_id,
            registry=repository.registry,
            repository=repository.name,
            tag=probe.tag,
            platform=platform,
            client=CLIENT,
            client_version=__version__,
            method="probe",
            outcome="ok",
            duration_s=round(time.monotonic() - started, 3),
            ratelimit_limit=limits.limit if limits else None,
            ratelimit_remaining=limits.remaining if limits else None,
            ratelimit_source=limits.source if limits else "",
        )

    def _failed(
        self, probe: TagProbe, platform: str, error: BaseException, started: float
    ) -> Observation:
        return self._with_failure(self._base(probe, platform, started), error, {})

    def _with_failure(
        self, observation: Observation, error: BaseException, details: dict[str, Any]
    ) -> Observation:
        # Registry text can quote signed URLs, credentials or the client's own token.
        text = self.client.redact(
            str(error) if isinstance(error, MatrixError) else f"{type(error).__name__}: {error}"
        )
        if _is_harness_fault(error):
            # Not the registry's doing: a bug or a local problem of the probe itself.
            observation.outcome, observation.error_class = "error", str(ErrorClass.UNKNOWN)
            observation.message = text
            log.error("probe fault on %s: %s", observation.tag or "the tag list", text)
        else:
            error_class = failure_class(error)
            observation.outcome = "fail"
            observation.error_class = str(error_class)
            observation.message = text
            observation.cause = CLASS_INFO[error_class].explanation
            if isinstance(error, RegistryError):
                observation.http_status = error.status
        observation.verdict = observation.error_class
        if details:
            observation.details = _compact(details)
        return observation


def _compact(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def probe_repository(
    client: RegistryClient,
    repository: Repository,
    run_id: str,
    platforms: Iterable[str],
    *,
    tags: Iterable[str] | None = None,
    verify_blobs: bool = False,
    on_tag: Callable[[TagProbe], None] | None = None,
) -> ProbeRun:
    """Probe every tag of one repository (or only `tags`) and return what was observed."""
    prober = Prober(client, run_id, platforms, verify_blobs=verify_blobs)
    for tag in prober.list_tags(repository, tags):
        probe = prober.probe_tag(repository, tag)
        if on_tag:
            on_tag(probe)
    return prober.run


def group_predictions(predicted: Mapping[str, str]) -> str:
    """`20.10–25.0 no-platform-match; 26.1–29.0 registry-error` (runs of equal verdicts)."""
    runs: list[tuple[str, str, str]] = []
    for version in REFERENCE_VERSIONS:
        if version not in predicted:
            continue
        verdict = predicted[version]
        if runs and runs[-1][2] == verdict:
            runs[-1] = (runs[-1][0], version, verdict)
        else:
            runs.append((version, version, verdict))
    if len(runs) == 1:
        return f"all {runs[0][2]}"
    return "; ".join(
        f"{first}–{last} {verdict}" if first != last else f"{first} {verdict}"
        for first, last, verdict in runs
    )
