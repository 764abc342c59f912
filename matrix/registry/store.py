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
import stat
import tempfile
from pathlib import Path

from matrix import mediatypes
from matrix.errors import DataError, ProtocolError
from matrix.registry.manifest import MAX_MANIFEST_BYTES, SHA256, Manifest, agrees, verify

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
        """The stored manifest for `digest`, or None if it is absent or fails verification.

        A corrupt entry (not a regular file, too large, undecodable, not matching its digest, or
        kept under a media type its own JSON contradicts) is removed and counts as absent.
        """
        if not SHA256.match(digest):
            return None
        data_path, type_path = self._paths(digest)
        try:
            data = _read_regular(data_path, MAX_MANIFEST_BYTES)
            media_type = _read_regular(type_path, 256).decode("utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, _CorruptEntry) as exc:
            return self._drop(data_path, type_path, f"unreadable ({exc})")
        try:
            verify(data, media_type, digest)
        except ProtocolError:
            return self._drop(data_path, type_path, "does not match its digest")
        if not agrees(media_type, data):
            return self._drop(data_path, type_path, "is kept under a media type its JSON denies")
        return Manifest(digest, media_type, data)

    @staticmethod
    def _drop(data_path: Path, type_path: Path, why: str) -> None:
        log.warning("manifest store: %s %s; removed", data_path.name, mediatypes.safe_text(why))
        for path in (data_path, type_path):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("manifest store: cannot remove %s: %s", path.name, exc)
        return None

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


class _CorruptEntry(Exception):
    """A store file that is not a regular file of plausible size."""


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of `path` if it is a regular file (not a link) of at most `limit` bytes."""
    status = os.lstat(path)
    if not stat.S_ISREG(status.st_mode):
        raise _CorruptEntry("not a regular file")
    if status.st_size > limit:
        raise _CorruptEntry(f"larger than {limit} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    handle = os.open(path, flags)
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise _CorruptEntry("not a regular file")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise _CorruptEntry(f"larger than {limit} bytes")
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
