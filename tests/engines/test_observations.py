"""How a pull's outcome becomes an observation: classes, verdicts, findings, redaction."""

from __future__ import annotations

import pytest

from matrix import mediatypes as mt
from matrix.analysis import analyse
from matrix.engines.model import Engine
from matrix.engines.pull import Attempt, _observation, judge
from matrix.errors import redact_message
from matrix.observations import Observation
from matrix.reference import parse_reference
from tests.registry.builders import build_cache_index, image_manifest

OLD = Engine("unix:///tmp/old.sock", "20.10.24+dfsg1")
NEW = Engine("unix:///tmp/new.sock", "28.5.2+dfsg4")
REFERENCE = parse_reference("127.0.0.1:5000/demo/app:latest")


def _failed(engine: Engine, message: str, platform: str = "linux/amd64") -> Observation:
    attempt = Attempt("fail", message, duration_s=0.2)
    return _observation(engine, REFERENCE, platform, "run-1", attempt)


def test_a_failed_pull_carries_the_engines_message_and_its_class() -> None:
    message = "no matching manifest for linux/amd64 in the manifest list entries"
    observation = _failed(OLD, message)

    assert observation.outcome == "fail"
    assert observation.error_class == "no-platform-match"
    assert observation.message == message
    assert (observation.registry, observation.repository, observation.tag) == (
        "127.0.0.1:5000",
        "demo/app",
        "latest",
    )
    assert (observation.client, observation.client_version) == ("docker", "20.10.24+dfsg1")


def test_a_harness_error_has_no_class_and_no_image_verdict() -> None:
    attempt = Attempt("error", "engine at unix:///tmp/old.sock stopped answering")
    observation = _observation(OLD, REFERENCE, "linux/amd64", "run-1", attempt)

    assert observation.outcome == "error"
    assert observation.error_class == ""
    assert observation.predicted == ""


def test_a_build_cache_export_is_explained_whatever_the_engine_says() -> None:
    analysis = analyse(build_cache_index())
    old = judge(_failed(OLD, "no matching manifest for linux/amd64 in the manifest list"), analysis)
    new = judge(
        _failed(NEW, "received unexpected HTTP status: 500 Internal Server Error"), analysis
    )

    for observation in (old, new):
        assert observation.verdict == "not-an-image"
        assert "does not point at an image" in observation.cause
        assert observation.kind == "not-an-image"
        assert observation.finding == ""
    assert (old.predicted, new.predicted) == ("no-platform-match", "registry-error")


def test_an_outcome_the_capability_table_did_not_predict_is_a_finding() -> None:
    analysis = analyse(image_manifest(mt.OCI_MANIFEST, layer_type=mt.OCI_LAYER_ZSTD))
    surprise = judge(_failed(NEW, "failed to register layer: archive/tar: invalid tar"), analysis)

    assert surprise.predicted == "ok"
    assert surprise.finding == "prediction-mismatch: predicted ok, observed layer-extract-failed"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            'Get "https://storage.example.test/blobs/sha256/ab?X-Amz-Signature=abc&X-Amz-'
            'Credential=key": net/http: TLS handshake timeout',
            'Get "https://storage.example.test/blobs/sha256/ab?REDACTED": net/http: TLS '
            "handshake timeout",
        ),
        (
            "Head https://user:secret@registry.example.test/v2/app/manifests/1.0: unauthorized",
            "Head https://registry.example.test/v2/app/manifests/1.0: unauthorized",
        ),
        ("received unexpected HTTP status: 500", "received unexpected HTTP status: 500"),
    ],
)
def test_urls_in_engine_messages_lose_their_credentials(message: str, expected: str) -> None:
    assert redact_message(message) == expected


def test_a_tag_that_moved_between_probe_and_pull_is_not_judged_by_the_old_analysis() -> None:
    probed = analyse(build_cache_index())
    pulled = "sha256:" + "9" * 64
    attempt = Attempt("ok", "", duration_s=0.1, digest=pulled)
    observation = _observation(NEW, REFERENCE, "linux/amd64", "run-1", attempt)

    judged = judge(observation, probed)

    assert judged.verdict == "ok" and judged.digest == pulled
    assert judged.finding == f"tag-moved: probed {probed.digest}, the engine pulled {pulled}"
    assert judged.kind == "" and judged.predicted == ""
