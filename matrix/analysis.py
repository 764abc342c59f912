"""What a tag points at, from the manifests the registry served for it.

`analyse()` takes the tag's manifest and a way to fetch further manifests by digest, and says
which kind of thing the tag is:

    image         a Docker schema 2 or OCI image manifest with an image config
    index         a manifest list or OCI index of images (one per platform)
    schema1       a Docker schema 1 manifest, signed or not
    not-an-image  something a registry stores but that no engine can run: an index whose entries
                  are layer blobs and a BuildKit cache config (a build-cache export pushed over an
                  image tag), or a manifest whose config is not an image config (an artifact)
    unknown       a media type that is not a manifest at all

Attestation entries of an index (platform unknown/unknown, annotated as attestation manifests)
are listed apart; they are not platforms. Everything read from a manifest is untrusted: fields are
type-checked, strings shortened and made printable before they reach a cause text.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from matrix import mediatypes
from matrix.errors import MatrixError, ProtocolError
from matrix.platforms import from_descriptor, parse_platform
from matrix.reference import DIGEST_PATTERN
from matrix.registry.manifest import Manifest, effective_media_type
from matrix.registry.wire import load_json

log = logging.getLogger(__name__)

KINDS = ("image", "index", "schema1", "not-an-image", "unknown")
UNKNOWN_PLATFORM = "unknown/unknown"
MAX_CONFIG_BYTES = 1024 * 1024
MAX_ANNOTATIONS = 50

FetchManifest = Callable[[str], Manifest]
FetchBlob = Callable[[str, int], bytes]


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    size: int
    compression: str


@dataclass(frozen=True)
class Child:
    """One entry of an index: `role` is image, index, attestation or blob."""

    digest: str
    media_type: str
    size: int
    platform: str
    role: str
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Analysis:
    kind: str
    media_type: str
    digest: str
    size: int
    platform: str = ""
    platforms: list[str] = field(default_factory=list)
    attestations: list[Child] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    config_media_type: str = ""
    config_digest: str = ""
    config_size: int = 0
    annotations: dict[str, str] = field(default_factory=dict)
    images: dict[str, Analysis] = field(default_factory=dict)
    reason: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def compressions(self) -> list[str]:
        return sorted({layer.compression for layer in self.layers})

    @property
    def image_size(self) -> int:
        """Bytes an engine downloads for this image: config plus layers (0 for an index)."""
        return self.config_size + sum(layer.size for layer in self.layers)

    @property
    def is_oci(self) -> bool:
        return self.media_type in mediatypes.OCI_TYPES

    def for_platform(self, platform: str) -> Analysis | None:
        """The analysis of the image an engine would pull for `platform`, or None if there is none.

        For an index that is the first entry matching the platform; for a single manifest it is
        the manifest itself unless its own platform is known and differs.
        """
        wanted = parse_platform(platform)
        if self.kind == "index":
            for child in self.children:
                if child.role != "image" or not child.platform:
                    continue
                if wanted.matches(parse_platform(child.platform)):
                    return self.images.get(child.digest)
            return None
        if self.kind == "not-an-image" and self.children:
            return None
        if self.platform and self.platform != UNKNOWN_PLATFORM:
            return self if wanted.matches(parse_platform(self.platform)) else None
        return self

    def summary(self) -> dict[str, Any]:
        """The analysis as plain data (what observations keep as JSON)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "media_type": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.kind == "index" or self.children:
            data["platforms"] = self.platforms
            data["attestations"] = [child.digest for child in self.attestations]
            data["children"] = [
                {
                    "digest": c.digest,
                    "media_type": c.media_type,
                    "platform": c.platform,
                    "role": c.role,
                }
                for c in self.children
                if c.role != "attestation"
            ]
        else:
            data.update(self._image_summary())
        if self.reason:
            data["reason"] = self.reason
        if self.problems:
            data["problems"] = self.problems
        return data

    def _image_summary(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "config_media_type": self.config_media_type,
            "layers": len(self.layers),
            "compressions": self.compressions,
            "image_size": self.image_size,
        }

    def to_json(self) -> str:
        return json.dumps(self.summary(), sort_keys=True, separators=(",", ":"))


