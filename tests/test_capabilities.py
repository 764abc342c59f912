"""Predictions and explanations against the measured table of image shapes and engines."""

from __future__ import annotations

import pytest

from matrix import mediatypes as mt
from matrix.analysis import Analysis, analyse
from matrix.capabilities import (
    CAPABILITIES,
    REFERENCE_VERSIONS,
    explain,
    parse_engine_version,
    predict,
    predictions,
)
from matrix.classify import ErrorClass, classify
from matrix.errors import ConfigError
from tests.cases import MEASURED
from tests.registry import builders as b

ENGINES = ("20.10.5+dfsg1", "20.10.24+dfsg1", "26.1.5+dfsg1", "28.5.2+dfsg1")


def shape(name: str) -> Analysis:
    if name == "v2s2":
        return analyse(b.image_manifest(mt.DOCKER_MANIFEST))
    if name == "oci":
        return analyse(b.image_manifest(mt.OCI_MANIFEST))
    if name == "schema1":
        return analyse(b.schema1_signed())
    if name == "zstd":
        return analyse(b.image_manifest(mt.OCI_MANIFEST, layer_type=mt.OCI_LAYER_ZSTD))
    if name == "arm-only":
        arm = b.image_manifest(mt.OCI_MANIFEST, seed="arm")
        return analyse(b.index([b.entry(arm, "linux/arm64/v8")]), b.store(arm).__getitem__)
    if name == "build-cache-on-tag":
        return analyse(b.build_cache_index())
    raise KeyError(name)


@pytest.mark.parametrize(
    ("name", "engine", "expected"),
    [
        (name, engine, expected)
        for name, row in MEASURED.items()
        for engine, expected in zip(ENGINES, row, strict=True)
    ],
)
def test_prediction_matches_measured_engines(name: str, engine: str, expected: str) -> None:
    assert predict(shape(name), "linux/amd64", engine) == ErrorClass(expected)


def test_engine_messages_classify_as_the_predicted_symptoms() -> None:
    # The symptom class predicted must be what the engine's own message classifies as.
    build_cache = shape("build-cache-on-tag")
    message = (
        "Error response from daemon: received unexpected HTTP status: 500 Internal Server Error"
    )
    assert classify(message) == predict(build_cache, "linux/amd64", "26.1.5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20.10.24+dfsg1", (20, 10, 24)),
        ("26.1", (26, 1, 0)),
        ("v28.5.2", (28, 5, 2)),
        ("29", (29, 0, 0)),
    ],
)
def test_parse_engine_version(text: str, expected: tuple[int, ...]) -> None:
    assert parse_engine_version(text) == expected


def test_unreadable_engine_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_engine_version("latest")


def test_predictions_cover_every_reference_version() -> None:
    result = predictions(shape("zstd"), "linux/amd64")

    assert list(result) == list(REFERENCE_VERSIONS)
    assert result["20.10"] == "layer-extract-failed"
    assert result["23.0"] == "ok"


def test_schema1_boundaries_follow_the_table() -> None:
    schema1 = shape("schema1")

    assert predict(schema1, "linux/amd64", "25.0.5") == ErrorClass.OK
    assert predict(schema1, "linux/amd64", "26.0.0") == ErrorClass.SCHEMA1_DISABLED
    assert predict(schema1, "linux/amd64", "28.1.1") == ErrorClass.SCHEMA1_DISABLED
    assert predict(schema1, "linux/amd64", "28.2.0") == ErrorClass.SCHEMA1_REMOVED


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("20.10.5", "ok"),
        ("20.10.24", "ok"),
        ("26.1.5", "schema1-disabled"),
        ("28.5.2", "schema1-removed"),
    ],
)
def test_schema1_is_judged_by_format_not_by_its_architecture(version: str, expected: str) -> None:
    # The lab's schema 1 image is amd64; real engines pulled it for linux/arm64 all the same.
    assert predict(shape("schema1"), "linux/arm64", version) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [("20.10.5", "ok"), ("20.10.24", "ok"), ("26.1.5", "no-platform-match"), ("28.5.2", "ok")],
)
def test_a_lone_manifest_for_another_platform_follows_measured_engines(
    version: str, expected: str
) -> None:
    # Measured: the amd64-only v2s2 image pulled for linux/arm64.
    config = b'{"architecture": "amd64", "os": "linux"}'
    amd64 = analyse(b.image_manifest(mt.DOCKER_MANIFEST), fetch_blob=lambda _d, _s: config)
    assert amd64.platform == "linux/amd64"

    assert predict(amd64, "linux/arm64", version) == expected


