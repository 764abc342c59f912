"""A manifest as received: its bytes, the media type it was served with, and its digest.

The digest of a manifest is the sha256 of its bytes, with one exception: a signed schema 1
manifest (JWS) is addressed by the digest of its payload, the bytes without the signatures. The
payload is rebuilt from the signature's protected header, which the registry writes, so it is
only accepted when it is a schema 1 manifest with exactly the content of the document served:
otherwise a registry could serve any document under the digest of any other manifest.

Manifests are kept and compared by sha256; a digest a registry names with sha512 (valid in OCI)
is checked with sha512.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from matrix import mediatypes
from matrix.errors import DigestMismatchError, ProtocolError
from matrix.registry.wire import load_json

SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
# The digest algorithms content can be checked with, by the name a digest starts with.
ALGORITHMS = ("sha256", "sha512")

# Larger than any real manifest; containerd refuses manifests above 4 MiB as well.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hasher_for(digest: str, url: str = "") -> Any:
    """A fresh hash object for the algorithm `digest` names; ProtocolError for any other."""
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ALGORITHMS:
        shown = mediatypes.safe_text(algorithm, 40)
        raise ProtocolError(f"digest algorithm {shown} cannot be checked", url=url)
    return hashlib.new(algorithm)


def matches(data: bytes, digest: str, url: str = "") -> bool:
    """Whether `data` hashes to `digest`, with the algorithm the digest names."""
    hasher = hasher_for(digest, url)
    hasher.update(data)
    return f"{hasher.name}:{hasher.hexdigest()}" == digest


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def schema1_payload(data: bytes) -> bytes:
    """The signed payload of a schema 1 JWS manifest (the bytes its digest is computed over).

    DigestMismatchError when the payload is not a schema 1 manifest with the same content as
    the document served (apart from its signatures).
    """
    document = load_json(data, "signed schema 1 manifest")
    try:
        protected = load_json(_b64url(document["signatures"][0]["protected"]), "JWS header")
        length = int(protected["formatLength"])
        tail = _b64url(protected["formatTail"])
    except (ValueError, KeyError, IndexError, TypeError, ProtocolError) as exc:
        raise ProtocolError(f"signed schema 1 manifest has no readable signature: {exc}") from exc
    if not 0 < length <= len(data):
        raise ProtocolError("signed schema 1 manifest has an impossible formatLength")
    payload = data[:length] + tail
    _check_payload(document, payload)
    return payload


def _check_payload(document: dict[str, Any], payload: bytes) -> None:
    try:
        signed = load_json(payload, "signed schema 1 payload")
    except ProtocolError as exc:
        raise DigestMismatchError("signed schema 1 manifest: its payload is not JSON") from exc
    unsigned = {key: value for key, value in document.items() if key != "signatures"}
    if not isinstance(signed, dict) or signed.get("schemaVersion") != 1:
        raise DigestMismatchError("signed schema 1 manifest: its payload is no schema 1 manifest")
    if signed != unsigned:
        raise DigestMismatchError(
            "signed schema 1 manifest: its payload differs from the document served"
        )


def content_digest(data: bytes, media_type: str = "") -> str:
    """The digest a registry addresses these manifest bytes by."""
    if _is_signed_schema1(data, media_type):
        return sha256_digest(schema1_payload(data))
    return sha256_digest(data)


def _is_signed_schema1(data: bytes, media_type: str) -> bool:
    if mediatypes.base(media_type) == mediatypes.DOCKER_SCHEMA1_SIGNED:
        return True
    if b'"signatures"' not in data:
        return False
    # Some registries serve signed schema 1 as plain JSON; the signatures give it away.
    try:
        document = load_json(data, "manifest")
    except ProtocolError:
        return False
    return isinstance(document, dict) and document.get("schemaVersion") == 1


def verify(data: bytes, media_type: str, *expected: str, url: str = "") -> str:
    """The sha256 digest of `data`; DigestMismatchError when any non-empty `expected` differs.

    An expected digest of another algorithm (sha512) is checked with that algorithm.
    """
    digest = content_digest(data, media_type)
    for wanted in expected:
        if not wanted or wanted == digest or wanted.startswith("sha256:"):
            mismatch = bool(wanted) and wanted != digest
        else:
            signed = schema1_payload(data) if _is_signed_schema1(data, media_type) else data
            mismatch = not matches(signed, wanted, url)
        if mismatch:
            raise DigestMismatchError(
                f"manifest content has digest {digest}, expected {mediatypes.safe_text(wanted)}",
                url=url,
            )
    return digest


@dataclass(frozen=True)
class Manifest:
    """Manifest bytes with their digest and media type (as served, or as read from the JSON)."""

    digest: str
    media_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def document(self) -> dict[str, Any]:
        """The parsed JSON object; ProtocolError when it is not one."""
        document = load_json(self.data, f"manifest {self.digest}")
        if not isinstance(document, dict):
            raise ProtocolError(f"manifest {self.digest} is not a JSON object")
        return document


def effective_media_type(served: str, document: dict[str, Any]) -> str:
    """The media type a manifest really has, decided by the document itself.

    The JSON's own `mediaType` comes first, then its shape (`manifests` is an index, `config`
    or `layers` an image manifest, schemaVersion 1 a schema 1 manifest). The type it was served
    with only fills in what the document leaves open, so a registry that serves an index under an
    image manifest type cannot make it read as one.
    """
    served = mediatypes.base(served)
    declared = document.get("mediaType")
    if isinstance(declared, str) and mediatypes.base(declared) in mediatypes.MANIFESTS:
        return mediatypes.base(declared)
    kind = _shape(document)
    if kind is None:
        if served in mediatypes.MANIFESTS:
            return served
        # Neither is a manifest type: keep what was said, made safe to show.
        said = served or (declared if isinstance(declared, str) else "")
        return mediatypes.safe_text(said, 120)
    if served in _KINDS[kind]:
        return served
    if kind == "schema1":
        signed = "signatures" in document
        return mediatypes.DOCKER_SCHEMA1_SIGNED if signed else mediatypes.DOCKER_SCHEMA1
    return mediatypes.OCI_INDEX if kind == "index" else mediatypes.OCI_MANIFEST


_KINDS = {
    "schema1": mediatypes.SCHEMA1,
    "index": mediatypes.INDEXES,
    "image": mediatypes.IMAGE_MANIFESTS,
}


def _shape(document: dict[str, Any]) -> str | None:
    """Which kind of manifest the document's fields make it, or None when they do not say."""
    if document.get("schemaVersion") == 1:
        return "schema1"
    if isinstance(document.get("manifests"), list):
        return "index"
    if "config" in document or "layers" in document:
        return "image"
    return None


def agrees(media_type: str, data: bytes) -> bool:
    """Whether `media_type` is the type the manifest bytes `data` show themselves to have."""
    try:
        document = load_json(data, "manifest")
    except ProtocolError:
        return False
    if not isinstance(document, dict):
        return False
    return effective_media_type(media_type, document) == mediatypes.base(media_type)


def decided_media_type(data: bytes, served: str) -> str:
    """The media type to keep for manifest bytes served with `served`: the document's own."""
    served = mediatypes.base(served)
    try:
        document = load_json(data, "manifest")
    except ProtocolError:
        return served
    if not isinstance(document, dict):
        return served
    decided = effective_media_type(served, document)
    return decided if decided in mediatypes.MANIFESTS else served
