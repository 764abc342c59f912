"""The lab's registry and token service, against the real distribution registry."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from matrix.errors import LabError
from matrix.lab.registry import free_port, is_healthy, registry_binary, start_registry
from matrix.lab.tokens import GHCR_SHAPE, Scope, TokenIssuer
from tests.lab.helpers import bearer_challenge, push_small_image

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(registry_binary() is None, reason="/usr/bin/docker-registry is missing"),
]


def test_registry_starts_answers_and_stops(tmp_path: Path) -> None:
    registry = start_registry(tmp_path)
    try:
        assert registry.url == f"http://{registry.host}"
        response = httpx.get(f"{registry.url}/v2/")
        assert response.status_code == 200
        assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        config = (tmp_path / "config.yml").read_text()
        assert "schema1:" in config and "enabled: true" in config
    finally:
        registry.stop()
    assert registry.process.poll() is not None
    assert not is_healthy(registry.url)


def test_registry_on_a_busy_port_fails_clearly(registry, tmp_path: Path) -> None:
    with pytest.raises(LabError, match="in use"):
        start_registry(tmp_path, port=registry.port)


def test_registry_on_a_given_port(tmp_path: Path) -> None:
    port = free_port()
    with start_registry(tmp_path, port=port) as registry:
        assert registry.host == f"127.0.0.1:{port}"
        assert is_healthy(registry.url)


def test_plain_registry_push_and_delete(registry) -> None:
    with httpx.Client() as client:
        digest = push_small_image(client, registry.url, "lab/plain", "v1")
        tags = client.get(f"{registry.url}/v2/lab/plain/tags/list").json()
        assert tags == {"name": "lab/plain", "tags": ["v1"]}
        deleted = client.delete(f"{registry.url}/v2/lab/plain/manifests/{digest}")
        assert deleted.status_code == 202


def test_token_registry_challenges_then_accepts_an_anonymous_pull_token(token_registry) -> None:
    with httpx.Client() as client:
        with httpx.Client(auth=httpx.BasicAuth("alice", token_registry.users["alice"])) as pusher:
            pusher_token = pusher.get(
                token_registry.realm,
                params={
                    "service": token_registry.service,
                    "scope": "repository:lab/bearer:pull,push",
                },
            ).json()["token"]
            pusher.auth = None
            pusher.headers["Authorization"] = f"Bearer {pusher_token}"
            push_small_image(pusher, token_registry.url, "lab/bearer", "1.0")

        denied = client.get(f"{token_registry.url}/v2/lab/bearer/tags/list")
        assert denied.status_code == 401
        challenge = bearer_challenge(denied)
        assert challenge["realm"] == token_registry.realm
        assert challenge["service"] == token_registry.service
        assert challenge["scope"] == "repository:lab/bearer:pull"

        answer = client.get(
            challenge["realm"],
            params={"service": challenge["service"], "scope": challenge["scope"]},
        )
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
        assert body["token"] == body["access_token"]

        tags = client.get(
            f"{token_registry.url}/v2/lab/bearer/tags/list",
            headers={"Authorization": f"Bearer {body['token']}"},
        )
        assert tags.status_code == 200
        assert tags.json()["tags"] == ["1.0"]


def test_anonymous_token_cannot_push(token_registry) -> None:
    with httpx.Client() as client:
        token = client.get(
            token_registry.realm,
            params={"service": token_registry.service, "scope": "repository:lab/nopush:pull,push"},
        ).json()
        claims = jwt.decode(token["token"], options={"verify_signature": False})
        assert claims["access"] == [
            {"type": "repository", "name": "lab/nopush", "actions": ["pull"]}
        ]
        refused = client.post(
            f"{token_registry.url}/v2/lab/nopush/blobs/uploads/",
            headers={"Authorization": f"Bearer {token['token']}"},
        )
        assert refused.status_code == 401
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]


def test_wrong_password_gets_no_token(token_registry) -> None:
    answer = httpx.get(
        token_registry.realm,
        params={"service": token_registry.service},
        auth=("alice", "not-her-password"),
    )
    assert answer.status_code == 401
    assert "token" not in answer.json()


def test_token_from_an_untrusted_key_is_refused(token_registry, tmp_path: Path) -> None:
    stranger = TokenIssuer(
        tmp_path, service=token_registry.service, issuer=token_registry.issuer.issuer
    )
    token = stranger.issue([Scope.parse("repository:lab/bearer:pull")])
    response = httpx.get(
        f"{token_registry.url}/v2/lab/bearer/tags/list",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401


def test_ghcr_shape_answers_token_only(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path, service="ghcr.io", shape=GHCR_SHAPE)
    status, body = issuer.answer("scope=repository:kivy/buildozer:pull&service=ghcr.io", None)
    assert status == 200
    assert list(body) == ["token"]


def test_issuer_keeps_its_key_across_restarts(tmp_path: Path) -> None:
    first = TokenIssuer(tmp_path, service="s")
    second = TokenIssuer(tmp_path, service="s")
    assert first.cert_path.read_bytes() == second.cert_path.read_bytes()


def test_scope_names_may_hold_a_port() -> None:
    scope = Scope.parse("repository:127.0.0.1:5000/lab/app:pull,push")
    assert scope == Scope("repository", "127.0.0.1:5000/lab/app", ("pull", "push"))
    with pytest.raises(ValueError):
        Scope.parse("repository")


def test_registry_ignores_registry_variables_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_HTTP_ADDR", "0.0.0.0:5999")
    monkeypatch.setenv("REGISTRY_STORAGE_DELETE_ENABLED", "false")
    with start_registry(tmp_path) as registry:
        assert is_healthy(registry.url)
        config = (tmp_path / "config.yml").read_text()
        assert f'addr: "127.0.0.1:{registry.port}"' in config
