"""The manifest store: the document decides a manifest's media type, and a corrupt entry (wrong
type, undecodable, not a regular file) is removed and fetched again."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from matrix import mediatypes as mt
from matrix.reference import parse_repository
from matrix.registry.manifest import Manifest, effective_media_type
from matrix.registry.store import ManifestStore
from tests.registry import builders as b
from tests.registry.fake import make_client, manifest_response

REPO = parse_repository("127.0.0.1:5999/good/app")


def _index() -> Manifest:
    return b.index([b.entry(b.image_manifest(), "linux/amd64")])


def _served_as(manifest: Manifest, media_type: str) -> Manifest:
    return Manifest(manifest.digest, media_type, manifest.data)


def _paths(root: Path, manifest: Manifest) -> tuple[Path, Path]:
    hex_digest = manifest.digest.split(":", 1)[1]
    return root / "sha256" / hex_digest, root / "sha256" / f"{hex_digest}.type"


@pytest.mark.parametrize(
    ("document", "served", "expected"),
    [
        ({"mediaType": mt.OCI_INDEX, "manifests": []}, mt.OCI_MANIFEST, mt.OCI_INDEX),
        ({"schemaVersion": 2, "manifests": []}, mt.OCI_MANIFEST, mt.OCI_INDEX),
        ({"schemaVersion": 2, "manifests": []}, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
        ({"schemaVersion": 2, "config": {}, "layers": []}, mt.OCI_INDEX, mt.OCI_MANIFEST),
        ({"schemaVersion": 2, "layers": []}, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        ({"schemaVersion": 1, "fsLayers": []}, mt.OCI_INDEX, mt.DOCKER_SCHEMA1),
        ({"schemaVersion": 2}, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
    ],
)
def test_the_document_decides_the_media_type(
    document: dict[str, object], served: str, expected: str
) -> None:
    assert effective_media_type(served, document) == expected


def test_index_served_as_image_manifest_is_stored_as_an_index(tmp_path: Path) -> None:
    index = _index()
    store = ManifestStore(tmp_path)
    lying, _ = make_client(
        lambda r: manifest_response(r, _served_as(index, mt.OCI_MANIFEST)), store=store
    )
    assert lying.fetch_tag(REPO, "x").media_type == mt.OCI_INDEX

    honest, recorder = make_client(lambda r: manifest_response(r, index), store=store)
    assert honest.fetch_tag(REPO, "x") == index
    assert recorder.count("GET", "/manifests/") == 0


def test_entry_under_a_type_its_json_denies_is_fetched_again(tmp_path: Path) -> None:
    index = _index()
    store = ManifestStore(tmp_path)
    store.put(index)
    _, type_path = _paths(tmp_path, index)
    type_path.write_text(mt.OCI_MANIFEST)

    assert store.get(index.digest) is None
    client, recorder = make_client(lambda r: manifest_response(r, index), store=store)
    assert client.fetch_tag(REPO, "x") == index
    assert recorder.count("GET", "/manifests/") == 1
    assert store.get(index.digest) == index


def test_type_file_that_is_not_utf8_counts_as_absent(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    store.put(image)
    data_path, type_path = _paths(tmp_path, image)
    type_path.write_bytes(b"\xff\xfe\x80")

    assert store.get(image.digest) is None
    assert not data_path.exists() and not type_path.exists()


def test_data_file_linked_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    store.put(image)
    data_path, _ = _paths(tmp_path, image)
    data_path.unlink()
    data_path.symlink_to("/dev/zero")

    assert store.get(image.digest) is None
    assert not data_path.is_symlink()


def test_data_file_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    store.put(image)
    data_path, _ = _paths(tmp_path, image)
    data_path.unlink()
    os.mkfifo(data_path)

    assert store.get(image.digest) is None
    assert not data_path.exists()


def test_oversized_data_file_counts_as_absent(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    store.put(image)
    data_path, _ = _paths(tmp_path, image)
    with data_path.open("ab") as stream:
        stream.truncate(5 * 1024 * 1024)

    assert store.get(image.digest) is None


def test_a_corrupt_entry_is_refetched_by_the_client(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    store.put(image)
    _, type_path = _paths(tmp_path, image)
    type_path.write_bytes(b"\xff")

    def handler(request: httpx.Request) -> httpx.Response:
        return manifest_response(request, image)

    client, recorder = make_client(handler, store=store)
    assert client.fetch_tag(REPO, "x") == image
    assert recorder.count("GET", "/manifests/") == 1
