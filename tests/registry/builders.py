"""Manifests of every image shape the project knows, built as JSON for unit tests."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from matrix import mediatypes as mt
from matrix.registry.manifest import Manifest, content_digest


def digest_of(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def descriptor(media_type: str, seed: str, size: int = 100, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(seed), "size": size, **extra}


def manifest(document: dict[str, Any], media_type: str | None = None) -> Manifest:
    data = json.dumps(document, indent=2).encode()
    media_type = media_type or document.get("mediaType", "")
    return Manifest(content_digest(data, media_type), media_type, data)


def image_manifest(
    media_type: str = mt.DOCKER_MANIFEST,
    config_type: str | None = None,
    layer_type: str | None = None,
    seed: str = "x",
    layers: int = 1,
) -> Manifest:
    oci = media_type == mt.OCI_MANIFEST
    config_type = config_type or (mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG)
    layer_type = layer_type or (mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP)
    return manifest(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": descriptor(config_type, f"config-{seed}", 300),
            "layers": [descriptor(layer_type, f"layer-{seed}-{i}", 1000) for i in range(layers)],
        }
    )


def index(entries: list[dict[str, Any]], media_type: str = mt.OCI_INDEX) -> Manifest:
    return manifest({"schemaVersion": 2, "mediaType": media_type, "manifests": entries})


def entry(child: Manifest, platform: str | None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "mediaType": child.media_type,
        "digest": child.digest,
        "size": child.size,
        **extra,
    }
    if platform:
        parts = platform.split("/")
        data["platform"] = {"os": parts[0], "architecture": parts[1]}
        if len(parts) == 3:
            data["platform"]["variant"] = parts[2]
    return data


def attestation_for(image: Manifest) -> tuple[Manifest, dict[str, Any]]:
    child = image_manifest(mt.OCI_MANIFEST, layer_type="application/vnd.in-toto+json", seed="att")
    annotations = {
        mt.REFERENCE_TYPE: mt.ATTESTATION_MANIFEST,
        mt.REFERENCE_DIGEST: image.digest,
    }
    return child, entry(child, "unknown/unknown", annotations=annotations)


def build_cache_index() -> Manifest:
    """What a BuildKit `cache-to: type=registry` export pushed to an image tag looks like."""
    return index(
        [
            descriptor(mt.OCI_LAYER_GZIP, "cache-layer", 5000),
            descriptor(mt.BUILDKIT_CACHE_CONFIG, "cache-config", 700),
        ]
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def schema1_signed(architecture: str = "amd64") -> Manifest:
    """A schema 1 manifest in JWS form, with the protected header a real signer writes."""
    payload = json.dumps(
        {
            "schemaVersion": 1,
            "name": "demo/app",
            "tag": "old",
            "architecture": architecture,
            "fsLayers": [{"blobSum": digest_of("s1-layer")}],
            "history": [{"v1Compatibility": "{}"}],
        },
        indent=3,
    ).encode()
    # The signature is spliced in before the final "\n}"; formatTail restores that ending.
    cut = payload.rindex(b"\n}")
    head, tail = payload[:cut], payload[cut:]
    protected = _b64url(json.dumps({"formatLength": cut, "formatTail": _b64url(tail)}).encode())
    signature = {"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected}
    data = head + b',\n   "signatures": [' + json.dumps(signature).encode() + b"]" + tail
    return Manifest("sha256:" + hashlib.sha256(payload).hexdigest(), mt.DOCKER_SCHEMA1_SIGNED, data)


def store(*manifests: Manifest) -> dict[str, Manifest]:
    return {m.digest: m for m in manifests}
