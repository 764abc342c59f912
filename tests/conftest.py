"""Fixtures shared by the whole suite: real registries on loopback.

`registry` is one plain registry for the session; tests sharing it use their own repository
names. `token_registry` is a registry with `auth: token` behind the lab's token issuer.
`hub_registry` and `ghcr_registry` are the lab's two roles: a token-auth registry behind the lab
proxy, answering as Docker Hub and as GHCR do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from matrix.lab.registries import RunningRole, start_role
from matrix.lab.registry import Registry, TokenAuth, registry_binary, start_registry
from matrix.lab.tokens import TokenIssuer, TokenServer

TOKEN_SERVICE = "registry.lab.test"
TOKEN_USERS = {"alice": "alice-secret-password"}


def _require_registry_binary() -> None:
    if registry_binary() is None:
        pytest.skip("/usr/bin/docker-registry is missing (apt-get install docker-registry)")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain registry (no auth) on 127.0.0.1; `.url`, `.host`."""
    _require_registry_binary()
    with start_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@dataclass
class TokenRegistry:
    """A registry that wants bearer tokens, and the token service that issues them.

    Anonymous clients may pull; the users in `users` may also push and delete.
    """

    registry: Registry
    tokens: TokenServer
    issuer: TokenIssuer
    users: dict[str, str]

    @property
    def url(self) -> str:
        return self.registry.url

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def realm(self) -> str:
        return self.tokens.realm

    @property
    def service(self) -> str:
        return self.issuer.service


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """A registry with `auth: token`: 401 with a Bearer challenge until a token is shown."""
    _require_registry_binary()
    root: Path = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer(root / "tokens", service=TOKEN_SERVICE, users=TOKEN_USERS)
    tokens = TokenServer(issuer)
    auth = TokenAuth(tokens.realm, issuer.service, issuer.issuer, issuer.cert_path)
    try:
        with start_registry(root / "registry", auth=auth) as running:
            yield TokenRegistry(running, tokens, issuer, dict(TOKEN_USERS))
    finally:
        tokens.stop()


@pytest.fixture(scope="session")
def hub_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRole]:
    """The docker.io role: a token-auth registry behind the lab proxy (Hub tokens, pull limit).

    Shared by the session: call `.reset()` before relying on counts, faults or the limit.
    `.url`, `.host`, `.realm`, `.proxy.state`; the users of TOKEN_USERS may push.
    """
    _require_registry_binary()
    with start_role(tmp_path_factory.mktemp("hub"), "docker.io", users=TOKEN_USERS) as role:
        yield role


@pytest.fixture(scope="session")
def ghcr_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRole]:
    """The ghcr.io role: a token-auth registry behind the lab proxy answering GHCR's token shape."""
    _require_registry_binary()
    with start_role(tmp_path_factory.mktemp("ghcr"), "ghcr.io", users=TOKEN_USERS) as role:
        yield role
