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
from urllib.parse import unquote, urlsplit, urlunsplit

# Names whose value is a credential wherever they appear: in a query, a header, JSON or prose.
_SECRET_KEYS = (
    r"access_token|refresh_token|id_token|token|password|passwd|pwd|client_secret|secret"
    r"|authorization|auth|api_key|apikey|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|signature|sig"
)
# `key=value`, `key: value`, `"key": "value"` and `'key': 'value'`; every gap is bounded, and
# a quoted value is taken whole (up to 256 characters) so a password with spaces goes entirely.
_SECRET_PAIR = re.compile(
    r"(?i)(?<![a-z0-9_-])([\"']?)(" + _SECRET_KEYS + r")\1([ \t]{0,3}[:=][ \t]{0,3})"
    r"(?:\"([^\"\n]{0,256})\"|'([^'\n]{0,256})'|([^\"'&\s,;}]+))"
)
_NOT_VALUES = {"redacted", "bearer", "basic"}


def _redact_pair(match: re.Match[str]) -> str:
    quoted = match[4] if match[4] is not None else match[5]
    value = quoted if quoted is not None else match[6]
    if value.lower() in _NOT_VALUES:
        return match[0]
    quote = '"' if match[4] is not None else "'" if match[5] is not None else ""
    return f"{match[1]}{match[2]}{match[1]}{match[3]}{quote}REDACTED{quote}"


def redact_url(url: str) -> str:
    """Return `url` without user info and with secret-looking query values masked."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = _SECRET_PAIR.sub(_redact_pair, parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# A URL with or without its scheme (`//host/path` too): the authority runs to the first `/`,
# `?`, `#` or space, and the user info in it to its last `@`, which is how URL parsers split it.
_URL_IN_TEXT = re.compile(
    r"(?i)((?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}:)?//([^/\s?#<>]*)([^\s\"'<>?#]*)(\?[^\s\"'<>#]*)?"
)
_PAGING_KEYS = {"n", "last"}
_CREDENTIAL = re.compile(
    r"(?i)(?<![a-z0-9_-])(bearer|basic|token)(?:[ \t]{0,3}:[ \t]{0,3}|[ \t]{1,3}|%20|\+)"
    r"([a-z0-9._~+/=-]+)"
)
# Token formats that are secret by their look alone (GitHub and GitLab access tokens, JWTs).
_TOKEN_LOOK = re.compile(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{20,255}"
    r"|glpat-[A-Za-z0-9_-]{20,255}"
    r"|eyJ[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{0,4096})"
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_SPACES = re.compile(r"(\s+)")


def _redact_query(query: str | None) -> str:
    """A query string kept only when it is a tag list's paging (`?n=100&last=x`)."""
    if not query:
        return ""
    keys = {pair.split("=", 1)[0] for pair in query[1:].split("&")}
    return query if keys <= _PAGING_KEYS else "?REDACTED"


def _redact_url_match(match: re.Match[str]) -> str:
    authority = match[2].rpartition("@")[2]
    return (match[1] or "") + "//" + authority + match[3] + _redact_query(match[4])


def _redact_credential(match: re.Match[str]) -> str:
    # Prose such as "basic authentication required" stays; anything token-like goes.
    value = match[2]
    looks_secret = len(value) >= 8 and (
        any(c.isdigit() or c in "=+/._~-" for c in value) or value[1:] != value[1:].lower()
    )
    return f"{match[1]} REDACTED" if looks_secret else match[0]


def _percent_decoded(text: str) -> str:
    """`text` with each percent-encoded word decoded (twice at most), so that URLs and pairs
    hidden by encoding are seen by the patterns."""
    words = _SPACES.split(text)
    for index, word in enumerate(words):
        for _ in range(2):
            if not _PERCENT.search(word):
                break
            word = unquote(word)
        words[index] = word
    return "".join(words)


def redact_message(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` (from a registry or an engine) without user info, query strings and credentials.

    URLs (also percent-encoded ones, and `//host` ones without a scheme) lose their user info and
    query string (signed storage URLs carry a credential there; only a tag list's paging, `n`
    and `last`, is kept), `Bearer …`/`Basic …` values, `token=…`/`"password": "…"`-like pairs and
    GitHub-style tokens are masked, and so is each of `secrets`. Every pattern runs in time
    linear in the text.
    """
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "REDACTED")
    if "%" in text:
        text = _percent_decoded(text)
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "REDACTED")
    text = _URL_IN_TEXT.sub(_redact_url_match, text)
    text = _CREDENTIAL.sub(_redact_credential, text)
    text = _TOKEN_LOOK.sub("REDACTED", text)
    return _SECRET_PAIR.sub(_redact_pair, text)


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
