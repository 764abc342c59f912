"""Tiny, real container images built in memory: layers, configs, manifests and indexes.

Everything here is a pure function of its arguments. Timestamps are fixed and compression is
deterministic, so the same call gives the same bytes, and therefore the same digests, on every
run and for every registry the result is pushed to.

An image is a tree of `Blob`s: an index points at manifests, a manifest at a config and
layers. `Blob.descriptor()` is how a parent refers to a child; `walk()` lists a tree's blobs
children first, the order in which a registry accepts them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

from matrix.mediatypes import (
    ATTESTATION_MANIFEST,
    BUILDKIT_CACHE_CONFIG,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFESTS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    REFERENCE_DIGEST,
    REFERENCE_TYPE,
)
from matrix.platforms import Platform

# The layer of an attestation manifest, and the annotation naming what it attests.
IN_TOTO = "application/vnd.in-toto+json"
PREDICATE_TYPE = "in-toto.io/predicate-type"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v0.2"

# 2024-01-01T00:00:00Z: the one moment every file, config and history entry claims.
FIXED_EPOCH = 1704067200
FIXED_CREATED = "2024-01-01T00:00:00Z"

COMPRESSIONS = ("gzip", "zstd", "none")

UNKNOWN_PLATFORM = Platform("unknown", "unknown")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """JSON with sorted keys and no spaces: stable bytes for a stable digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with the media type a descriptor announces them with.

    `children` are the blobs this one refers to (a manifest's config and layers, an index's
    manifests); they must reach a registry before this one does.
    """

    media_type: str
    data: bytes
    children: tuple[Blob, ...] = ()
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def is_manifest(self) -> bool:
        """True if a registry stores this under /manifests/ rather than /blobs/."""
        return self.media_type in MANIFESTS

    def descriptor(self) -> dict[str, Any]:
        """The descriptor a parent uses to point at this blob."""
        described: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            described["platform"] = platform_json(self.platform)
        if self.annotations:
            described["annotations"] = dict(self.annotations)
        return described

    def json(self) -> dict[str, Any]:
        """The blob parsed as JSON (for manifests and configs)."""
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


def walk(root: Blob) -> Iterator[Blob]:
    """Every blob of the tree under `root`, children before parents, each digest once."""
    seen: set[str] = set()

    def visit(blob: Blob) -> Iterator[Blob]:
        for child in blob.children:
            yield from visit(child)
        if blob.digest not in seen:
            seen.add(blob.digest)
            yield blob

    yield from visit(root)


def platform_json(platform: Platform) -> dict[str, str]:
    described = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        described["variant"] = platform.variant
    return described


# Layers ---------------------------------------------------------------------------------------


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar holding `files` (path -> content), owned by root, fixed mtime.

    Parent directories get their own entries, as image layers built by real tools have.
    """
    buffer = io.BytesIO()
    directories = sorted({parent for path in files for parent in _parents(path)})
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in directories:
            archive.addfile(_tar_member(directory + "/", tarfile.DIRTYPE, 0o755, 0))
        for path in sorted(files):
            content = files[path]
            member = _tar_member(path.lstrip("/"), tarfile.REGTYPE, 0o644, len(content))
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def _tar_member(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = mode
    member.size = size
    member.mtime = FIXED_EPOCH
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    return member


def compress(data: bytes, compression: str) -> bytes:
    """`data` compressed with `gzip`, `zstd`, or left as is (`none`), deterministically."""
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}; expected one of {COMPRESSIONS}")


@dataclass(frozen=True)
class Layer:
    """A layer blob and its diff_id (the digest of the uncompressed tar)."""

    blob: Blob
    diff_id: str


def build_layer(
    files: Mapping[str, bytes], compression: str = "gzip", *, oci: bool = True
) -> Layer:
    """A layer of `files`, compressed as asked, with the media type OCI or Docker uses for it."""
    tar = layer_tar(files)
    media_type = _layer_media_type(compression, oci)
    return Layer(Blob(media_type, compress(tar, compression)), sha256_digest(tar))


def _layer_media_type(compression: str, oci: bool) -> str:
    if oci:
        return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]
    if compression == "gzip":
        return DOCKER_LAYER_GZIP
    raise ValueError(f"Docker schema 2 layers here are gzip only, not {compression!r}")


def sample_files(label: str, platform: Platform) -> dict[str, bytes]:
    """A couple of small files that make each image's layer distinct and recognisable."""
    os_release = (
        'NAME="pull-matrix lab"\n'
        "ID=pull-matrix-lab\n"
        f'VERSION_ID="{label}"\n'
        f'PRETTY_NAME="pull-matrix lab image {label} ({platform})"\n'
    )
    return {
        "/hello.txt": f"hello from {label} for {platform}\n".encode(),
        "/etc/os-release": os_release.encode(),
    }


# Configs and manifests ------------------------------------------------------------------------


def image_config(
    platform: Platform, diff_ids: Sequence[str], *, media_type: str = OCI_CONFIG, label: str = ""
) -> Blob:
    """An image config for `platform` with its layers' diff_ids and one history entry per layer.

    The history entries matter beyond looks: converting to schema 1 needs one per layer.
    """
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": FIXED_CREATED,
        "config": {
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"org.opencontainers.image.version": label} if label else {},
        },
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [
            {"created": FIXED_CREATED, "created_by": f"COPY files for {label or 'image'} /"}
            for _ in diff_ids
        ],
    }
    if platform.variant:
        config["variant"] = platform.variant
    return Blob(media_type, canonical_json(config))


