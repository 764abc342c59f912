"""The project's exceptions, all in one place.

    MatrixError                     anything this package raises on purpose
    ├── ConfigError                 a config file or command-line value that cannot be used
    ├── ReferenceError_             an image reference that does not parse
    ├── RegistryError               the registry answered, but not with what was asked for
    │   ├── AuthError               401/403, or a token service that refused
    │   ├── NotFoundError           404: repository, tag, manifest or blob unknown
    │   ├── RateLimitError          429, with what the registry said about its limits
    │   └── ProtocolError           an answer that breaks the distribution protocol
    │       └── DigestMismatchError content whose digest is not the one it was asked by
    ├── TransportError              no answer at all: DNS, connect, TLS, reset, time-out
    ├── EngineError                 an engine that cannot be reached or died (a harness fault)
    ├── LabError                    a lab part (registry, proxy, engine) that won't start or stop
    └── DataError                   an observation file that cannot be read or written

Registry errors keep the HTTP status, the registry's error codes and a URL with credentials
removed, so that they can be recorded as observations without leaking secrets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

_SECRET_QUERY = re.compile(r"(?i)((?:token|password|secret|access_token|auth)=)[^&\s]+")


def redact_url(url: str) -> str:
    """Return `url` without user info and with secret-looking query values masked."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = _SECRET_QUERY.sub(r"\1REDACTED", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]{0,30}://)(?:[^/\s\"'@<>]*@)?([^\s\"'<>?#]*)(\?[^\s\"'<>#]*)?"
)
_PAGING_KEYS = {"n", "last"}
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+([a-z0-9._~+/=-]+)")


def _redact_query(query: str | None) -> str:
    """A query string kept only when it is a tag list's paging (`?n=100&last=x`)."""
    if not query:
        return ""
    keys = {pair.split("=", 1)[0] for pair in query[1:].split("&")}
    return query if keys <= _PAGING_KEYS else "?REDACTED"


def _redact_credential(match: re.Match[str]) -> str:
    # Prose such as "basic authentication required" stays; anything token-like goes.
    value = match[2]
    looks_secret = len(value) >= 8 and (
        any(c.isdigit() or c in "=+/._~-" for c in value) or value[1:] != value[1:].lower()
    )
    return f"{match[1]} REDACTED" if looks_secret else match[0]


def redact_message(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` (from a registry or an engine) without user info, query strings and credentials.

    URLs lose their user info and query string (signed storage URLs carry a credential there;
    only a tag list's paging, `n` and `last`, is kept),
    `Bearer …`/`Basic …` values and `token=…`-like pairs are masked, and so is each of `secrets`.
    """
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "REDACTED")
    text = _URL_IN_TEXT.sub(lambda m: m[1] + m[2] + _redact_query(m[3]), text)
    text = _CREDENTIAL.sub(_redact_credential, text)
    return _SECRET_QUERY.sub(r"\1REDACTED", text)


class MatrixError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(MatrixError):
    """A config file or command-line value that cannot be used."""


# Named with a trailing underscore: the builtin ReferenceError means something else.
class ReferenceError_(MatrixError):
    """An image reference that does not parse."""


class RegistryError(MatrixError):
    """The registry answered, but not with what was asked for."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: Sequence[str] = (),
        url: str = "",
        temporary: bool = False,
    ) -> None:
        self.status = status
        self.codes = tuple(codes)
        self.url = redact_url(url) if url else ""
        self.temporary = temporary
        detail = message
        if status is not None:
            detail = f"{detail} (HTTP {status}"
            detail += f", {', '.join(self.codes)})" if self.codes else ")"
        if self.url:
            detail = f"{detail} at {self.url}"
        super().__init__(detail)


class AuthError(RegistryError):
    """401/403 from the registry, or a token service that refused."""


class NotFoundError(RegistryError):
    """404: repository, tag, manifest or blob unknown."""


class RateLimitError(RegistryError):
    """429: the registry's pull limit is spent."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ProtocolError(RegistryError):
    """An answer that breaks the distribution protocol (bad JSON, missing headers, loops)."""


class DigestMismatchError(ProtocolError):
    """Content whose digest is not the one it was asked for or announced with."""


class TransportError(MatrixError):
    """No answer at all from the other side: DNS, connect, TLS, reset, time-out."""


class EngineError(MatrixError):
    """A Docker engine that cannot be reached or died: a fault of the harness, not of the image."""


class LabError(MatrixError):
    """A lab part (registry, proxy, engine) that would not start, stop or answer."""


class DataError(MatrixError):
    """An observation file that cannot be read or written."""
