"""The lab's images: builders give real, stable content; pushes read back from real registries."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from typing import Any

import httpx
import pytest
import zstandard

from matrix import mediatypes as mt
from matrix.errors import AuthError, DigestMismatchError, LabError, ProtocolError
from matrix.lab import imagebuild as ib
from matrix.lab import images
from matrix.lab.images import (
    AMD64,
    ARM64,
    FAMILY_ARM64_TAG,
    FAMILY_RELEASE_TAGS,
    FAMILY_SCHEMA1_TAG,
    FAMILY_ZSTD_TAG,
    GHCR_ROLE,
    HUB_ROLE,
    SHAPES,
    convert_to_schema1,
    family_plans,
    incident_plan,
    publish_family,
    publish_shapes,
    shape_plans,
)
from matrix.lab.push import Pusher, parse_bearer_challenge
from matrix.lab.registries import RunningRole
from tests.conftest import TOKEN_USERS

ACCEPT_ALL = (
    mt.OCI_INDEX,
    mt.DOCKER_MANIFEST_LIST,
    mt.OCI_MANIFEST,
    mt.DOCKER_MANIFEST,
    mt.DOCKER_SCHEMA1_SIGNED,
)

# The top-level media type each shape's tag must be served with.
SHAPE_MEDIA_TYPES = {
    "v2s2": mt.DOCKER_MANIFEST,
    "oci": mt.OCI_MANIFEST,
    "schema1": mt.DOCKER_SCHEMA1_SIGNED,
    "zstd": mt.OCI_MANIFEST,
    "arm-only": mt.OCI_INDEX,
    "build-cache-on-tag": mt.OCI_INDEX,
}


def _decompress(blob: ib.Blob) -> bytes:
    if blob.media_type in (mt.OCI_LAYER_GZIP, mt.DOCKER_LAYER_GZIP):
        return gzip.decompress(blob.data)
    if blob.media_type == mt.OCI_LAYER_ZSTD:
        return zstandard.ZstdDecompressor().decompress(blob.data)
    return blob.data


def _children(manifest: ib.Blob) -> tuple[ib.Blob, list[ib.Blob]]:
    config, *layers = manifest.children
    return config, layers


# Builders -------------------------------------------------------------------------------------


def test_same_plans_give_same_digests() -> None:
    first = [(plan.tag, plan.root.digest) for plan in shape_plans("a/b") + family_plans("a/b")]
    again = [(plan.tag, plan.root.digest) for plan in shape_plans("a/b") + family_plans("a/b")]

    assert first == again
    assert len({digest for tag, digest in first if tag in SHAPES}) == len(SHAPES)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_layer_is_a_real_tar_whose_digest_is_the_diff_id(compression: str) -> None:
    image = ib.build_image(ARM64, "probe", compression=compression)
    config, (layer,) = _children(image)
    tar = _decompress(layer)

    assert config.json()["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        members = {member.name: member for member in archive.getmembers()}
        hello = archive.extractfile(members["hello.txt"])
        assert hello is not None and b"probe" in hello.read()
    assert set(members) == {"etc", "etc/os-release", "hello.txt"}
    assert all(member.uid == 0 and member.mtime == ib.FIXED_EPOCH for member in members.values())


def test_layer_media_types_follow_compression_and_format() -> None:
    assert ib.build_layer({"/a": b"a"}, "zstd").blob.media_type == mt.OCI_LAYER_ZSTD
    assert ib.build_layer({"/a": b"a"}, "none").blob.media_type == mt.OCI_LAYER
    assert ib.build_layer({"/a": b"a"}, oci=False).blob.media_type == mt.DOCKER_LAYER_GZIP
    with pytest.raises(ValueError, match="zstd"):
        ib.build_layer({"/a": b"a"}, "zstd", oci=False)


def test_every_platform_entry_has_a_config_for_that_platform() -> None:
    checked = 0
    for plan in family_plans("kivy/buildozer"):
        if plan.root.media_type != mt.OCI_INDEX:
            continue
        for entry in plan.root.children:
            described = entry.descriptor()["platform"]
            config = entry.children[0].json()
            assert config["architecture"] == described["architecture"]
            assert config["os"] == described["os"]
            assert config.get("variant") == described.get("variant")
            checked += 1
    assert checked >= 10


def test_attestations_are_shaped_as_buildx_pushes_them() -> None:
    index = ib.multi_platform_image([AMD64, ARM64], "9", subject="pkg:docker/x/y")
    entries = index.json()["manifests"]
    images, attestations = entries[:2], entries[2:]

    assert [entry["annotations"][mt.REFERENCE_DIGEST] for entry in attestations] == [
        image["digest"] for image in images
    ]
    for entry, blob in zip(attestations, index.children[2:], strict=True):
        assert entry["platform"] == {"architecture": "unknown", "os": "unknown"}
        assert entry["annotations"][mt.REFERENCE_TYPE] == mt.ATTESTATION_MANIFEST
        (layer,) = blob.json()["layers"]
        assert layer["mediaType"] == ib.IN_TOTO
        assert layer["annotations"][ib.PREDICATE_TYPE] == ib.SLSA_PROVENANCE
        statement = json.loads(blob.children[1].data)
        assert statement["subject"][0]["name"].startswith("pkg:docker/x/y@9?platform=")


def test_docker_manifest_list_has_no_attestations_or_annotations() -> None:
    listing = ib.multi_platform_image([ARM64], "1", oci=False, attestations=False)

    assert listing.media_type == mt.DOCKER_MANIFEST_LIST
    assert listing.json()["manifests"][0]["mediaType"] == mt.DOCKER_MANIFEST
    with pytest.raises(ValueError, match="OCI index"):
        ib.multi_platform_image([ARM64], "1", oci=False)


def test_build_cache_export_lists_blobs_that_are_not_images() -> None:
    export = ib.build_cache_export("x")
    entries = export.json()["manifests"]

    assert export.media_type == mt.OCI_INDEX
    assert [entry["mediaType"] for entry in entries] == [
        mt.OCI_LAYER_GZIP,
        mt.BUILDKIT_CACHE_CONFIG,
    ]
    assert not any("platform" in entry for entry in entries)
    cache_config = json.loads(export.children[1].data)
    assert cache_config["layers"][0]["blob"] == entries[0]["digest"]


def test_walk_yields_children_before_parents_once_each() -> None:
    index = ib.multi_platform_image([ARM64, ARM64], "1", attestations=False)
    order = [blob.digest for blob in ib.walk(index)]

    assert order[-1] == index.digest
    assert len(order) == len(set(order)) == 4


# Pusher edge cases a real registry does not produce -------------------------------------------


def _fake_registry(stored_digest: str | None, location: str) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": location})
        headers = {"Docker-Content-Digest": stored_digest} if stored_digest else {}
        if "/blobs/uploads/" in request.url.path:
            assert request.url.params["digest"].startswith("sha256:")
            assert request.url.params["_state"] == "s"
        return httpx.Response(201, headers=headers)

    return httpx.MockTransport(answer)


@pytest.mark.parametrize("location", ["/v2/r/blobs/uploads/1?_state=s", "http://h:1/up?_state=s"])
def test_upload_follows_relative_and_absolute_locations(location: str) -> None:
    blob = ib.Blob("application/octet-stream", b"data")
    with Pusher("h:1", transport=_fake_registry(blob.digest, location)) as pusher:
        assert pusher.push_blob("r", blob) is True


def test_push_refuses_a_registry_that_stores_another_digest() -> None:
    manifest = ib.build_image(ARM64, "x")
    with (
        Pusher("h:1", transport=_fake_registry("sha256:" + "0" * 64, "/up?_state=s")) as pusher,
        pytest.raises(DigestMismatchError, match="0000"),
    ):
        pusher.push_manifest("r", "t", manifest)


def test_bearer_challenge_is_parsed() -> None:
    header = 'Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a:pull"'
    assert parse_bearer_challenge(header) == {
        "realm": "http://127.0.0.1:9/token",
        "service": "reg",
        "scope": "repository:a:pull",
    }
    assert parse_bearer_challenge('Basic realm="x"') == {}


# Real registries ------------------------------------------------------------------------------


def _read_back(pusher: Pusher, repository: str, tag: str) -> tuple[httpx.Response, dict[str, Any]]:
    """GET the tag's manifest; check its digest; check every blob and manifest it names exists."""
    response = pusher.get_manifest(repository, tag, ACCEPT_ALL)
    assert response.status_code == 200, response.text
    document = response.json()
    if document.get("schemaVersion") != 1:
        assert response.headers["Docker-Content-Digest"] == ib.sha256_digest(response.content)

    for layer in document.get("fsLayers", []):
        assert pusher.has_blob(repository, layer["blobSum"])
    for described in [document.get("config"), *document.get("layers", [])]:
        if described:
            assert pusher.has_blob(repository, described["digest"])
    for entry in document.get("manifests", []):
        if entry["mediaType"] in mt.MANIFESTS:
            child = pusher.get_manifest(repository, entry["digest"], [entry["mediaType"]])
            assert child.status_code == 200
            assert child.headers["Content-Type"] == entry["mediaType"]
        else:
            assert pusher.has_blob(repository, entry["digest"])
    return response, document


