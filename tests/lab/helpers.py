"""Small distribution-protocol clients for the lab's own tests (not the product's client)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator

import httpx

CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
V2S2 = "application/vnd.docker.distribution.manifest.v2+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bearer_challenge(response: httpx.Response) -> dict[str, str]:
    scheme, _, params = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer", response.headers["WWW-Authenticate"]
    return dict(CHALLENGE.findall(params))


def login(
    client: httpx.Client,
    base: str,
    repository: str,
    actions: str = "pull",
    auth: tuple[str, str] | None = None,
) -> str:
    """Run the token flow from the registry's own challenge; set and return the bearer token."""
    challenge = bearer_challenge(client.get(f"{base}/v2/"))
    answer = client.get(
        challenge["realm"],
        params={"service": challenge["service"], "scope": f"repository:{repository}:{actions}"},
        auth=auth,
    )
    answer.raise_for_status()
    token = str(answer.json()["token"])
    client.headers["Authorization"] = f"Bearer {token}"
    return token


def push_blob(client: httpx.Client, base: str, repository: str, blob: bytes) -> str:
    """Monolithic upload: POST, then PUT with the digest."""
    digest = sha256(blob)
    start = client.post(f"{base}/v2/{repository}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = httpx.URL(base).join(start.headers["Location"])
    done = client.put(location.copy_merge_params({"digest": digest}), content=blob)
    assert done.status_code == 201, done.text
    return digest


def push_blob_chunked(
    client: httpx.Client, base: str, repository: str, blob: bytes, piece: int = 1 << 20
) -> str:
    """Streamed upload: POST, one PATCH with a chunked body of unknown length, then PUT."""

    def pieces() -> Iterator[bytes]:
        for offset in range(0, len(blob), piece):
            yield blob[offset : offset + piece]

    digest = sha256(blob)
    start = client.post(f"{base}/v2/{repository}/blobs/uploads/")
    assert start.status_code == 202, start.text
    patch = client.patch(httpx.URL(base).join(start.headers["Location"]), content=pieces())
    assert patch.status_code == 202, patch.text
    location = httpx.URL(base).join(patch.headers["Location"])
    done = client.put(location.copy_merge_params({"digest": digest}))
    assert done.status_code == 201, done.text
    return digest


def push_small_image(
    client: httpx.Client,
    base: str,
    repository: str,
    tag: str,
    layer: bytes | None = None,
    config: bytes | None = None,
) -> str:
    """Push a one-layer image with a v2 schema 2 manifest; return the manifest's digest."""
    layer = layer if layer is not None else b"layer content of " + repository.encode()
    config = (
        config
        or json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
    )
    push_blob(client, base, repository, layer)
    push_blob(client, base, repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": V2S2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": sha256(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": sha256(layer),
                }
            ],
        }
    ).encode()
    put = client.put(
        f"{base}/v2/{repository}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": V2S2},
    )
    assert put.status_code == 201, put.text
    return str(put.headers["Docker-Content-Digest"])


def unique_layer() -> tuple[bytes, str]:
    """A gzip layer holding one file of random bytes, and its uncompressed digest (diff ID)."""
    payload = os.urandom(256)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("random.bin")
        member.size = len(payload)
        member.mode = 0o644
        tar.addfile(member, io.BytesIO(payload))
    uncompressed = archive.getvalue()
    return gzip.compress(uncompressed, mtime=0), sha256(uncompressed)


def push_unique_image(client: httpx.Client, base: str, repository: str, tag: str) -> str:
    """Push an image no engine has seen before (random content); return its digest."""
    layer, diff_id = unique_layer()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "lab test"}],
        }
    ).encode()
    return push_small_image(client, base, repository, tag, layer=layer, config=config)
