"""Media types of the distribution and OCI image specs, and what each one is.

The sets below say which role a media type plays: a manifest of one image, an index of manifests,
an image config, a layer, or something that is not part of an image at all (a BuildKit cache
config, an artifact config). Everything a registry says about media types is untrusted input:
these sets are the only place that decides what a string means.
"""

from __future__ import annotations

DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"

DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFESTS = SCHEMA1 | IMAGE_MANIFESTS | INDEXES
IMAGE_CONFIGS = frozenset({DOCKER_CONFIG, OCI_CONFIG})
OCI_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX})

# Layer media type -> compression of the tar inside.
LAYER_COMPRESSION: dict[str, str] = {
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_FOREIGN: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    OCI_LAYER: "uncompressed",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND: "uncompressed",
    OCI_LAYER_ND_GZIP: "gzip",
    OCI_LAYER_ND_ZSTD: "zstd",
}
LAYERS = frozenset(LAYER_COMPRESSION)

# Every manifest format a pull can meet, most preferred first. Schema 1 stays in the list so that
# a registry serves such a tag as it is instead of refusing it: the matrix must see it.
ACCEPT = ", ".join(
    (
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        DOCKER_SCHEMA1_SIGNED,
        DOCKER_SCHEMA1,
    )
)

# Annotation keys BuildKit uses to mark attestation entries of an index.
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"


def base(media_type: str) -> str:
    """The media type without parameters (`; charset=utf-8`) or surrounding blanks, lower-cased."""
    return media_type.split(";", 1)[0].strip().lower()


def compression(media_type: str) -> str:
    """`gzip`, `zstd`, `uncompressed`, or `unknown` for a media type that is not a layer."""
    media_type = base(media_type)
    if media_type in LAYER_COMPRESSION:
        return LAYER_COMPRESSION[media_type]
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith("+gzip") or media_type.endswith(".gzip"):
        return "gzip"
    return "unknown"


def is_layer(media_type: str) -> bool:
    media_type = base(media_type)
    return media_type in LAYERS or ".layer." in media_type or ".rootfs." in media_type


def describe(media_type: str) -> str:
    """A few words naming a media type for people, e.g. in an explained cause."""
    media_type = base(media_type)
    names = {
        BUILDKIT_CACHE_CONFIG: "a BuildKit cache config",
        DOCKER_CONFIG: "an image config",
        OCI_CONFIG: "an image config",
        OCI_EMPTY: "an empty config",
    }
    if media_type in names:
        return names[media_type]
    if media_type in MANIFESTS:
        return "a manifest"
    if is_layer(media_type):
        return "a layer blob"
    return f"a blob of type {safe_text(media_type, 80)}"


def safe_text(text: str, limit: int = 120) -> str:
    """Registry-supplied text reduced to printable characters and a bounded length."""
    cleaned = "".join(c if c.isprintable() else "?" for c in str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
