"""Version-aware ordering of tags and engine versions, and safe slugs for URLs and file names."""

from __future__ import annotations

import hashlib
import re

_NUMBERS = re.compile(r"\d+")
_LEADING_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+)*)(.*)$")
_SAFE_SLUG = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,99}$")
_UNSAFE = re.compile(r"[^a-z0-9_.-]+")

# Tags that name a moving target rather than a release; shown above the versions.
_MOVING = ("latest", "stable", "master", "main", "edge", "nightly", "dev")


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading dotted numbers of a version: `20.10.24+dfsg1` -> (20, 10, 24)."""
    match = _LEADING_VERSION.match(text.strip())
    if not match:
        return ()
    return tuple(int(part) for part in match.group(1).split("."))


def engine_sort_key(version: str) -> tuple[tuple[int, ...], str]:
    """Oldest engine first; Debian suffixes (`+dfsg1`) order after the plain version."""
    return version_tuple(version), version


def tag_sort_key(tag: str) -> tuple[int, int, tuple[int, ...], int, str]:
    """Sort key putting the newest tag first: moving tags, then versions descending, then names.

    A pre-release suffix (`1.2.0-rc1`) sorts below the release it leads to.
    """
    lowered = tag.lower()
    if lowered in _MOVING:
        return (0, _MOVING.index(lowered), (), 0, tag)
    match = _LEADING_VERSION.match(tag)
    if match:
        numbers = tuple(-int(part) for part in match.group(1).split("."))
        padded = numbers + (0,) * (6 - len(numbers)) if len(numbers) < 6 else numbers
        is_release = 0 if not match.group(2) else 1
        return (1, 0, padded, is_release, tag)
    return (2, 0, (), 0, tag)


def sort_tags(tags: list[str] | set[str]) -> list[str]:
    return sorted(set(tags), key=tag_sort_key)


def sort_engines(versions: list[str] | set[str]) -> list[str]:
    return sorted(set(versions), key=engine_sort_key)


def slug(text: str) -> str:
    """A file-name and URL-safe slug for a registry-supplied name (tag, repository, registry).

    Plain lower-case names keep their spelling; anything else gets a readable part plus a short
    hash of the exact text, so two names never share a slug (`A` and `a`, `a/b` and `a-b`).
    """
    if _SAFE_SLUG.match(text) and text not in (".", ".."):
        return text
    readable = _UNSAFE.sub("-", text.lower()).strip("-.")[:60] or "x"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}-{digest}"
