"""The client against a real distribution registry: pagination, manifests, blobs, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix import mediatypes as mt
from matrix.errors import NotFoundError
from matrix.lab.imagebuild import build_image
from matrix.lab.images import AMD64
from matrix.lab.push import Pusher
from matrix.reference import parse_repository
from matrix.registry import CredentialStore, ManifestStore, RegistryClient
from tests.conftest import TokenRegistry

pytestmark = pytest.mark.registry

TAGS = 23


@pytest.fixture(scope="module")
def tagged(registry) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    name = "client/paged"
    image = build_image(AMD64, "paged", oci=False)
    with Pusher(registry.host) as pusher:
        digest = pusher.push(name, "t00", image)
        for number in range(1, TAGS):
            pusher.push_manifest(name, f"t{number:02d}", image)
    return f"{registry.host}/{name}", digest


def client_for(host: str, store: Path | None = None, page_size: int = 100) -> RegistryClient:
    return RegistryClient(
        insecure=[host],
        credentials=CredentialStore(environ={"HOME": "/nonexistent"}),
        store=ManifestStore(store) if store else None,
        page_size=page_size,
    )


@pytest.mark.parametrize("page_size", [1, 5, 1000])
def test_real_registry_lists_every_tag(tagged: tuple[str, str], page_size: int) -> None:
    # Distribution 2.8 answers the whole tag list whatever `n` asks for, so paging is only
    # exercised here as far as the registry goes; `test_client.py` scripts a paging registry.
    reference, _ = tagged
    repository = parse_repository(reference)

    with client_for(repository.registry, page_size=page_size) as client:
        listing = client.list_tags(repository)

    assert sorted(listing.tags) == [f"t{n:02d}" for n in range(TAGS)]  # the registry does not sort
    assert len(set(listing.tags)) == TAGS
    assert not listing.incomplete


def test_real_manifest_head_get_and_store(tagged: tuple[str, str], tmp_path: Path) -> None:
    reference, digest = tagged
    repository = parse_repository(reference)

    with client_for(repository.registry, tmp_path) as client:
        head = client.head_manifest(repository, "t05")
        manifest = client.fetch_tag(repository, "t05")
        again = client.fetch_tag(repository, "t17")

    assert head.digest == digest == manifest.digest == again.digest
    assert head.media_type == mt.DOCKER_MANIFEST
    assert client.manifest_gets[repository.registry] == 1
    assert ManifestStore(tmp_path).get(digest) == manifest


def test_real_blobs_head_and_verify(tagged: tuple[str, str]) -> None:
    reference, _ = tagged
    repository = parse_repository(reference)
    with client_for(repository.registry) as client:
        document = client.fetch_tag(repository, "t00").document()
        layer = document["layers"][0]

        assert client.blob_size(repository, layer["digest"]) == layer["size"]
        assert client.verify_blob(repository, layer["digest"], layer["size"]) == layer["size"]
        with pytest.raises(NotFoundError) as caught:
            client.blob_size(repository, "sha256:" + "0" * 64)
    assert caught.value.codes == ("BLOB_UNKNOWN",)


def test_real_token_registry_lists_tags_anonymously(token_registry: TokenRegistry) -> None:
    user, password = next(iter(token_registry.users.items()))
    with Pusher(token_registry.host, credentials=(user, password)) as pusher:
        pusher.push("client/tokens", "1.0", build_image(AMD64, "tokens"))
    repository = parse_repository(f"{token_registry.host}/client/tokens")

    with client_for(repository.registry) as client:
        assert client.list_tags(repository).tags == ["1.0"]
        assert client.fetch_tag(repository, "1.0").media_type == mt.OCI_MANIFEST
