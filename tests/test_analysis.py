"""Format analysis of every image shape, from manifests built in the test."""

from __future__ import annotations

import json

import pytest

from matrix import mediatypes as mt
from matrix.analysis import analyse
from matrix.errors import ProtocolError
from matrix.registry.manifest import Manifest, content_digest, sha256_digest
from tests.registry import builders as b


def test_docker_schema2_image_is_an_image_with_gzip_layers() -> None:
    result = analyse(b.image_manifest(mt.DOCKER_MANIFEST, layers=2))

    assert result.kind == "image"
    assert result.media_type == mt.DOCKER_MANIFEST
    assert result.compressions == ["gzip"]
    assert len(result.layers) == 2
    assert result.image_size == 300 + 2 * 1000
    assert result.for_platform("linux/amd64") is result


def test_oci_zstd_image_reports_zstd() -> None:
    result = analyse(b.image_manifest(mt.OCI_MANIFEST, layer_type=mt.OCI_LAYER_ZSTD))

    assert result.kind == "image"
    assert result.is_oci
    assert result.compressions == ["zstd"]


def test_uncompressed_layer_is_named_so() -> None:
    result = analyse(b.image_manifest(mt.OCI_MANIFEST, layer_type=mt.OCI_LAYER))

    assert result.compressions == ["uncompressed"]


def test_index_lists_platforms_and_keeps_attestations_apart() -> None:
    amd = b.image_manifest(mt.OCI_MANIFEST, seed="amd")
    arm = b.image_manifest(mt.OCI_MANIFEST, seed="arm", layer_type=mt.OCI_LAYER_ZSTD)
    attestation, attestation_entry = b.attestation_for(amd)
    top = b.index([b.entry(amd, "linux/amd64"), b.entry(arm, "linux/arm64/v8"), attestation_entry])
    known = b.store(amd, arm, attestation)

    result = analyse(top, known.__getitem__)

    assert result.kind == "index"
    assert result.platforms == ["linux/amd64", "linux/arm64/v8"]
    assert [a.digest for a in result.attestations] == [attestation.digest]
    assert attestation.digest not in result.images
    arm_image = result.for_platform("linux/arm64")
    assert arm_image is not None and arm_image.compressions == ["zstd"]
    assert result.for_platform("linux/amd64").digest == amd.digest  # type: ignore[union-attr]
    assert result.for_platform("linux/s390x") is None


def test_arm_only_index_has_no_amd64_image() -> None:
    arm = b.image_manifest(mt.OCI_MANIFEST, seed="arm")
    result = analyse(b.index([b.entry(arm, "linux/arm64/v8")]), b.store(arm).__getitem__)

    assert result.kind == "index"
    assert result.platforms == ["linux/arm64/v8"]
    assert result.for_platform("linux/amd64") is None
    assert result.for_platform("linux/arm64") is not None


def test_build_cache_export_on_a_tag_is_not_an_image() -> None:
    fetched: list[str] = []

    def fetch(digest: str) -> Manifest:
        fetched.append(digest)
        raise AssertionError("blob entries must never be fetched as manifests")

    result = analyse(b.build_cache_index(), fetch)

    assert result.kind == "not-an-image"
    assert result.platforms == []
    assert fetched == []
    assert "a BuildKit cache config" in result.reason
    assert "a layer blob" in result.reason
    assert "build-cache export" in result.reason
    assert result.for_platform("linux/amd64") is None
    assert {c.role for c in result.children} == {"blob"}


def test_artifact_manifest_is_not_an_image() -> None:
    artifact = b.image_manifest(
        mt.OCI_MANIFEST, config_type="application/vnd.cncf.helm.config.v1+json"
    )
    result = analyse(artifact)

    assert result.kind == "not-an-image"
    assert "application/vnd.cncf.helm.config.v1+json" in result.reason


def test_cache_manifest_with_cache_config_is_not_an_image() -> None:
    cache = b.image_manifest(mt.OCI_MANIFEST, config_type=mt.BUILDKIT_CACHE_CONFIG)

    assert "build-cache export" in analyse(cache).reason


def test_signed_schema1_is_schema1_and_addressed_by_its_payload() -> None:
    signed = b.schema1_signed("arm64")

    assert content_digest(signed.data, signed.media_type) == signed.digest
    assert sha256_digest(signed.data) != signed.digest
    result = analyse(signed)
    assert result.kind == "schema1"
    assert result.platform == "linux/arm64"
    assert result.compressions == ["gzip"]


def test_schema1_served_as_plain_json_is_recognised() -> None:
    signed = b.schema1_signed()
    result = analyse(Manifest(signed.digest, "application/json", signed.data))

    assert result.kind == "schema1"
    assert result.media_type == mt.DOCKER_SCHEMA1_SIGNED


def test_oci_manifest_without_media_type_field_is_recognised_from_its_shape() -> None:
    document = json.loads(b.image_manifest(mt.OCI_MANIFEST).data)
    del document["mediaType"]
    result = analyse(b.manifest(document, ""))

    assert result.kind == "image"
    assert result.media_type == mt.OCI_MANIFEST


def test_html_page_instead_of_a_manifest_is_unknown() -> None:
    page = Manifest(sha256_digest(b"{}"), "text/html", b"{}")
    result = analyse(page)

    assert result.kind == "unknown"
    assert "text/html" in result.reason


def test_config_platform_is_read_for_a_lone_manifest() -> None:
    image = b.image_manifest(mt.DOCKER_MANIFEST)
    config = json.dumps({"os": "linux", "architecture": "arm64", "variant": "v8"}).encode()

    result = analyse(image, None, lambda digest, size: config)

    assert result.platform == "linux/arm64/v8"
    assert result.for_platform("linux/amd64") is None
    assert result.for_platform("linux/arm64") is result


@pytest.mark.parametrize(
    "document",
    [
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [{"digest": "nope"}]},
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": "all of them"},
        {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}, "layers": []},
    ],
)
def test_malformed_manifests_raise_protocol_errors(document: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        analyse(b.manifest(document))


def test_non_json_manifest_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        analyse(Manifest(sha256_digest(b"<html>"), mt.OCI_MANIFEST, b"<html>"))


def test_control_characters_in_annotations_are_neutralised() -> None:
    image = b.image_manifest(mt.OCI_MANIFEST, seed="a")
    evil = b.entry(image, "linux/amd64", annotations={"org.title": "x\x1b[31mred\n"})
    result = analyse(b.index([evil]), b.store(image).__getitem__)

    assert result.children[0].annotations["org.title"] == "x?[31mred?"


def test_summary_is_compact_json_with_the_main_facts() -> None:
    data = json.loads(analyse(b.build_cache_index()).to_json())

    assert data["kind"] == "not-an-image"
    assert data["platforms"] == []
    assert {child["role"] for child in data["children"]} == {"blob"}


def test_deeply_nested_config_is_a_problem_not_a_crash() -> None:
    deep = b"[" * 50_000 + b"]" * 50_000

    result = analyse(b.image_manifest(), None, lambda digest, size: deep)

    assert result.kind == "image" and result.platform == ""
    assert any("nests deeper" in problem for problem in result.problems)


def test_deeply_nested_manifest_is_a_protocol_error() -> None:
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000

    with pytest.raises(ProtocolError, match="nests deeper"):
        analyse(Manifest(sha256_digest(deep), mt.OCI_MANIFEST, deep))