@pytest.fixture(scope="module")
def shapes(registry: Any) -> dict[str, str]:
    return publish_shapes(registry.host, "lab-images/shapes")


@pytest.mark.registry
@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_reads_back(registry: Any, shapes: dict[str, str], shape: str) -> None:
    with Pusher(registry.host) as pusher:
        response, _ = _read_back(pusher, "lab-images/shapes", shape)

    assert response.headers["Content-Type"] == SHAPE_MEDIA_TYPES[shape]
    assert response.headers["Docker-Content-Digest"] == shapes[shape]


@pytest.mark.registry
def test_schema1_shape_is_a_signed_schema1_manifest(registry: Any, shapes: dict[str, str]) -> None:
    with Pusher(registry.host) as pusher:
        response, document = _read_back(pusher, "lab-images/shapes", "schema1")

    assert response.headers["Content-Type"] == mt.DOCKER_SCHEMA1_SIGNED
    assert document["schemaVersion"] == 1 and document["signatures"]
    assert document["tag"] == "schema1" and document["architecture"] == "amd64"
    assert len(document["fsLayers"]) == len(document["history"]) == 1


@pytest.mark.registry
def test_pushing_again_uploads_nothing_and_keeps_digests(
    registry: Any, shapes: dict[str, str]
) -> None:
    plans = {plan.tag: plan for plan in shape_plans("lab-images/shapes")}
    with Pusher(registry.host) as pusher:
        layer = plans["oci"].root.children[1]
        assert pusher.push_blob("lab-images/shapes", layer) is False

    assert publish_shapes(registry.host, "lab-images/shapes") == shapes


