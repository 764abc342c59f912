"""A content-addressed store of manifests on disk, so that unchanged tags cost no manifest GET.

Layout: `<root>/sha256/<hex>` holds the manifest bytes exactly as served, `<hex>.type` beside it
the media type it was served with. A manifest is written to a temporary file and renamed into
place, and it is verified against its digest whenever it is read: a file that does not match
(a disk error, a hand edit, a signed schema 1 manifest whose payload is not what it shows) is
removed and counts as absent.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from matrix.errors import DataError, ProtocolError
from matrix.registry.manifest import SHA256, Manifest, verify

log = logging.getLogger(__name__)


class ManifestStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _paths(self, digest: str) -> tuple[Path, Path]:
        if not SHA256.match(digest):
            raise DataError(f"manifest store keeps sha256 digests only, not {digest[:80]!r}")
        hex_digest = digest.split(":", 1)[1]
        directory = self.root / "sha256"
        return directory / hex_digest, directory / f"{hex_digest}.type"

    def get(self, digest: str) -> Manifest | None:
        """The stored manifest for `digest`, or None if it is absent or fails verification."""
        if not SHA256.match(digest):
            return None
        data_path, type_path = self._paths(digest)
        try:
            data = data_path.read_bytes()
            media_type = type_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("manifest store: cannot read %s: %s", data_path, exc)
            return None
        try:
            verify(data, media_type, digest)
        except ProtocolError:
            log.warning("manifest store: %s does not match its digest; removed", data_path)
            data_path.unlink(missing_ok=True)
            type_path.unlink(missing_ok=True)
            return None
        return Manifest(digest, media_type, data)

    def put(self, manifest: Manifest) -> None:
        """Keep `manifest` under its digest; DataError when the content does not have it."""
        data_path, type_path = self._paths(manifest.digest)
        try:
            verify(manifest.data, manifest.media_type, manifest.digest)
        except ProtocolError as exc:
            raise DataError(f"manifest store: content is not {manifest.digest}: {exc}") from exc
        try:
            data_path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(type_path, manifest.media_type.encode())
            _write_atomically(data_path, manifest.data)
        except OSError as exc:
            raise DataError(f"manifest store: cannot write {data_path}: {exc}") from exc

    def __contains__(self, digest: str) -> bool:
        return self.get(digest) is not None


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