def image_manifest(
    config: Blob,
    layers: Sequence[Blob],
    *,
    oci: bool = True,
    platform: Platform | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Blob:
    """An OCI image manifest, or a Docker v2 schema 2 one (`oci=False`).

    `platform` and `annotations` do not go into the manifest itself: they are what an index
    says about it when it lists this manifest.
    """
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Blob(
        media_type,
        canonical_json(document),
        children=(config, *layers),
        platform=platform,
        annotations=dict(annotations or {}),
    )


def image_index(entries: Sequence[Blob], *, oci: bool = True) -> Blob:
    """An OCI image index, or a Docker manifest list (`oci=False`), listing `entries`.

    Entries carry their own platform and annotations (see `Blob.descriptor`). A Docker
    manifest list has no annotations, so they are dropped there.
    """
    descriptors = [entry.descriptor() for entry in entries]
    if not oci:
        for described in descriptors:
            described.pop("annotations", None)
    media_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": descriptors}
    return Blob(media_type, canonical_json(document), children=tuple(entries))


def build_image(
    platform: Platform,
    label: str,
    *,
    compression: str = "gzip",
    oci: bool = True,
    files: Mapping[str, bytes] | None = None,
) -> Blob:
    """A one-layer image manifest for `platform`, its config saying the same platform."""
    layer = build_layer(files or sample_files(label, platform), compression, oci=oci)
    config_type = OCI_CONFIG if oci else DOCKER_CONFIG
    config = image_config(platform, [layer.diff_id], media_type=config_type, label=label)
    return image_manifest(config, [layer.blob], oci=oci, platform=platform)


# What buildx and BuildKit push ----------------------------------------------------------------


def provenance_statement(image: Blob, subject_name: str) -> bytes:
    """A minimal SLSA provenance statement about `image`, as BuildKit attaches by default."""
    algorithm, hexadecimal = image.digest.split(":", 1)
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SLSA_PROVENANCE,
        "subject": [{"name": subject_name, "digest": {algorithm: hexadecimal}}],
        "predicate": {
            "builder": {"id": ""},
            "buildType": "https://mobyproject.org/buildkit@v1",
            "metadata": {"buildStartedOn": FIXED_CREATED, "buildFinishedOn": FIXED_CREATED},
        },
    }
    return canonical_json(statement)


def attestation_manifest(image: Blob, subject_name: str) -> Blob:
    """The attestation manifest buildx pushes beside `image` in an index.

    It is an OCI image manifest for platform unknown/unknown whose one layer is an in-toto
    statement; the index entry names the image it describes by digest.
    """
    statement = Blob(
        IN_TOTO,
        provenance_statement(image, subject_name),
        annotations={PREDICATE_TYPE: SLSA_PROVENANCE},
    )
    config = image_config(UNKNOWN_PLATFORM, [statement.digest])
    return image_manifest(
        config,
        [statement],
        platform=UNKNOWN_PLATFORM,
        annotations={REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: image.digest},
    )


def multi_platform_image(
    platforms: Sequence[Platform],
    label: str,
    *,
    subject: str = "",
    attestations: bool = True,
    oci: bool = True,
    compression: str = "gzip",
) -> Blob:
    """An index of one image per platform, followed by their attestation manifests.

    `subject` names the image in provenance statements (buildx writes a package URL such as
    `pkg:docker/kivy/buildozer@1.6.0?platform=linux%2Famd64`). Attestations need an OCI index.
    """
    images = [build_image(p, label, compression=compression, oci=oci) for p in platforms]
    entries = list(images)
    if attestations:
        if not oci:
            raise ValueError("attestation manifests need an OCI index, not a Docker manifest list")
        for platform, image in zip(platforms, images, strict=True):
            name = f"{subject or 'pkg:docker/lab/image'}@{label}?platform={_purl(platform)}"
            entries.append(attestation_manifest(image, name))
    return image_index(entries, oci=oci)


def _purl(platform: Platform) -> str:
    return str(platform).replace("/", "%2F")


def build_cache_export(label: str) -> Blob:
    """What BuildKit's `cache-to: type=registry` writes: an index of blobs that are not images.

    Its entries are a gzip layer and the cache config that describes it; there is no image
    manifest and no platform anywhere, which is what breaks a pull of a tag holding it.
    """
    layer = build_layer(sample_files(f"{label} cache", UNKNOWN_PLATFORM), "gzip")
    layer_entry = Blob(
        layer.blob.media_type,
        layer.blob.data,
        annotations={
            "buildkit/createdat": FIXED_CREATED,
            "containerd.io/uncompressed": layer.diff_id,
        },
    )
    cache_config = {
        "layers": [{"blob": layer_entry.digest, "parent": -1}],
        "records": [
            {"digest": sha256_digest(f"cache key {label}".encode()), "layers": [{"layer": 0}]}
        ],
    }
    config_entry = Blob(BUILDKIT_CACHE_CONFIG, canonical_json(cache_config))
    return image_index([layer_entry, config_entry])
