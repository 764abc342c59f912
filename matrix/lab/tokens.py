"""A token service for registries configured with `auth: token`.

The issuer keeps an EC P-256 key and a self-signed certificate in its directory. Tokens are
JWTs signed with that key and carry the certificate in their `x5c` header; a distribution
registry whose `rootcertbundle` is that certificate accepts them. Anonymous clients get the
actions in `anonymous_actions` (pull by default); users given with a password get
`user_actions`. With `visible`, anonymous clients get nothing on a repository it says does not
exist, as on Docker Hub and GHCR, where a missing repository looks like a private one.

The answer to GET /token has two shapes: Docker Hub's (`token`, `access_token`, `expires_in`,
`issued_at`) and GHCR's (`token` only).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from matrix.errors import LabError

log = logging.getLogger(__name__)

KEY_FILE = "token-key.pem"
CERT_FILE = "token-cert.pem"
HUB_SHAPE = "hub"
GHCR_SHAPE = "ghcr"


@dataclass(frozen=True)
class Scope:
    """One requested scope, such as `repository:library/alpine:pull,push`."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse a scope; the name may itself hold colons (a host with a port)."""
        kind, separator, rest = text.partition(":")
        name, separator2, actions = rest.rpartition(":")
        if not separator or not separator2 or not kind or not name:
            raise ValueError(f"malformed scope: {text!r}")
        return cls(kind, name, tuple(action for action in actions.split(",") if action))


class TokenDenied(Exception):
    """Credentials that do not match a user; answered with 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_or_create_key(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The issuer's signing key and certificate, created on first use and reused afterwards.

    Reuse matters: a registry started earlier trusts the certificate on disk, so a token
    service restarted later must keep signing with the same key.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if key_path.exists() and cert_path.exists():
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LabError(f"token key in {directory} cannot be read: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise LabError(f"token key in {directory} is not an EC key")
        return key, cert

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key)
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pull-matrix lab token issuer")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


class TokenIssuer:
    """Signs registry tokens for one service."""

    def __init__(
        self,
        directory: Path,
        *,
        service: str,
        issuer: str = "pull-matrix-lab",
        users: Mapping[str, str] | None = None,
        anonymous_actions: Iterable[str] = ("pull",),
        user_actions: Iterable[str] = ("pull", "push", "delete"),
        lifetime: int = 300,
        shape: str = HUB_SHAPE,
        visible: Callable[[str], bool] | None = None,
    ) -> None:
        if shape not in (HUB_SHAPE, GHCR_SHAPE):
            raise LabError(f"unknown token answer shape: {shape!r}")
        self.directory = Path(directory)
        self.service = service
        self.issuer = issuer
        self.users = dict(users or {})
        self.anonymous_actions = tuple(anonymous_actions)
        self.user_actions = tuple(user_actions)
        self.lifetime = lifetime
        self.shape = shape
        self.visible = visible
        self._key, self._cert = load_or_create_key(self.directory)
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()

    @property
    def cert_path(self) -> Path:
        """The certificate a registry needs as its `rootcertbundle`."""
        return self.directory / CERT_FILE

    def authenticate(self, authorization: str | None) -> str | None:
        """The user named by a Basic `authorization` header, None for anonymous.

        Raises TokenDenied when credentials are given but do not match.
        """
        if not authorization:
            return None
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            # A bearer token shown to the token service grants nothing more than anonymity.
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TokenDenied("malformed Basic credentials") from exc
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected, password):
            raise TokenDenied("incorrect username or password")
        return user

    def grant(self, user: str | None, scopes: Iterable[Scope]) -> list[dict[str, object]]:
        """The `access` claim: for each scope, the requested actions this client may have."""
        allowed = self.user_actions if user else self.anonymous_actions
        access: list[dict[str, object]] = []
        for scope in scopes:
            if scope.type == "registry" and scope.name == "catalog":
                actions = list(scope.actions) if user else []
            elif scope.type == "repository" and not user and not self._visible(scope.name):
                actions = []
            else:
                actions = [action for action in scope.actions if action in allowed]
                if "*" in scope.actions and user:
                    actions = ["*"]
            access.append({"type": scope.type, "name": scope.name, "actions": actions})
        return access

    def _visible(self, repository: str) -> bool:
        return self.visible is None or self.visible(repository)

    def issue(self, scopes: Iterable[Scope], user: str | None = None) -> str:
        """A signed token for `user` (None: anonymous) with the access it may have."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.lifetime,
            "jti": secrets.token_hex(12),
            "access": self.grant(user, scopes),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [self._x5c]})

    def answer(self, query: str, authorization: str | None) -> tuple[int, dict[str, object]]:
        """Answer a GET /token request: (HTTP status, JSON body)."""
        params = parse_qs(query)
        service = params.get("service", [self.service])[0]
        if service != self.service:
            return 400, _error("DENIED", f"unknown service {service!r}")
        texts = [text for value in params.get("scope", []) for text in value.split(" ") if text]
        try:
            scopes = [Scope.parse(text) for text in texts]
        except ValueError as exc:
            return 400, _error("DENIED", str(exc))
        try:
            user = self.authenticate(authorization)
        except TokenDenied as exc:
            if self.shape == HUB_SHAPE:
                return 401, {"details": exc.reason}
            return 401, _error("UNAUTHORIZED", exc.reason)

        token = self.issue(scopes, user)
        log.info("token issued for %s: %s", user or "anonymous", " ".join(texts) or "-")
        if self.shape == GHCR_SHAPE:
            return 200, {"token": token}
        issued_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return 200, {
            "token": token,
            "access_token": token,
            "expires_in": self.lifetime,
            "issued_at": issued_at,
        }


def _error(code: str, message: str) -> dict[str, object]:
    return {"errors": [{"code": code, "message": message}]}


def json_body(body: Mapping[str, object]) -> bytes:
    return json.dumps(body).encode("utf-8")


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/token":
            self._send(404, _error("NOT_FOUND", "only /token is served here"))
            return
        status, body = self.server.issuer.answer(parts.query, self.headers.get("Authorization"))
        self._send(status, body)

    def _send(self, status: int, body: Mapping[str, object]) -> None:
        payload = json_body(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        # The request line carries the scope only, never credentials, but stays at DEBUG.
        log.debug("token service: " + format, *args)


class _TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], issuer: TokenIssuer) -> None:
        super().__init__(address, _TokenHandler)
        self.issuer = issuer


class TokenServer:
    """A token service answering GET /token on 127.0.0.1, served from a background thread."""

    def __init__(self, issuer: TokenIssuer, port: int = 0) -> None:
        self.issuer = issuer
        try:
            self._server = _TokenHTTPServer(("127.0.0.1", port), issuer)
        except OSError as exc:
            raise LabError(f"cannot serve tokens on 127.0.0.1:{port}: {exc}") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-service", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
