"""Where credentials come from, in which order, and that their values never show."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from matrix.errors import ConfigError
from matrix.reference import parse_repository
from matrix.registry.credentials import Credentials, CredentialStore, normalise_host
from tests.registry.fake import make_client

SECRET = "pw-61b0-never-print-me"


def encoded(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def docker_config(directory: Path, auths: dict[str, object]) -> dict[str, str]:
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return {"DOCKER_CONFIG": str(directory)}


def test_docker_hub_keys_all_mean_docker_io() -> None:
    assert normalise_host("https://index.docker.io/v1/") == "docker.io"
    assert normalise_host("registry-1.docker.io") == "docker.io"
    assert normalise_host("GHCR.io") == "ghcr.io"
    assert normalise_host("127.0.0.1:5000") == "127.0.0.1:5000"


def test_docker_config_hub_entry_is_found_for_docker_io(tmp_path: Path) -> None:
    environ = docker_config(
        tmp_path, {"https://index.docker.io/v1/": {"auth": encoded("k", SECRET)}}
    )

    found = CredentialStore(environ).lookup("docker.io")

    assert found == Credentials("k", SECRET)
    assert SECRET not in repr(found)


def test_per_host_variables_win_over_json_and_config(tmp_path: Path) -> None:
    environ = docker_config(tmp_path, {"ghcr.io": {"auth": encoded("file", "file-pw")}})
    environ["PULL_MATRIX_REGISTRY_AUTH"] = json.dumps(
        {"ghcr.io": {"username": "j", "password": "j-pw"}}
    )
    environ["PULL_MATRIX_USERNAME_GHCR_IO"] = "env"
    environ["PULL_MATRIX_PASSWORD_GHCR_IO"] = "env-pw"
    store = CredentialStore(environ)

    assert store.lookup("ghcr.io") == Credentials("env", "env-pw")
    del environ["PULL_MATRIX_PASSWORD_GHCR_IO"]
    assert CredentialStore(environ).lookup("ghcr.io") == Credentials("j", "j-pw")
    del environ["PULL_MATRIX_REGISTRY_AUTH"]
    assert CredentialStore(environ).lookup("ghcr.io") == Credentials("file", "file-pw")


def test_port_hosts_have_their_own_variables() -> None:
    environ = {"PULL_MATRIX_PASSWORD_127_0_0_1_5000": "pw"}

    assert CredentialStore(environ).lookup("127.0.0.1:5000") == Credentials("", "pw")
    assert CredentialStore(environ).lookup("127.0.0.1:5001") is None


def test_bad_base64_is_a_config_error_that_does_not_quote_the_value(tmp_path: Path) -> None:
    environ = docker_config(tmp_path, {"ghcr.io": {"auth": SECRET + "%%%"}})

    with pytest.raises(ConfigError) as caught:
        CredentialStore(environ).lookup("ghcr.io")

    assert SECRET not in str(caught.value)


def test_invalid_json_in_the_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PULL_MATRIX_REGISTRY_AUTH"):
        CredentialStore({"PULL_MATRIX_REGISTRY_AUTH": "{nope"}).lookup("ghcr.io")


def test_identity_token_is_exchanged_with_the_oauth2_refresh_grant(tmp_path: Path) -> None:
    environ = docker_config(tmp_path, {"ghcr.io": {"identitytoken": SECRET}})
    forms: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert request.method == "POST"
            forms.append(parse_qs(request.content.decode()))
            return httpx.Response(200, json={"access_token": "granted"})
        if request.headers.get("Authorization") == "Bearer granted":
            return httpx.Response(200, json={"tags": ["x"]})
        challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client, _ = make_client(handler, environ=environ)

    assert client.list_tags(parse_repository("ghcr.io/a/b")).tags == ["x"]
    [form] = forms
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == [SECRET]
    assert form["scope"] == ["repository:a/b:pull"]


def test_credentials_are_not_sent_over_plain_http_to_another_machine() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            sent.append(request)
            return httpx.Response(200, json={"token": "anon"})
        if request.headers.get("Authorization") == "Bearer anon":
            return httpx.Response(200, json={"tags": []})
        challenge = 'Bearer realm="http://tokens.example.test/token",service="s"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    environ = {"PULL_MATRIX_PASSWORD_REGISTRY_TEST": SECRET}
    client, _ = make_client(handler, environ=environ)
    client.list_tags(parse_repository("registry.test/a/b"))

    assert "Authorization" not in sent[0].headers
