"""Push images built by `matrix.lab.imagebuild` to a registry over the distribution protocol.

Blobs go up as one monolithic upload each (POST, then PUT with the digest), skipped when a
HEAD says the registry already has them; manifests are PUT with their media type. Every answer
that names a digest (`Docker-Content-Digest`) is checked against the digest of what was sent;
an answer without the header is accepted, as the distribution spec makes it optional.

A registry that answers 401 with a Bearer challenge gets the token flow: GET the realm with
the service and a `pull,push` scope, with Basic credentials when some are given. Credentials
only go to a token service on the registry's own host name; tokens are kept per repository for
the life of the `Pusher` and never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpx

from matrix.errors import (
    AuthError,
    DigestMismatchError,
    ProtocolError,
    RegistryError,
    TransportError,
    redact_url,
)
from matrix.lab.imagebuild import Blob, walk

log = logging.getLogger(__name__)

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_bearer_challenge(header: str) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer realm="…",service="…"` header.

    Returns an empty dict when the challenge is not Bearer.
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {key.lower(): value for key, value in _CHALLENGE_PARAM.findall(rest)}


def _error_codes(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(error.get("code", "")) for error in errors if isinstance(error, dict)]


class Pusher:
    """Pushes blobs and manifests to one registry at `host` (`127.0.0.1:PORT`).

    `credentials` (user, password) are sent to the token service only, never to the registry.
    `transport` replaces the network, for tests of answers a real registry does not give.
    """

    def __init__(
        self,
        host: str,
        *,
        scheme: str = "http",
        credentials: tuple[str, str] | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        self.base = f"{scheme}://{host}"
        self._credentials = credentials
        self._tokens: dict[str, str] = {}
        # (repository, digest) of content this pusher saw the registry accept or confirm.
        self._present: set[tuple[str, str]] = set()
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # Requests ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        repository: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, answering a Bearer challenge once if the registry makes one."""
        url = urljoin(self.base + "/", url)
        response = self._send(method, url, repository, content, headers)
        if response.status_code == 401:
            challenge = parse_bearer_challenge(response.headers.get("WWW-Authenticate", ""))
            if not challenge:
                raise AuthError("registry refused without a Bearer challenge", status=401, url=url)
            self._fetch_token(challenge, repository)
            response = self._send(method, url, repository, content, headers)
        if response.status_code in (401, 403):
            raise AuthError(
                f"{method} refused",
                status=response.status_code,
                codes=_error_codes(response),
                url=url,
            )
        return response

    def _send(
        self,
        method: str,
        url: str,
        repository: str,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        token = self._tokens.get(repository)
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            return self._client.request(method, url, content=content, headers=sent)
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            raise TransportError(f"{method} {redact_url(url)} failed: {reason}") from exc

    def _fetch_token(self, challenge: dict[str, str], repository: str) -> None:
        realm = challenge.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise ProtocolError(f"Bearer challenge without a usable realm: {realm!r}")
        if urlsplit(realm).hostname != urlsplit(self.base).hostname:
            # Credentials go to the registry's own host only, whatever a challenge names.
            raise ProtocolError("Bearer challenge names a token service on another host", url=realm)
        params = {"scope": f"repository:{repository}:pull,push"}
        if "service" in challenge:
            params["service"] = challenge["service"]
        auth = httpx.BasicAuth(*self._credentials) if self._credentials else None
        try:
            response = self._client.get(realm, params=params, auth=auth)
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            raise TransportError(f"token service at {redact_url(realm)} failed: {reason}") from exc
        if response.status_code != 200:
            raise AuthError("token service refused", status=response.status_code, url=realm)
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError) as exc:
            raise ProtocolError("token service answered without JSON", url=realm) from exc
        if not isinstance(token, str) or not token:
            raise ProtocolError("token service answered without a token", url=realm)
        self._tokens[repository] = token

    # Blobs and manifests ----------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        """True if the registry has the blob (asked once per pusher, then remembered)."""
        if (repository, digest) in self._present:
            return True
        response = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", repository)
        return self._remember(repository, digest, response.status_code == 200)

    def has_manifest(self, repository: str, manifest: Blob) -> bool:
        """True if the registry has `manifest` by digest (asked once, then remembered)."""
        if (repository, manifest.digest) in self._present:
            return True
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{manifest.digest}",
            repository,
            headers={"Accept": manifest.media_type},
        )
        return self._remember(repository, manifest.digest, response.status_code == 200)

    def _remember(self, repository: str, digest: str, present: bool) -> bool:
        if present:
            self._present.add((repository, digest))
        return present

    def push_blob(self, repository: str, blob: Blob) -> bool:
        """Upload `blob` unless the registry has it; True if it was uploaded."""
        if self.has_blob(repository, blob.digest):
            return False
        started = self._request("POST", f"/v2/{repository}/blobs/uploads/", repository)
        _expect(started, (202,), "blob upload could not start")
        location = started.headers.get("Location")
        if not location:
            raise ProtocolError("blob upload started without a Location", url=str(started.url))
        upload_url = urljoin(str(started.url), location)
        separator = "&" if "?" in upload_url else "?"
        finished = self._request(
            "PUT",
            f"{upload_url}{separator}digest={blob.digest}",
            repository,
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        _expect(finished, (201,), f"blob {blob.digest} upload was not accepted")
        _check_digest(finished, blob.digest)
        return self._remember(repository, blob.digest, True)

    def push_manifest(self, repository: str, reference: str, manifest: Blob) -> str:
        """PUT `manifest` under `reference` (a tag or its digest); return the digest."""
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        _expect(response, (201,), f"manifest {reference} was not accepted")
        _check_digest(response, manifest.digest)
        self._remember(repository, manifest.digest, True)
        return manifest.digest

    def push(self, repository: str, tag: str, root: Blob) -> str:
        """Push the whole tree under `root`, then tag it; return the root's digest.

        Children go first: plain blobs by upload, manifests (images inside an index) by
        digest, so that the registry finds everything the tagged manifest refers to.
        """
        uploaded = 0
        for blob in walk(root):
            if blob is root or blob.digest == root.digest:
                continue
            if blob.is_manifest:
                if not self.has_manifest(repository, blob):
                    self.push_manifest(repository, blob.digest, blob)
            else:
                uploaded += self.push_blob(repository, blob)
        digest = self.push_manifest(repository, tag, root)
        log.info(
            "pushed %s/%s:%s as %s (%d blobs uploaded)",
            self.host,
            repository,
            tag,
            digest,
            uploaded,
        )
        return digest

    def get_manifest(
        self, repository: str, reference: str, accept: Iterable[str]
    ) -> httpx.Response:
        """GET a manifest with the given Accept media types (the answer is not checked)."""
        return self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": ", ".join(accept)},
        )


def _expect(response: httpx.Response, statuses: tuple[int, ...], message: str) -> None:
    if response.status_code not in statuses:
        raise RegistryError(
            message,
            status=response.status_code,
            codes=_error_codes(response),
            url=str(response.url),
        )


def _check_digest(response: httpx.Response, expected: str) -> None:
    announced = response.headers.get("Docker-Content-Digest")
    if announced is not None and announced != expected:
        raise DigestMismatchError(
            f"registry stored {announced}, not the {expected} that was sent",
            url=str(response.url),
        )


def push_all(pusher: Pusher, repository: str, tags: dict[str, Blob]) -> dict[str, str]:
    """Push each tag's tree in order; return tag -> digest."""
    return {tag: pusher.push(repository, tag, root) for tag, root in tags.items()}