def analyse(
    manifest: Manifest,
    fetch: FetchManifest | None = None,
    fetch_blob: FetchBlob | None = None,
) -> Analysis:
    """Analyse `manifest`; `fetch` gets the image manifests an index names (by digest).

    `fetch_blob(digest, size)` reads an image config to learn a lone manifest's platform; without
    it the platform of a manifest that is not in an index stays unknown.
    """
    document = manifest.document()
    media_type = effective_media_type(manifest.media_type, document)
    if media_type in mediatypes.SCHEMA1:
        return _schema1(manifest, media_type, document)
    if media_type in mediatypes.INDEXES:
        return _index(manifest, media_type, document, fetch, fetch_blob)
    if media_type in mediatypes.IMAGE_MANIFESTS:
        analysis = _image(manifest, media_type, document)
        if fetch_blob is not None and analysis.kind == "image":
            _read_config_platform(analysis, fetch_blob)
        return analysis
    shown = mediatypes.safe_text(media_type or "(none)", 80)
    return Analysis(
        kind="unknown",
        media_type=media_type,
        digest=manifest.digest,
        size=manifest.size,
        reason=f"the registry served media type {shown}, which is not a manifest",
    )


def _descriptor(raw: object, where: str) -> tuple[str, str, int]:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: a descriptor is not a JSON object")
    digest, media_type, size = raw.get("digest"), raw.get("mediaType", ""), raw.get("size", 0)
    if not isinstance(digest, str) or not DIGEST_PATTERN.match(digest):
        raise ProtocolError(f"{where}: a descriptor has an invalid digest")
    if not isinstance(media_type, str) or not isinstance(size, int) or size < 0:
        raise ProtocolError(f"{where}: descriptor {digest} has an invalid media type or size")
    return digest, mediatypes.base(media_type), size


def _annotations(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    items = [(k, v) for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)]
    return {
        mediatypes.safe_text(k, 100): mediatypes.safe_text(v, 200)
        for k, v in items[:MAX_ANNOTATIONS]
    }


def _image(manifest: Manifest, media_type: str, document: dict[str, Any]) -> Analysis:
    where = f"manifest {manifest.digest}"
    config_digest, config_type, config_size = _descriptor(document.get("config"), where)
    raw_layers = document.get("layers", [])
    if not isinstance(raw_layers, list):
        raise ProtocolError(f"{where}: layers is not a list")
    layers = []
    for raw in raw_layers:
        digest, layer_type, size = _descriptor(raw, where)
        layers.append(Layer(digest, layer_type, size, mediatypes.compression(layer_type)))
    analysis = Analysis(
        kind="image",
        media_type=media_type,
        digest=manifest.digest,
        size=manifest.size,
        layers=layers,
        config_media_type=config_type,
        config_digest=config_digest,
        config_size=config_size,
        annotations=_annotations(document.get("annotations")),
    )
    if config_type not in mediatypes.IMAGE_CONFIGS:
        analysis.kind = "not-an-image"
        analysis.reason = _artifact_reason(config_type, document.get("artifactType"))
    return analysis


def _artifact_reason(config_type: str, artifact_type: object) -> str:
    if config_type == mediatypes.BUILDKIT_CACHE_CONFIG:
        return (
            "its manifest's config is a BuildKit cache config — a build-cache export written "
            "over the tag"
        )
    text = f"its manifest's config is {mediatypes.describe(config_type)}, not an image config"
    if isinstance(artifact_type, str) and artifact_type:
        text += f" (an artifact of type {mediatypes.safe_text(artifact_type, 80)})"
    return text


def _read_config_platform(analysis: Analysis, fetch_blob: FetchBlob) -> None:
    if analysis.config_size > MAX_CONFIG_BYTES:
        analysis.problems.append("image config too large to read its platform")
        return
    try:
        config = load_json(fetch_blob(analysis.config_digest, analysis.config_size), "config")
    except MatrixError as exc:
        analysis.problems.append(f"image config unreadable: {mediatypes.safe_text(str(exc))}")
        return
    if isinstance(config, dict):
        platform = from_descriptor(config)
        if platform and platform.os and platform.architecture:
            analysis.platform = mediatypes.safe_text(str(platform), 60)