ALICE = ("alice", TOKEN_USERS["alice"])


@pytest.fixture(scope="module")
def role_hosts(hub_registry: RunningRole, ghcr_registry: RunningRole) -> dict[str, str]:
    return {HUB_ROLE: hub_registry.host, GHCR_ROLE: ghcr_registry.host}


@pytest.fixture(scope="module")
def family(role_hosts: dict[str, str]) -> dict[str, dict[str, str]]:
    """The family published as the lab does: token registries behind the Hub and GHCR proxies."""
    return publish_family(
        role_hosts[HUB_ROLE],
        role_hosts[GHCR_ROLE],
        "lab-images/buildozer",
        credentials={host: ALICE for host in role_hosts.values()},
    )


@pytest.mark.registry
def test_family_has_the_same_digests_on_both_registries_except_latest(
    family: dict[str, dict[str, str]],
) -> None:
    hub, ghcr = family[HUB_ROLE], family[GHCR_ROLE]
    expected_tags = {*FAMILY_RELEASE_TAGS, FAMILY_SCHEMA1_TAG, FAMILY_ZSTD_TAG, FAMILY_ARM64_TAG}

    assert set(hub) == set(ghcr) == expected_tags
    assert {tag for tag in hub if hub[tag] != ghcr[tag]} == {"latest"}
    assert ghcr["latest"] == ghcr["1.6.0"] == ghcr["stable"] != ghcr["1.5.0"]


@pytest.mark.registry
def test_hub_latest_is_the_build_cache_export(
    role_hosts: dict[str, str], family: dict[str, dict[str, str]]
) -> None:
    with Pusher(role_hosts[HUB_ROLE]) as anonymous:
        response, document = _read_back(anonymous, "lab-images/buildozer", "latest")

    assert response.headers["Docker-Content-Digest"] == family[HUB_ROLE]["latest"]
    assert family[HUB_ROLE]["latest"] == incident_plan("lab-images/buildozer").root.digest
    assert [entry["mediaType"] for entry in document["manifests"]] == [
        mt.OCI_LAYER_GZIP,
        mt.BUILDKIT_CACHE_CONFIG,
    ]


