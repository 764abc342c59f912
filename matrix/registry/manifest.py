"""A manifest as received: its bytes, the media type it was served with, and its digest.

The digest of a manifest is the sha256 of its bytes, with one exception: a signed schema 1
manifest (JWS) is addressed by the digest of its payload, the bytes without the signatures.
Only sha256 is computed: a manifest a registry names by another algorithm (sha512) fails
verification, which no public registry has been seen to do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from matrix import mediatypes
from matrix.errors import DigestMismatchError, ProtocolError

SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")

# Larger than any real manifest; containerd refuses manifests above 4 MiB as well.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def schema1_payload(data: bytes) -> bytes:
    """The signed payload of a schema 1 JWS manifest (the bytes its digest is computed over)."""
    try:
        document = json.loads(data)
        protected = json.loads(_b64url(document["signatures"][0]["protected"]))
        length = int(protected["formatLength"])
        tail = _b64url(protected["formatTail"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProtocolError(f"signed schema 1 manifest has no readable signature: {exc}") from exc
    if not 0 < length <= len(data):
        raise ProtocolError("signed schema 1 manifest has an impossible formatLength")
    return data[:length] + tail


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
        document = json.loads(data)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("schemaVersion") == 1


def verify(data: bytes, media_type: str, *expected: str, url: str = "") -> str:
    """The digest of `data`; DigestMismatchError when it differs from any non-empty `expected`."""
    digest = content_digest(data, media_type)
    for wanted in expected:
        if wanted and wanted != digest:
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
        try:
            document = json.loads(self.data)
        except ValueError as exc:
            raise ProtocolError(f"manifest {self.digest} is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ProtocolError(f"manifest {self.digest} is not a JSON object")
        return document


def effective_media_type(served: str, document: dict[str, Any]) -> str:
    """The media type a manifest really has: the served one, else the JSON's, else a guess."""
    served = mediatypes.base(served)
    if served in mediatypes.MANIFESTS:
        return served
    declared = document.get("mediaType")
    if isinstance(declared, str) and mediatypes.base(declared) in mediatypes.MANIFESTS:
        return mediatypes.base(declared)
    if document.get("schemaVersion") == 1:
        signed = "signatures" in document
        return mediatypes.DOCKER_SCHEMA1_SIGNED if signed else mediatypes.DOCKER_SCHEMA1
    if document.get("schemaVersion") == 2:
        if isinstance(document.get("manifests"), list):
            return mediatypes.OCI_INDEX
        if isinstance(document.get("config"), dict):
            return mediatypes.OCI_MANIFEST
    # Neither is a manifest type: keep what was said, made safe to show.
    return mediatypes.safe_text(served or (declared if isinstance(declared, str) else ""), 120)