def _schema1(manifest: Manifest, media_type: str, document: dict[str, Any]) -> Analysis:
    layers = []
    fs_layers = document.get("fsLayers", [])
    for raw in fs_layers if isinstance(fs_layers, list) else []:
        digest = raw.get("blobSum") if isinstance(raw, dict) else None
        if not isinstance(digest, str) or not DIGEST_PATTERN.match(digest):
            raise ProtocolError(f"manifest {manifest.digest}: an fsLayers entry has no blobSum")
        # Schema 1 knows no sizes and only gzip layers.
        layers.append(Layer(digest, mediatypes.DOCKER_LAYER_GZIP, 0, "gzip"))
    architecture = document.get("architecture")
    platform = ""
    if isinstance(architecture, str) and architecture:
        platform = "linux/" + mediatypes.safe_text(architecture.lower(), 40)
    return Analysis(
        kind="schema1",
        media_type=media_type,
        digest=manifest.digest,
        size=manifest.size,
        platform=platform,
        layers=layers,
    )


def _child(raw: object, where: str) -> Child:
    digest, media_type, size = _descriptor(raw, where)
    assert isinstance(raw, dict)
    annotations = _annotations(raw.get("annotations"))
    platform_raw = raw.get("platform")
    platform = ""
    if isinstance(platform_raw, dict):
        parsed = from_descriptor(platform_raw)
        if parsed and parsed.os and parsed.architecture:
            platform = mediatypes.safe_text(str(parsed).lower(), 60)
    if annotations.get(mediatypes.REFERENCE_TYPE) == mediatypes.ATTESTATION_MANIFEST:
        role = "attestation"
    elif media_type in mediatypes.IMAGE_MANIFESTS or media_type in mediatypes.SCHEMA1:
        role = "image"
    elif media_type in mediatypes.INDEXES:
        role = "index"
    else:
        role = "blob"
    return Child(digest, media_type, size, platform, role, annotations)


def _index(
    manifest: Manifest,
    media_type: str,
    document: dict[str, Any],
    fetch: FetchManifest | None,
    fetch_blob: FetchBlob | None,
) -> Analysis:
    where = f"index {manifest.digest}"
    raw_children = document.get("manifests", [])
    if not isinstance(raw_children, list):
        raise ProtocolError(f"{where}: manifests is not a list")
    entries = [_child(raw, where) for raw in raw_children]
    analysis = Analysis(
        kind="index",
        media_type=media_type,
        digest=manifest.digest,
        size=manifest.size,
        children=entries,
        attestations=[c for c in entries if c.role == "attestation"],
        annotations=_annotations(document.get("annotations")),
    )
    runnable = [c for c in entries if c.role in ("image", "index")]
    analysis.platforms = sorted(
        {c.platform for c in runnable if c.platform and c.platform != UNKNOWN_PLATFORM}
    )
    if not entries:
        analysis.reason = "the index lists no manifests at all"
    elif not runnable:
        analysis.kind = "not-an-image"
        analysis.reason = _index_reason(entries)
    for child in runnable:
        # Nested indexes are listed with their platform but not followed.
        if child.role == "image" and child.digest not in analysis.images:
            analysis.images[child.digest] = _child_image(child, fetch, fetch_blob)
    return analysis


def _child_image(
    child: Child, fetch: FetchManifest | None, fetch_blob: FetchBlob | None
) -> Analysis:
    if fetch is None:
        return Analysis(
            "image", child.media_type, child.digest, child.size, platform=child.platform
        )
    image = analyse(fetch(child.digest), None, None)
    if child.platform:
        image.platform = child.platform
    return image


def _index_reason(entries: list[Child]) -> str:
    counts = Counter(mediatypes.describe(c.media_type) for c in entries if c.role != "attestation")
    if not counts:
        return "its index holds only attestations, no image"
    parts = [_count(text, n) for text, n in sorted(counts.items())]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = f"its index holds {listed}"
    if any(c.media_type == mediatypes.BUILDKIT_CACHE_CONFIG for c in entries):
        return text + " — a build-cache export written over the tag"
    return text + " instead of image manifests"


def _count(description: str, number: int) -> str:
    if number == 1:
        return description
    words = description.split(" ", 1)
    rest = words[1] if len(words) == 2 and words[0] in ("a", "an") else description
    return f"{number} × {rest}" if " " in rest else f"{number} {rest}s"
