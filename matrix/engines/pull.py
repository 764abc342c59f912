"""Pulling a tag with a real engine and recording what happened as an observation.

Each pull starts from a clean state for that image (it is removed first) and ends by removing
it again, so an engine's disk use stays bounded by the largest image. The engine's own message
is kept word for word and classified with `matrix.classify`. A failure of the harness itself
(the engine died, its socket is gone, the connection was refused) is recorded with outcome
`error`: it says nothing about the image and is never counted as an incompatibility.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError

from matrix.analysis import Analysis
from matrix.capabilities import explain, predict
from matrix.classify import CLASS_INFO, ErrorClass, classify
from matrix.engines.model import (
    DEFAULT_TIMEOUTS,
    TRANSPORT_ERRORS,
    Engine,
    Timeouts,
    api_client,
    is_alive,
    timed_out,
)
from matrix.errors import EngineError, redact_message
from matrix.observations import Observation, new_run_id
from matrix.reference import Reference, parse_reference

log = logging.getLogger(__name__)

# Transient failures (CLASS_INFO marks them) are tried again this many times, after these pauses.
RETRY_PAUSES = (2.0, 5.0)

# What reading a pull's progress stream can raise besides the engine's own answers: a broken
# connection, or a progress event that is not JSON (ValueError).
_STREAM_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, ValueError)

# (registry, repository, tag) -> the format analysis of what the tag points at.
AnalysisKey = tuple[str, str, str]
Analyses = Mapping[AnalysisKey, Analysis]


@dataclass
class Attempt:
    """What one pull through the engine's API gave."""

    outcome: str
    message: str = ""
    digest: str = ""
    size: int | None = None
    duration_s: float = 0.0
    # The engine let a call run past its timeout: it is taken as hung.
    timed_out: bool = False


class _HarnessFault(Exception):
    """The engine stopped answering during a pull: a fault of the harness, not of the image."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def pull_one(
    engine: Engine,
    reference: str,
    platform: str,
    *,
    run_id: str = "",
    analysis: Analysis | None = None,
    pauses: Sequence[float] = RETRY_PAUSES,
    sleep: Callable[[float], None] = time.sleep,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> Observation:
    """Pull `reference` for `platform` with `engine` and return the observation of it.

    Whatever the engine or its connection does, the answer is an observation: a broken or
    hung engine gives outcome `error`.
    """
    observation, _ = _pull_observed(
        engine, reference, platform, run_id, analysis, pauses, sleep, timeouts
    )
    return observation


def _pull_observed(
    engine: Engine,
    reference: str,
    platform: str,
    run_id: str,
    analysis: Analysis | None,
    pauses: Sequence[float],
    sleep: Callable[[float], None],
    timeouts: Timeouts,
) -> tuple[Observation, Attempt]:
    parsed = parse_reference(reference)
    run_id = run_id or new_run_id()
    attempt = _attempt(engine, parsed, platform, timeouts)
    for pause in pauses:
        if attempt.outcome != "fail":
            break
        symptom = classify(attempt.message)
        if not CLASS_INFO[symptom].transient or _expected(analysis, platform, engine, symptom):
            break
        log.warning(
            "pull of %s with %s failed (%s); trying again in %.0f s",
            reference,
            engine.label,
            symptom,
            pause,
        )
        sleep(pause)
        attempt = _attempt(engine, parsed, platform, timeouts)
    observation = _observation(engine, parsed, platform, run_id, attempt)
    if analysis is not None:
        judge(observation, analysis)
    log.info(
        "pulled %s for %s with %s: %s",
        reference,
        platform,
        engine.label,
        observation.verdict,
    )
    return observation, attempt


def _expected(
    analysis: Analysis | None, platform: str, engine: Engine, symptom: ErrorClass
) -> bool:
    """True when the tag's content predicts this very failure, so trying again cannot help."""
    if analysis is None:
        return False
    try:
        return predict(analysis, platform, engine.version) == symptom
    except ValueError:
        return False


