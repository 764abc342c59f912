"""Where registry credentials come from. They are never logged, printed or written anywhere.

Looked up in this order, first match wins, per registry host (`docker.io`, `ghcr.io`,
`127.0.0.1:5000`):

1. `PULL_MATRIX_USERNAME_<HOST>` and `PULL_MATRIX_PASSWORD_<HOST>`, where `<HOST>` is the host
   upper-cased with every character other than a letter or digit replaced by `_`
   (`PULL_MATRIX_PASSWORD_GHCR_IO`, `PULL_MATRIX_PASSWORD_127_0_0_1_5000`). The password may
   also be a personal access token.
2. `PULL_MATRIX_REGISTRY_AUTH`: JSON shaped like the `auths` map of Docker's config file,
   `{"ghcr.io": {"auth": "<base64 user:password>"}}` or
   `{"ghcr.io": {"username": "…", "password": "…"}}` (an `identitytoken` is honoured too).
3. The Docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, its
   `auths` entries with `auth` (base64 `user:password`) or `identitytoken`. Docker Hub's entry
   is keyed `https://index.docker.io/v1/`. Credential helpers (`credsStore`, `credHelpers`) are
   not run: a credential kept only in a helper is not found.

Anonymous access is the default when none of these has an entry for the host.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from matrix.errors import ConfigError
from matrix.reference import DOCKER_HUB

log = logging.getLogger(__name__)

AUTH_VARIABLE = "PULL_MATRIX_REGISTRY_AUTH"
_HUB_KEYS = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}


@dataclass(frozen=True)
class Credentials:
    """A user name and password, or an identity (refresh) token for the OAuth2 token flow."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.password or self.identity_token)


def host_variable_suffix(host: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", host.upper())


def normalise_host(key: str) -> str:
    """`https://index.docker.io/v1/` -> `docker.io`; `ghcr.io` -> `ghcr.io`."""
    text = key.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.split("/", 1)[0].lower()
    return DOCKER_HUB if text in _HUB_KEYS else text


def _decode_entry(host: str, entry: object, origin: str) -> Credentials | None:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{origin}: the entry for {host} is not an object")
    identity = entry.get("identitytoken") or ""
    username, password = entry.get("username") or "", entry.get("password") or ""
    encoded = entry.get("auth")
    if encoded and not password:
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
            # Never quote the value: it is the secret.
            raise ConfigError(f"{origin}: the auth value for {host} is not base64") from exc
    if not all(isinstance(v, str) for v in (identity, username, password)):
        raise ConfigError(f"{origin}: the entry for {host} holds a value that is not text")
    found = Credentials(username, password, identity)
    return found if found else None


def _from_auths(auths: object, host: str, origin: str) -> Credentials | None:
    if not isinstance(auths, Mapping):
        raise ConfigError(f"{origin}: `auths` is not an object")
    for key, entry in auths.items():
        if isinstance(key, str) and normalise_host(key) == host:
            return _decode_entry(host, entry, origin)
    return None


def docker_config_path(environ: Mapping[str, str]) -> Path:
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path(environ.get("HOME", str(Path.home()))) / ".docker" / "config.json"


class CredentialStore:
    """Finds the credentials for a registry host (see the module docstring for the order)."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        docker_config: Path | None = None,
    ) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._docker_config = docker_config or docker_config_path(self._environ)
        self._cache: dict[str, Credentials | None] = {}

    def lookup(self, host: str) -> Credentials | None:
        host = normalise_host(host)
        if host not in self._cache:
            self._cache[host] = self._find(host)
            origin = "found" if self._cache[host] else "none, anonymous"
            log.debug("credentials for %s: %s", host, origin)
        return self._cache[host]

    def _find(self, host: str) -> Credentials | None:
        suffix = host_variable_suffix(host)
        password = self._environ.get(f"PULL_MATRIX_PASSWORD_{suffix}", "")
        if password:
            return Credentials(self._environ.get(f"PULL_MATRIX_USERNAME_{suffix}", ""), password)
        raw = self._environ.get(AUTH_VARIABLE, "")
        if raw:
            found = _from_auths(self._parse_json(raw, AUTH_VARIABLE), host, AUTH_VARIABLE)
            if found:
                return found
        return self._from_docker_config(host)

    @staticmethod
    def _parse_json(raw: str, origin: str) -> Any:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{origin} is not valid JSON") from exc
        return data.get("auths", data) if isinstance(data, dict) else data

    def _from_docker_config(self, host: str) -> Credentials | None:
        path = self._docker_config
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the Docker config {path}: {exc}") from exc
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"the Docker config {path} is not valid JSON") from exc
        auths = document.get("auths") if isinstance(document, Mapping) else None
        return _from_auths(auths, host, str(path)) if auths else None
