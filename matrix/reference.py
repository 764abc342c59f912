"""Image references, normalised the way Docker does it.

`kivy/buildozer` is `docker.io/kivy/buildozer`, served from `registry-1.docker.io`; a single name
such as `python` gets the `library/` prefix; a first component with a dot, a colon or the word
`localhost` is a registry host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from matrix.errors import ReferenceError_

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

# From the distribution reference grammar: lowercase path components separated by / and joined
# by single separators; tags of at most 128 word characters, dots and dashes.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_PATTERN = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


@dataclass(frozen=True, order=True)
class Repository:
    """A repository on a registry: `registry` as people write it, `name` the repository path."""

    registry: str
    name: str

    @property
    def endpoint(self) -> str:
        """The host (and port) that actually serves the registry API."""
        return DOCKER_HUB_ENDPOINT if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.registry}/{self.name}"

    def with_tag(self, tag: str) -> str:
        return f"{self}:{tag}"

    def with_digest(self, digest: str) -> str:
        return f"{self}@{digest}"


@dataclass(frozen=True)
class Reference:
    """A repository plus an optional tag and digest."""

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = str(self.repository)
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_repository(text: str) -> Repository:
    """Parse a repository reference without tag or digest."""
    reference = parse_reference(text)
    if reference.tag or reference.digest:
        raise ReferenceError_(f"{_shown(text)} names a tag or digest; give the repository only")
    return reference.repository


def _shown(text: str) -> str:
    """`text` for an error message, not too long, with `user:password@` (as people paste it by
    mistake in front of a host or in a URL) masked."""
    head, at, rest = text.partition("@")
    scheme_end = head.find("//") + 2 if "//" in head else 0
    userinfo = head[scheme_end:]
    if at and ":" in userinfo and "/" not in userinfo:
        text = head[:scheme_end] + "REDACTED@" + rest
    return repr(text[:200])


def parse_reference(text: str) -> Reference:
    """Parse `[registry/]name[:tag][@digest]` and normalise it as Docker does."""
    original = _shown(text)
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        raise ReferenceError_(f"invalid image reference {original}")

    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_PATTERN.match(digest):
            raise ReferenceError_(f"invalid digest {_shown(digest)} in {original}")

    tag = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not TAG_PATTERN.match(tag):
            raise ReferenceError_(f"invalid tag {_shown(tag)} in {original}")

    parts = text.split("/")
    if len(parts) > 1 and _is_host(parts[0]):
        registry, path = parts[0].lower(), parts[1:]
    else:
        registry, path = DOCKER_HUB, parts
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if len(path) == 1:
            path = ["library", *path]
    if not path or not all(_COMPONENT.match(part) for part in path):
        raise ReferenceError_(f"invalid repository name in {original}")
    return Reference(Repository(registry, "/".join(path)), tag, digest)


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_PATTERN.match(tag))