@pytest.mark.registry
@pytest.mark.parametrize("role", [HUB_ROLE, GHCR_ROLE])
def test_family_tags_read_back_as_published(
    role_hosts: dict[str, str], family: dict[str, dict[str, str]], role: str
) -> None:
    with Pusher(role_hosts[role]) as anonymous:
        for tag, digest in family[role].items():
            response, _ = _read_back(anonymous, "lab-images/buildozer", tag)
            assert response.headers["Docker-Content-Digest"] == digest
            schema1 = response.headers["Content-Type"] == mt.DOCKER_SCHEMA1_SIGNED
            assert schema1 == (tag == FAMILY_SCHEMA1_TAG)
        release = anonymous.get_manifest("lab-images/buildozer", "1.6.0", ACCEPT_ALL).json()

    platforms = [entry["platform"] for entry in release["manifests"]]
    assert {"architecture": "arm64", "os": "linux", "variant": "v8"} in platforms
    assert {"architecture": "amd64", "os": "linux"} in platforms
    assert platforms.count({"architecture": "unknown", "os": "unknown"}) == 2


@pytest.mark.registry
def test_push_with_a_wrong_password_fails_without_showing_it(token_registry: Any) -> None:
    user = next(iter(token_registry.users))
    with (
        Pusher(token_registry.host, credentials=(user, "not-the-password")) as pusher,
        pytest.raises(AuthError) as caught,
    ):
        pusher.push("lab-images/denied", "t", ib.build_image(ARM64, "denied"))

    assert caught.value.status == 401
    assert "not-the-password" not in str(caught.value)


@pytest.mark.registry
def test_anonymous_push_is_refused_by_a_token_registry(token_registry: Any) -> None:
    with Pusher(token_registry.host) as pusher, pytest.raises(AuthError):
        pusher.push("lab-images/anonymous", "t", ib.build_image(ARM64, "anonymous"))


def _diff_ids(root: ib.Blob) -> set[str]:
    return {
        diff_id
        for blob in ib.walk(root)
        if blob.media_type in mt.IMAGE_CONFIGS and blob.json()["architecture"] != "unknown"
        for diff_id in blob.json()["rootfs"]["diff_ids"]
    }


def test_zstd_layers_are_not_shared_with_other_tags() -> None:
    """An engine holding a layer with the same diff_id would skip the zstd download."""
    plans = family_plans("kivy/buildozer") + shape_plans("kivy/buildozer")
    zstd_tags = {FAMILY_ZSTD_TAG, "zstd"}
    zstd = set().union(*(_diff_ids(plan.root) for plan in plans if plan.tag in zstd_tags))
    others = set().union(*(_diff_ids(plan.root) for plan in plans if plan.tag not in zstd_tags))

    assert len(zstd) == 3
    assert not zstd & others


def test_credentials_never_go_to_a_token_service_on_another_host() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.host))
        challenge = 'Bearer realm="http://192.0.2.1/token",service="elsewhere"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    transport = httpx.MockTransport(answer)
    with (
        Pusher("127.0.0.1:1", credentials=("user", "secret"), transport=transport) as pusher,
        pytest.raises(ProtocolError, match="another host"),
    ):
        pusher.has_blob("r", "sha256:" + "0" * 64)
    assert asked == ["127.0.0.1"]


EXTRA_TREES = {
    "manifest-list": ib.multi_platform_image([AMD64, ARM64], "list", oci=False, attestations=False),
    "uncompressed": ib.build_image(AMD64, "uncompressed", compression="none"),
}


@pytest.mark.registry
@pytest.mark.parametrize("tag", sorted(EXTRA_TREES))
def test_other_builders_push_and_read_back(registry: Any, tag: str) -> None:
    root = EXTRA_TREES[tag]
    with Pusher(registry.host) as pusher:
        assert pusher.push("lab-images/extra", tag, root) == root.digest
        response, document = _read_back(pusher, "lab-images/extra", tag)

    assert response.headers["Content-Type"] == root.media_type
    assert response.headers["Docker-Content-Digest"] == root.digest
    assert document == root.json()


@pytest.mark.registry
def test_schema1_conversion_of_a_missing_tag_is_a_clear_lab_error(registry: Any) -> None:
    with pytest.raises(LabError, match="lab-images/missing:nothing") as caught:
        convert_to_schema1(registry.host, "lab-images/missing", "nothing")

    assert "manifest unknown" in str(caught.value)
    assert "level=fatal" not in str(caught.value)


def test_schema1_conversion_without_skopeo_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "SKOPEO", "/nonexistent/skopeo")
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(LabError, match="install the Debian package skopeo"):
        convert_to_schema1("127.0.0.1:1", "a/b", "c")