def test_every_capability_says_where_its_fact_comes_from() -> None:
    assert CAPABILITIES
    for row in CAPABILITIES:
        assert row.source in {"measured", "documented", "assumed"}
        assert row.note


@pytest.mark.parametrize("symptom", [ErrorClass.REGISTRY_ERROR, ErrorClass.NO_PLATFORM_MATCH])
def test_build_cache_symptoms_are_explained_as_not_an_image(symptom: ErrorClass) -> None:
    verdict, cause = explain(shape("build-cache-on-tag"), "linux/amd64", symptom, "500")

    assert verdict == ErrorClass.NOT_AN_IMAGE
    assert cause.startswith("this tag does not point at an image")
    assert "layer blob" in cause and "BuildKit cache config" in cause


def test_rate_limit_on_a_build_cache_tag_stays_a_rate_limit() -> None:
    verdict, _ = explain(shape("build-cache-on-tag"), "linux/amd64", ErrorClass.RATE_LIMITED)

    assert verdict == ErrorClass.RATE_LIMITED


def test_zstd_extract_failure_names_zstd() -> None:
    message = "failed to register layer: ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"
    verdict, cause = explain(shape("zstd"), "linux/amd64", classify(message), message)

    assert verdict == ErrorClass.LAYER_EXTRACT_FAILED
    assert "zstd" in cause and "23.0" in cause


def test_missing_platform_names_the_offered_platforms() -> None:
    verdict, cause = explain(shape("arm-only"), "linux/amd64", ErrorClass.NO_PLATFORM_MATCH)

    assert verdict == ErrorClass.NO_PLATFORM_MATCH
    assert "linux/arm64/v8" in cause


def test_schema1_symptom_is_explained_as_schema1() -> None:
    verdict, cause = explain(shape("schema1"), "linux/amd64", ErrorClass.SCHEMA1_REMOVED)

    assert verdict == ErrorClass.SCHEMA1_REMOVED
    assert "schema 1" in cause


def test_ok_has_no_cause_and_no_analysis_keeps_the_symptom() -> None:
    assert explain(shape("v2s2"), "linux/amd64", ErrorClass.OK) == (ErrorClass.OK, "")
    verdict, cause = explain(None, "linux/amd64", ErrorClass.NETWORK, "dial tcp")
    assert verdict == ErrorClass.NETWORK and cause


def test_supports_follows_the_table_rows() -> None:
    from matrix.capabilities import supports

    assert supports("zstd-layers", "23.0.0") and not supports("zstd-layers", "20.10.24")
    assert supports("schema1", "25.0") and not supports("schema1", "26.1.5")
    assert not supports("artifact-manifest", "29.0")


def test_index_of_artifacts_is_explained_by_the_platform_entry() -> None:
    helm = b.image_manifest(mt.OCI_MANIFEST, config_type="application/vnd.cncf.helm.config.v1+json")
    analysis = analyse(b.index([b.entry(helm, "linux/amd64")]), b.store(helm).__getitem__)

    verdict, cause = explain(analysis, "linux/amd64", ErrorClass.UNSUPPORTED_MEDIA_TYPE)

    assert verdict == ErrorClass.NOT_AN_IMAGE
    assert "helm.config" in cause
    assert predict(analysis, "linux/amd64", "28.5.2") == ErrorClass.UNSUPPORTED_MEDIA_TYPE


def test_unreadable_engine_version_predicts_unknown() -> None:
    assert predict(shape("v2s2"), "linux/amd64", "") == ErrorClass.UNKNOWN
