"""Registry authentication from the `WWW-Authenticate` challenge.

A registry answers 401 with a challenge. `Basic` means: send the user name and password with
every request. `Bearer` names a token service (`realm`, `service`, `scope`): ask it for a token,
with the credentials if there are any (anonymously otherwise), and send the token as
`Authorization: Bearer`. Docker Hub's token service answers `token` and `access_token`; GHCR's
answers `token` only. Tokens are kept in memory per (realm, service, scope) until they expire;
they are never logged, written anywhere, or put into an exception message.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from matrix.errors import AuthError, ProtocolError, TransportError, redact_url
from matrix.registry.credentials import Credentials
from matrix.registry.wire import load_json, read_body

log = logging.getLogger(__name__)

# The lifetime a token service promises when it says nothing (the distribution spec's default).
DEFAULT_TOKEN_LIFETIME = 60.0
# Renew a little before the promised end, so a token does not expire on its way.
EXPIRY_MARGIN = 10.0
CLIENT_ID = "pull-matrix"
# A token answer is a small JSON object; a larger one is refused rather than read into memory.
MAX_TOKEN_ANSWER_BYTES = 64 * 1024

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(,|$)')
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one `WWW-Authenticate` value, e.g. `Bearer realm="…",service="…"`."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        if header[position] in ", ":
            position += 1
            continue
        scheme = _SCHEME.match(header, position)
        if not scheme:
            break
        position = scheme.end()
        params: dict[str, str] = {}
        while position < len(header):
            # A word followed by a blank (not `=`) starts the next challenge.
            param = _PARAM.match(header, position)
            if not param:
                break
            quoted, bare = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
            params[param.group(1).lower()] = value
            position = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Authenticator:
    """Answers registry challenges for one client; holds the tokens it got, in memory only.

    `send` makes the request to the token service (the client passes its own, so retries and
    transport settings apply there too).
    """

    def __init__(
        self,
        lookup: Callable[[str], Credentials | None],
        send: Callable[[httpx.Request], httpx.Response],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._send = send
        self._clock = clock
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        # (registry host, scope) -> the challenge that registry last gave for it.
        self._challenges: dict[tuple[str, str], Challenge] = {}
        # Every credential this authenticator sent or got, to be removed from recorded text.
        self._secrets: set[str] = set()

    def secrets(self) -> list[str]:
        """The tokens, passwords and Basic header values this authenticator has handled."""
        return list(self._secrets)

    def authorization(self, registry: str, scope: str) -> str | None:
        """The Authorization header value to send now, or None to go anonymous first."""
        challenge = self._challenges.get((registry, scope)) or self._challenges.get((registry, ""))
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic(registry)
        token = self._tokens.get(self._token_key(challenge, scope))
        if token and token.expires_at > self._clock():
            return f"Bearer {token.value}"
        return None

    def answer(self, registry: str, scope: str, response: httpx.Response) -> str:
        """Handle a 401: fetch a fresh token (or pick Basic) and return the header to retry with.

        Raises AuthError when the registry's challenge cannot be met.
        """
        challenges = [
            c
            for value in response.headers.get_list("www-authenticate")
            for c in parse_challenges(value)
        ]
        url = str(response.request.url)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            self._challenges[(registry, scope)] = bearer
            self._tokens.pop(self._token_key(bearer, scope), None)
            return f"Bearer {self._fetch_token(registry, bearer, scope)}"
        if basic is not None:
            header = self._basic(registry)
            if header is None:
                raise AuthError("the registry wants a user name and password", status=401, url=url)
            self._challenges[(registry, "")] = basic
            return header
        raise AuthError("the registry refused without a usable challenge", status=401, url=url)

    def forget(self, registry: str, scope: str) -> None:
        """Drop the token for `scope`, so the next request starts the challenge afresh."""
        challenge = self._challenges.get((registry, scope))
        if challenge is not None:
            self._tokens.pop(self._token_key(challenge, scope), None)

    def _basic(self, registry: str) -> str | None:
        credentials = self._lookup(registry)
        if not credentials or not credentials.password:
            return None
        return "Basic " + self._basic_value(credentials)

    def _basic_value(self, credentials: Credentials) -> str:
        pair = f"{credentials.username}:{credentials.password}".encode()
        value = base64.b64encode(pair).decode()
        self._secrets.update((credentials.password, value))
        return value

    @staticmethod
    def _token_key(challenge: Challenge, scope: str) -> tuple[str, str, str]:
        return (challenge.realm, challenge.params.get("service", ""), scope)

    def _fetch_token(self, registry: str, challenge: Challenge, scope: str) -> str:
        realm = challenge.realm
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProtocolError("the registry named an unusable token service", url=realm)
        credentials = self._lookup(registry)
        if credentials:
            self._secrets.update(v for v in (credentials.password, credentials.identity_token) if v)
        if credentials and parts.scheme == "http" and not _is_loopback(parts.hostname):
            # Credentials never travel in clear text, except to this machine.
            log.warning("not sending credentials to %s over plain HTTP", redact_url(realm))
            credentials = None
        scope = scope or challenge.params.get("scope", "")
        request = self._token_request(
            realm, challenge.params.get("service", ""), scope, credentials
        )
        try:
            response = self._send(request)
        except httpx.HTTPError as exc:
            raise TransportError(
                f"token service at {redact_url(realm)} failed: {type(exc).__name__}"
            ) from exc
        token, lifetime = self._read_token(response, realm)
        self._secrets.add(token)
        self._tokens[self._token_key(challenge, scope)] = _Token(
            token, self._clock() + max(lifetime - EXPIRY_MARGIN, 1.0)
        )
        log.debug("got a token for %s from %s", scope or "(no scope)", redact_url(realm))
        return token

    def _token_request(
        self, realm: str, service: str, scope: str, credentials: Credentials | None
    ) -> httpx.Request:
        if credentials and credentials.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "service": service,
                "scope": scope,
                "client_id": CLIENT_ID,
            }
            return httpx.Request("POST", realm, data=form)
        params = {key: value for key, value in (("service", service), ("scope", scope)) if value}
        headers = {}
        if credentials and credentials.password:
            headers["Authorization"] = "Basic " + self._basic_value(credentials)
            params["account"] = credentials.username
        return httpx.Request("GET", realm, params=params, headers=headers)

    @staticmethod
    def _read_token(response: httpx.Response, realm: str) -> tuple[str, float]:
        url = redact_url(realm)
        if response.status_code != 200:
            response.close()
        if response.status_code in (401, 403):
            raise AuthError("the token service refused", status=response.status_code, url=url)
        if response.status_code != 200:
            raise ProtocolError("the token service failed", status=response.status_code, url=url)
        try:
            answer = read_body(response, MAX_TOKEN_ANSWER_BYTES)
        except ProtocolError as exc:
            limit = MAX_TOKEN_ANSWER_BYTES // 1024
            text = f"the token service answered more than {limit} KiB"
            raise ProtocolError(text, url=url) from exc
        try:
            body = load_json(answer, "token answer", url)
        except ProtocolError as exc:
            raise ProtocolError("the token service answered no JSON", url=url) from exc
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProtocolError("the token service answered without a token", url=url)
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)