def _attempt(engine: Engine, reference: Reference, platform: str, timeouts: Timeouts) -> Attempt:
    name = str(reference)
    try:
        client = api_client(engine.endpoint, timeouts)
    except EngineError as exc:
        return Attempt("error", str(exc), timed_out=timed_out(exc))
    try:
        _remove(client, name)
    except TRANSPORT_ERRORS as exc:
        client.close()
        message = f"engine at {engine.endpoint} cannot remove {name}: {exc}"
        return Attempt("error", message, timed_out=timed_out(exc))
    started = time.monotonic()
    try:
        return _pull_and_remove(client, reference, platform, started)
    except _PullFailed as exc:
        _remove_quietly(client, name)
        message = redact_message(exc.message)
        return Attempt("fail", message, duration_s=time.monotonic() - started)
    except APIError as exc:
        message = redact_message(_api_message(exc))
        _remove_quietly(client, name)
        return Attempt("fail", message, duration_s=time.monotonic() - started)
    except _HarnessFault as exc:
        return _stopped(engine, exc, started, exc.timed_out)
    except TRANSPORT_ERRORS as exc:
        return _stopped(engine, exc, started, timed_out(exc))
    finally:
        client.close()


def _stopped(engine: Engine, exc: Exception, started: float, hung: bool) -> Attempt:
    return Attempt(
        "error",
        f"engine at {engine.endpoint} stopped answering: {exc}",
        duration_s=time.monotonic() - started,
        timed_out=hung,
    )


def _pull_and_remove(
    client: docker.APIClient, reference: Reference, platform: str, started: float
) -> Attempt:
    """Pull, measure, then remove the image again so the engine's disk use stays bounded."""
    digest = _pull(client, reference, platform)
    duration = time.monotonic() - started
    image = client.inspect_image(str(reference))
    digest = digest or _repo_digest(image, reference)
    _remove(client, str(image.get("Id") or reference))
    return Attempt("ok", "", digest, int(image.get("Size") or 0), duration)


class _PullFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _pull(client: docker.APIClient, reference: Reference, platform: str) -> str:
    """Pull through the API's progress stream; the digest the engine resolved, or ""."""
    repository = str(reference.repository)
    tag = reference.digest or reference.tag or "latest"
    digest = ""
    try:
        for event in client.pull(repository, tag=tag, platform=platform, stream=True, decode=True):
            digest = _digest_of(event) or digest
            if isinstance(event, dict) and (event.get("error") or event.get("errorDetail")):
                raise _PullFailed(_event_message(event))
    except APIError:
        raise
    except _STREAM_ERRORS as exc:
        # The stream broke off or stopped making sense: the engine went away, or hung, in the
        # middle of the pull.
        raise _HarnessFault(str(exc), timed_out=timed_out(exc)) from exc
    return digest


def _digest_of(event: Any) -> str:
    status = event.get("status", "") if isinstance(event, dict) else ""
    if isinstance(status, str) and status.startswith("Digest: "):
        return status.removeprefix("Digest: ").strip()
    return ""


def _event_message(event: dict[str, Any]) -> str:
    detail = event.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"])
    return str(event.get("error") or "pull failed without a message")


def _api_message(exc: APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc).strip()


def _repo_digest(image: Mapping[str, Any], reference: Reference) -> str:
    """The digest of `reference`'s repository among the image's RepoDigests."""
    for entry in image.get("RepoDigests") or []:
        name, _, digest = str(entry).partition("@")
        if digest and parse_reference(name).repository == reference.repository:
            return digest
    return ""


def _remove(client: docker.APIClient, name: str) -> None:
    """Remove the image `name` refers to, with every tag it has and its layers.

    Removing by image ID rather than by name matters when another tag shares the image: only
    then are its layers gone, so the next pull downloads and unpacks every layer again.
    An image that is not there is fine.
    """
    try:
        image_id = str(client.inspect_image(name).get("Id") or name)
        client.remove_image(image_id, force=True)
    except APIError as exc:
        if exc.status_code != 404:
            raise


def _remove_quietly(client: docker.APIClient, name: str) -> None:
    try:
        _remove(client, name)
    except TRANSPORT_ERRORS as exc:
        log.debug("could not remove %s after a failed pull: %s", name, exc)


def _observation(
    engine: Engine, reference: Reference, platform: str, run_id: str, attempt: Attempt
) -> Observation:
    error_class = ""
    if attempt.outcome == "fail":
        error_class = str(classify(attempt.message))
    return Observation(
        run_id=run_id,
        registry=reference.repository.registry,
        repository=reference.repository.name,
        tag=reference.tag or reference.digest or "latest",
        platform=platform,
        client=engine.client,
        client_version=engine.version,
        method="pull",
        outcome=attempt.outcome,
        digest=attempt.digest,
        error_class=error_class,
        message=attempt.message,
        duration_s=round(attempt.duration_s, 3),
        bytes=attempt.size,
    )


