"""One classification for every failure: registry probes, engine pulls, the site and the CLI.

The list of classes and the rules that map a message to a class are data. The rules are tried
in order and the first that matches wins, so a specific rule stands before a general one: a layer
that fails to extract with "unexpected EOF" is `layer-extract-failed`, not `network`. The patterns
use only the regular-expression syntax that Python and JavaScript share, because the site exports
them to the browser and both must give the same answer; gaps are bounded (`[^\n]{0,300}`, never
`.*`), so that no message, however long, makes a pattern slow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    OK = "ok"
    REGISTRY_ERROR = "registry-error"
    RATE_LIMITED = "rate-limited"
    AUTH_DENIED = "auth-denied"
    MANIFEST_UNKNOWN = "manifest-unknown"
    BLOB_UNKNOWN = "blob-unknown"
    NO_PLATFORM_MATCH = "no-platform-match"
    SCHEMA1_DISABLED = "schema1-disabled"
    SCHEMA1_REMOVED = "schema1-removed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    NOT_AN_IMAGE = "not-an-image"
    LAYER_EXTRACT_FAILED = "layer-extract-failed"
    DIGEST_MISMATCH = "digest-mismatch"
    NETWORK = "network"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ClassInfo:
    """What a class means to a user: a short title, the likely cause and what to do."""

    title: str
    explanation: str
    action: str
    # Whom the failure is about: the image itself, the registry serving it, the pulling client,
    # or the path between them. Used to tell an incompatibility from an outage.
    about: str
    # A failure that may go away by itself when tried again later.
    transient: bool = False


CLASS_INFO: dict[ErrorClass, ClassInfo] = {
    ErrorClass.OK: ClassInfo(
        "Pulls", "The engine pulled the tag and unpacked every layer.", "Nothing to do.", "image"
    ),
    ErrorClass.REGISTRY_ERROR: ClassInfo(
        "Registry error",
        "The registry answered with a server error (5xx). Either it is having an outage, or the "
        "tag points at content the registry cannot serve as an image.",
        "Check the tag's format analysis: if it is not an image, pull a version tag or the "
        "last known good digest; otherwise pull from the other registry and retry later.",
        "registry",
        transient=True,
    ),
    ErrorClass.RATE_LIMITED: ClassInfo(
        "Rate limited",
        "The registry refused because the pull limit for this address or account is spent.",
        "Log in (authenticated pulls have a higher limit), wait for the window to pass, or pull "
        "from the other registry.",
        "registry",
        transient=True,
    ),
    ErrorClass.AUTH_DENIED: ClassInfo(
        "Access denied",
        "The registry refused the credentials, or the repository is private or does not exist.",
        "Check the repository name and `docker login` to the registry; anonymous pulls only "
        "work for public repositories.",
        "registry",
    ),
    ErrorClass.MANIFEST_UNKNOWN: ClassInfo(
        "Tag or manifest not found",
        "The registry has no manifest under this tag or digest.",
        "List the published tags and pick one that exists, or pull by a known digest.",
        "image",
    ),
    ErrorClass.BLOB_UNKNOWN: ClassInfo(
        "Layer or config missing",
        "The manifest names a blob (layer or config) that the registry does not hold.",
        "The push was incomplete or the blob was garbage-collected: pull the same tag from the "
        "other registry, or the last known good digest, and tell the publisher.",
        "image",
    ),
    ErrorClass.NO_PLATFORM_MATCH: ClassInfo(
        "No image for this platform",
        "The tag is an index without an entry for the requested OS and architecture.",
        "Pull with `--platform` set to a published platform, or pick a tag built for yours.",
        "image",
    ),
    ErrorClass.SCHEMA1_DISABLED: ClassInfo(
        "Schema 1 disabled",
        "The tag is a Docker schema 1 manifest; this engine refuses it unless told otherwise.",
        "Pull a newer tag, or ask the publisher to push the image again in schema 2 or OCI format.",
        "client",
    ),
    ErrorClass.SCHEMA1_REMOVED: ClassInfo(
        "Schema 1 removed",
        "The tag is a Docker schema 1 manifest; this engine can no longer pull that format.",
        "Use an engine older than 28.2, a newer tag, or ask the publisher to push it again in "
        "schema 2 or OCI format.",
        "client",
    ),
    ErrorClass.UNSUPPORTED_MEDIA_TYPE: ClassInfo(
        "Media type not supported",
        "The manifest's media type is one this engine does not understand.",
        "Use a newer engine, or a tag published in Docker schema 2 format.",
        "client",
    ),
    ErrorClass.NOT_AN_IMAGE: ClassInfo(
        "Not an image",
        "The tag points at something that is not a runnable image, such as a build-cache export "
        "written over the image tag.",
        "Pull a version tag or the last known good digest, or the same tag from the other "
        "registry; the publisher must push the image again over the tag.",
        "image",
    ),
    ErrorClass.LAYER_EXTRACT_FAILED: ClassInfo(
        "Layer could not be unpacked",
        "A layer downloaded but the engine could not unpack it, most often because its "
        "compression (such as zstd) is newer than the engine.",
        "Use a newer engine (zstd layers need 23.0 or later), or a tag with gzip layers.",
        "client",
    ),
    ErrorClass.DIGEST_MISMATCH: ClassInfo(
        "Digest mismatch",
        "Downloaded content did not match its digest: corrupted in transit or on the registry.",
        "Retry; if it persists, pull from the other registry and report it to the publisher.",
        "registry",
        transient=True,
    ),
    ErrorClass.NETWORK: ClassInfo(
        "Network failure",
        "The engine could not reach the registry or the connection broke (DNS, TLS, time-out).",
        "Check connectivity, proxies and certificates on the pulling machine, then retry.",
        "network",
        transient=True,
    ),
    ErrorClass.UNKNOWN: ClassInfo(
        "Unknown failure",
        "The message matches none of the known failure patterns.",
        "Read the engine's full message; if it recurs, add a rule for it to the classifier.",
        "unknown",
    ),
}

# Ordered: the first matching rule wins. Case is ignored.
RULES: tuple[tuple[ErrorClass, str], ...] = (
    (ErrorClass.SCHEMA1_REMOVED, r"schema 1 support has been removed"),
    (ErrorClass.SCHEMA1_DISABLED, r"schema 1 support is disabled|schema1 [^\n]{0,80}disabled"),
    (
        ErrorClass.NOT_AN_IMAGE,
        r"children may not be fetched|not an image|buildkit\.cacheconfig|is not a container image",
    ),
    (
        ErrorClass.UNSUPPORTED_MEDIA_TYPE,
        r"mediatype in manifest should be|unsupported (manifest )?media ?type|"
        r"unknown (manifest )?media ?type|unsupported manifest format|"
        r"mismatched media ?type",
    ),
    (
        ErrorClass.LAYER_EXTRACT_FAILED,
        r"failed to register layer|error processing tar file|failed to extract layer|"
        r"applylayer|archive/tar|failed to unpack|unsupported compression|"
        r"unknown compression|invalid tar header|unpigz|zstd: ",
    ),
    (
        ErrorClass.DIGEST_MISMATCH,
        r"verification failed for digest|digest mismatch|unexpected commit digest|"
        r"digest did not match|does not match (the )?(expected )?digest|failed size validation|"
        r"content digest [^\n]{0,200} does not match|manifest verification failed",
    ),
    (
        ErrorClass.RATE_LIMITED,
        r"toomanyrequests|too many requests|rate limit|http 429|status: 429|\b429 ",
    ),
    (
        ErrorClass.NO_PLATFORM_MATCH,
        r"no matching manifest for|does not match the specified platform|"
        r"no match for platform|no manifest for platform|"
        r"image with reference [^\n]{0,300} was found but does not match",
    ),
    (
        ErrorClass.BLOB_UNKNOWN,
        r"blob unknown|blob_unknown|content at [^\n]{0,300} not found|"
        r"failed open: [^\n]{0,300}not found",
    ),
    (
        ErrorClass.MANIFEST_UNKNOWN,
        r"manifest unknown|manifest_unknown|manifest for [^\n]{0,300} not found|"
        r"failed to resolve reference [^\n]{0,300}: not found|: not found$|tag does not exist",
    ),
    (
        ErrorClass.AUTH_DENIED,
        r"unauthorized|access denied|access to the resource is denied|denied: |"
        r"authentication required|no basic auth credentials|insufficient_scope|"
        r"401 unauthorized|403 forbidden|status: 40[13]\b",
    ),
    (
        ErrorClass.REGISTRY_ERROR,
        r"unexpected http status: 5\d\d|status: 5\d\d|http 5\d\d|internal server error|"
        r"bad gateway|service unavailable|gateway time-?out|\b50[0234] [a-z]",
    ),
    (
        ErrorClass.NETWORK,
        r"dial tcp|no such host|connection refused|connection reset|broken pipe|i/o timeout|"
        r"client\.timeout|timeout exceeded|timed out|tls handshake|x509|certificate|"
        r"network is unreachable|no route to host|unexpected eof|\beof$|"
        r"server gave http response to https client|request canceled",
    ),
)

_COMPILED = tuple((cls, re.compile(pattern, re.IGNORECASE)) for cls, pattern in RULES)

# Only the start of a message is classified: engines put the cause first, and a registry that
# sends megabytes of error text must not make classification slow.
MAX_CLASSIFIED = 4096


def classify(message: str) -> ErrorClass:
    """Return the class of an engine's or registry's error message (`unknown` when none fits)."""
    text = (message or "")[:MAX_CLASSIFIED].strip()
    if not text:
        return ErrorClass.UNKNOWN
    for cls, pattern in _COMPILED:
        if pattern.search(text):
            return cls
    return ErrorClass.UNKNOWN


def classify_http(status: int, codes: tuple[str, ...] = ()) -> ErrorClass:
    """Class of a registry's HTTP answer, from its status and distribution error codes."""
    upper = {code.upper() for code in codes}
    if status == 429 or "TOOMANYREQUESTS" in upper:
        return ErrorClass.RATE_LIMITED
    if "BLOB_UNKNOWN" in upper:
        return ErrorClass.BLOB_UNKNOWN
    if status in (401, 403) or upper & {"UNAUTHORIZED", "DENIED"}:
        return ErrorClass.AUTH_DENIED
    if status == 404 or upper & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"}:
        return ErrorClass.MANIFEST_UNKNOWN
    if status >= 500:
        return ErrorClass.REGISTRY_ERROR
    if 200 <= status < 300:
        return ErrorClass.OK
    return ErrorClass.UNKNOWN


def export_rules() -> dict[str, object]:
    """The rules and class descriptions as plain data, for the site's in-browser classifier."""
    return {
        "rules": [{"class": str(cls), "pattern": pattern, "flags": "i"} for cls, pattern in RULES],
        "max_length": MAX_CLASSIFIED,
        "classes": {
            str(cls): {
                "title": info.title,
                "explanation": info.explanation,
                "action": info.action,
                "about": info.about,
                "transient": info.transient,
            }
            for cls, info in CLASS_INFO.items()
        },
    }