def judge(observation: Observation, analysis: Analysis) -> Observation:
    """Fill the prediction, the verdict, the cause and any finding from the tag's analysis.

    When the engine pulled another digest than the one probed, the tag moved in between: the
    analysis is of other content, so it explains nothing and predicts nothing for this pull.
    """
    if observation.digest and analysis.digest and observation.digest != analysis.digest:
        observation.finding = (
            f"tag-moved: probed {analysis.digest}, the engine pulled {observation.digest}"
        )
        return observation
    observation.kind = analysis.kind
    observation.media_type = analysis.media_type
    image = analysis.for_platform(observation.platform)
    if image is not None and image is not analysis:
        observation.platform_digest = image.digest
    if observation.outcome == "error":
        return observation
    symptom = ErrorClass(observation.error_class or ErrorClass.OK)
    try:
        predicted = predict(analysis, observation.platform, observation.client_version)
    except ValueError:
        predicted = ErrorClass.UNKNOWN
    verdict, cause = explain(analysis, observation.platform, symptom, observation.message)
    observation.predicted = str(predicted)
    observation.verdict = str(verdict)
    observation.cause = cause
    if predicted != ErrorClass.UNKNOWN and predicted != symptom:
        observation.finding = f"prediction-mismatch: predicted {predicted}, observed {symptom}"
    return observation


def pull_many(
    engines: Sequence[Engine],
    references: Sequence[str],
    platforms: Sequence[str],
    *,
    analyses: Analyses | None = None,
    run_id: str = "",
    pauses: Sequence[float] = RETRY_PAUSES,
    on_observation: Callable[[Observation], None] | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> list[Observation]:
    """Pull every reference for every platform with every engine.

    Engines work in parallel, one thread each; within one engine the pulls run one at a time.
    An engine that stops answering (it dies, hangs past `timeouts`, or breaks off a pull) gets
    outcome `error` for that pull and, unless it still answers a ping after a failure that was
    not a timeout, for the rest of its pulls while the others go on. Observations come back
    ordered by engine, then reference, then platform.
    """
    run_id = run_id or new_run_id()
    analyses = analyses or {}

    def one(engine: Engine, reference: str, platform: str) -> tuple[Observation, Attempt]:
        analysis = analyses.get(analysis_key(reference))
        try:
            return _pull_observed(
                engine, reference, platform, run_id, analysis, pauses, time.sleep, timeouts
            )
        except Exception as exc:
            # A fault of the harness itself must cost this one observation, not the whole run.
            log.exception("pull of %s with %s failed in the harness", reference, engine.label)
            attempt = Attempt("error", f"harness failure while pulling: {exc!r}")
            parsed = parse_reference(reference)
            return _observation(engine, parsed, platform, run_id, attempt), attempt

    def work(engine: Engine) -> list[Observation]:
        observations = []
        dead = ""
        for reference in references:
            for platform in platforms:
                if dead:
                    observation = _unreachable(engine, reference, platform, run_id, dead)
                else:
                    observation, attempt = one(engine, reference, platform)
                    if _gone(engine, attempt, timeouts):
                        dead = observation.message
                        log.warning(
                            "%s is gone; its remaining pulls are recorded as errors", engine.label
                        )
                if on_observation is not None:
                    on_observation(observation)
                observations.append(observation)
        return observations

    if not engines:
        return []
    with ThreadPoolExecutor(max_workers=len(engines), thread_name_prefix="pull") as pool:
        results = list(pool.map(work, engines))
    return [observation for per_engine in results for observation in per_engine]


def _gone(engine: Engine, attempt: Attempt, timeouts: Timeouts) -> bool:
    """True when the engine of a failed pull is to be given up for the rest of the run."""
    if attempt.outcome != "error":
        return False
    return attempt.timed_out or not is_alive(engine.endpoint, min(5.0, timeouts.control))


def analysis_key(reference: str) -> AnalysisKey:
    parsed = parse_reference(reference)
    tag = parsed.tag or parsed.digest or "latest"
    return (parsed.repository.registry, parsed.repository.name, tag)


def _unreachable(
    engine: Engine, reference: str, platform: str, run_id: str, cause: str
) -> Observation:
    attempt = Attempt("error", f"not pulled: {cause}")
    return _observation(engine, parse_reference(reference), platform, run_id, attempt)


def summarise(observations: Iterable[Observation]) -> dict[str, int]:
    """How many observations ended in each verdict."""
    counts: dict[str, int] = {}
    for observation in observations:
        counts[observation.verdict] = counts.get(observation.verdict, 0) + 1
    return dict(sorted(counts.items()))
