"""Protocol edge cases of the registry client, against scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from matrix import mediatypes as mt
from matrix.classify import ErrorClass, classify_http
from matrix.errors import (
    AuthError,
    DigestMismatchError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    RegistryError,
    TransportError,
)
from matrix.reference import parse_repository
from matrix.registry import client as client_module
from matrix.registry.auth import parse_challenges
from matrix.registry.client import next_link, parse_ratelimit, parse_retry_after
from matrix.registry.store import ManifestStore
from tests.registry import builders as b
from tests.registry.fake import make_client, manifest_response

HUB = parse_repository("kivy/buildozer")
GHCR = parse_repository("ghcr.io/kivy/buildozer")
SECRET_TOKEN = "tok-3f9a-very-secret-value"


# Challenges ---------------------------------------------------------------------------------


def test_docker_hub_bearer_challenge_is_parsed() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:kivy/buildozer:pull"'
    )
    [challenge] = parse_challenges(header)

    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["service"] == "registry.docker.io"
    assert challenge.params["scope"] == "repository:kivy/buildozer:pull"


def test_several_challenges_escapes_and_bare_values() -> None:
    header = 'Basic realm="say \\"hi\\"", Bearer realm="https://ghcr.io/token",service=ghcr.io'
    basic, bearer = parse_challenges(header)

    assert basic.scheme == "basic" and basic.realm == 'say "hi"'
    assert bearer.scheme == "bearer" and bearer.params["service"] == "ghcr.io"


def test_challenge_with_error_field_keeps_it() -> None:
    [challenge] = parse_challenges(
        'Bearer realm="https://r/token",service="s",scope="a:b:pull",error="insufficient_scope"'
    )
    assert challenge.params["error"] == "insufficient_scope"


# Small parsers -----------------------------------------------------------------------------


def test_ratelimit_header_format() -> None:
    assert parse_ratelimit("100;w=21600") == (100, 21600)
    assert parse_ratelimit("76;w=21600") == (76, 21600)
    assert parse_ratelimit("nonsense") == (None, None)
    assert parse_ratelimit(None) == (None, None)


def test_retry_after_in_seconds_and_as_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert parse_retry_after("soon") is None


def test_link_header_relative_and_absolute() -> None:
    current = "https://r.test/v2/a/b/tags/list?n=2"
    relative = httpx.Headers({"Link": '</v2/a/b/tags/list?n=2&last=x>; rel="next"'})
    absolute = httpx.Headers({"Link": "<https://r.test/v2/a/b/tags/list?last=y>; rel=next"})

    assert next_link(relative, current) == "https://r.test/v2/a/b/tags/list?n=2&last=x"
    assert next_link(absolute, current) == "https://r.test/v2/a/b/tags/list?last=y"
    assert next_link(httpx.Headers({"Link": '</x>; rel="prev"'}), current) is None


# Tag lists ---------------------------------------------------------------------------------


def tag_server(tags: list[str], link: str = "relative") -> object:
    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        size = int(query.get("n", ["1000"])[0])
        last = query.get("last", [""])[0]
        start = tags.index(last) + 1 if last else 0
        page = tags[start : start + size]
        headers = {}
        if start + size < len(tags):
            target = f"/v2/{HUB.name}/tags/list?n={size}&last={page[-1]}"
            if link == "absolute":
                target = f"https://registry-1.docker.io{target}"
            if link == "elsewhere":
                target = f"https://elsewhere.test{target}"
            headers["Link"] = f'<{target}>; rel="next"'
        return httpx.Response(200, json={"name": HUB.name, "tags": page}, headers=headers)

    return handler


@pytest.mark.parametrize("link", ["relative", "absolute"])
def test_tag_list_follows_every_page(link: str) -> None:
    tags = [f"1.{i}" for i in range(250)]
    client, recorder = make_client(tag_server(tags, link), page_size=100)  # type: ignore[arg-type]

    listing = client.list_tags(HUB)

    assert listing.tags == tags
    assert listing.pages == 3
    assert not listing.incomplete
    assert str(recorder.requests[0].url).startswith(
        "https://registry-1.docker.io/v2/kivy/buildozer"
    )


def test_tag_list_link_to_another_host_is_not_followed() -> None:
    tags = [f"t{i}" for i in range(5)]
    client, recorder = make_client(tag_server(tags, "elsewhere"), page_size=2)  # type: ignore[arg-type]

    listing = client.list_tags(HUB)

    assert listing.tags == ["t0", "t1"]
    assert "another host" in listing.incomplete
    assert all(r.url.host == "registry-1.docker.io" for r in recorder.requests)


def test_tag_list_loop_on_the_same_next_link_stops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        page = ["a", "b"] if "last" not in query else ["c"]
        link = f'</v2/{HUB.name}/tags/list?n=2&last=b>; rel="next"'
        return httpx.Response(200, json={"tags": page}, headers={"Link": link})

    client, recorder = make_client(handler, page_size=2)
    listing = client.list_tags(HUB)

    assert listing.tags == ["a", "b", "c"]
    assert "points back" in listing.incomplete
    assert len(recorder.requests) == 2


def test_tag_list_repeating_the_same_page_under_new_links_stops() -> None:
    counter = iter(range(10**6))

    def handler(request: httpx.Request) -> httpx.Response:
        link = f'</v2/{HUB.name}/tags/list?n=2&last=x{next(counter)}>; rel="next"'
        return httpx.Response(200, json={"tags": ["a", "b"]}, headers={"Link": link})

    client, recorder = make_client(handler, page_size=2)
    listing = client.list_tags(HUB)

    assert listing.tags == ["a", "b"]
    assert "sent before" in listing.incomplete
    assert len(recorder.requests) == 2


def test_absurd_tag_list_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_TAGS", 50)
    monkeypatch.setattr(client_module, "MAX_TAG_PAGES", 1000)
    tags = [f"v{i}" for i in range(10_000)]
    client, recorder = make_client(tag_server(tags), page_size=20)  # type: ignore[arg-type]

    listing = client.list_tags(HUB)

    assert len(listing.tags) == 50
    assert "50 tags" in listing.incomplete
    assert len(recorder.requests) == 3


def test_endless_pages_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_TAG_PAGES", 5)
    tags = [f"v{i}" for i in range(1000)]
    client, _ = make_client(tag_server(tags), page_size=1)  # type: ignore[arg-type]

    listing = client.list_tags(HUB)

    assert len(listing.tags) == 5
    assert "5 pages" in listing.incomplete


def test_oversized_tag_page_is_a_protocol_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_PAGE_BYTES", 1000)
    client, _ = make_client(lambda r: httpx.Response(200, json={"tags": ["x" * 100] * 50}))

    with pytest.raises(ProtocolError, match="larger than"):
        client.list_tags(HUB)


def test_invalid_tag_names_from_the_registry_are_skipped() -> None:
    body = {"tags": ["good", "../../etc", "<script>", 7, None, "also-good"]}
    client, _ = make_client(lambda r: httpx.Response(200, json=body))

    listing = client.list_tags(HUB)

    assert listing.tags == ["good", "also-good"]
    assert listing.skipped == 4


def test_null_tag_list_is_empty() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, json={"name": "x", "tags": None}))

    assert client.list_tags(HUB).tags == []


# Authentication ------------------------------------------------------------------------------


def bearer_registry(token_body: dict[str, object], realm: str, service: str) -> object:
    issued: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            issued.append(request)
            return httpx.Response(200, json=token_body)
        if request.headers.get("Authorization") != f"Bearer {SECRET_TOKEN}":
            challenge = f'Bearer realm="{realm}",service="{service}",scope="repository:x:pull"'
            return httpx.Response(
                401,
                json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                headers={"WWW-Authenticate": challenge},
            )
        return httpx.Response(200, json={"tags": ["1.0"]})

    handler.issued = issued  # type: ignore[attr-defined]
    return handler


def test_ghcr_token_flow_with_token_only_answer() -> None:
    handler = bearer_registry({"token": SECRET_TOKEN}, "https://ghcr.io/token", "ghcr.io")
    client, recorder = make_client(handler)  # type: ignore[arg-type]

    assert client.list_tags(GHCR).tags == ["1.0"]
    assert client.list_tags(GHCR).tags == ["1.0"]

    [token_request] = handler.issued  # type: ignore[attr-defined]
    assert token_request.url.params["scope"] == "repository:kivy/buildozer:pull"
    assert token_request.url.params["service"] == "ghcr.io"
    assert "Authorization" not in token_request.headers  # anonymous
    # One 401, one token, then the cached token is sent straight away.
    assert [r.url.path for r in recorder.requests].count("/v2/kivy/buildozer/tags/list") == 3


def test_docker_hub_token_answer_with_access_token_and_credentials() -> None:
    body = {"token": SECRET_TOKEN, "access_token": SECRET_TOKEN, "expires_in": 300}
    handler = bearer_registry(body, "https://auth.docker.io/token", "registry.docker.io")
    environ = {"PULL_MATRIX_USERNAME_DOCKER_IO": "kivy", "PULL_MATRIX_PASSWORD_DOCKER_IO": "pw"}
    client, _ = make_client(handler, environ=environ)  # type: ignore[arg-type]

    assert client.list_tags(HUB).tags == ["1.0"]
    [token_request] = handler.issued  # type: ignore[attr-defined]
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert token_request.url.params["account"] == "kivy"


def test_expired_token_is_refreshed_on_401() -> None:
    tokens = iter(["first-token", SECRET_TOKEN, "unused"])
    issued: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            issued.append(next(tokens))
            return httpx.Response(200, json={"token": issued[-1], "expires_in": 3600})
        if request.headers.get("Authorization") == f"Bearer {SECRET_TOKEN}":
            return httpx.Response(200, json={"tags": ["1.0"]})
        challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client, _ = make_client(handler)
    with pytest.raises(AuthError):
        client.list_tags(GHCR)  # first-token is refused too
    assert client.list_tags(GHCR).tags == ["1.0"]  # the next 401 brings a fresh token
    assert issued == ["first-token", SECRET_TOKEN]


def test_refused_token_service_is_an_auth_error_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(401, json={"details": "bad password"})
        challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    environ = {"PULL_MATRIX_PASSWORD_GHCR_IO": SECRET_TOKEN, "PULL_MATRIX_USERNAME_GHCR_IO": "u"}
    client, _ = make_client(handler, environ=environ)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AuthError) as caught:
        client.list_tags(GHCR)

    assert classify_http(caught.value.status or 0, caught.value.codes) == ErrorClass.AUTH_DENIED
    assert SECRET_TOKEN not in str(caught.value)
    assert SECRET_TOKEN not in caplog.text


def test_basic_challenge_uses_credentials_from_docker_config(tmp_path: Path) -> None:
    import base64

    config = tmp_path / "config.json"
    auth = base64.b64encode(f"bob:{SECRET_TOKEN}".encode()).decode()
    config.write_text(json.dumps({"auths": {"registry.test:5000": {"auth": auth}}}))
    wanted = "Basic " + auth

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == wanted:
            return httpx.Response(200, json={"tags": ["a"]})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="registry"'})

    client, _ = make_client(handler, environ={"DOCKER_CONFIG": str(tmp_path)})
    repository = parse_repository("registry.test:5000/team/app")

    assert client.list_tags(repository).tags == ["a"]


def test_secrets_never_reach_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="matrix")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": SECRET_TOKEN})
        if "Authorization" not in request.headers:
            challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "down"}]})

    client, recorder = make_client(handler)
    with pytest.raises(RegistryError) as caught:
        client.list_tags(GHCR)

    assert caught.value.status == 503
    assert any(
        r.headers.get("Authorization") == f"Bearer {SECRET_TOKEN}" for r in recorder.requests
    )
    assert SECRET_TOKEN not in str(caught.value)
    assert SECRET_TOKEN not in caplog.text
    assert "retrying" in caplog.text


# Rate limits and retries ---------------------------------------------------------------------

HUB_429_BODY = {
    "errors": [
        {
            "code": "TOOMANYREQUESTS",
            "message": "You have reached your pull rate limit. You may increase the limit by "
            "authenticating and upgrading: https://www.docker.com/increase-rate-limit",
        }
    ]
}
HUB_LIMIT_HEADERS = {
    "ratelimit-limit": "100;w=21600",
    "ratelimit-remaining": "0;w=21600",
    "docker-ratelimit-source": "192.0.2.10",
}


def test_docker_hub_429_is_retried_then_a_rate_limit_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {**HUB_LIMIT_HEADERS, "Retry-After": "3"}
        return httpx.Response(429, json=HUB_429_BODY, headers=headers)

    client, recorder = make_client(handler, attempts=3)

    with pytest.raises(RateLimitError) as caught:
        client.get_manifest(HUB, "latest")

    error = caught.value
    assert error.status == 429 and error.codes == ("TOOMANYREQUESTS",)
    assert error.retry_after == 3.0
    assert "pull rate limit" in str(error)
    assert classify_http(429, error.codes) == ErrorClass.RATE_LIMITED
    assert recorder.sleeps == [3.0, 3.0]
    assert client.manifest_gets["docker.io"] == 0
    assert client.ratelimits["docker.io"].remaining == 0
    assert client.ratelimits["docker.io"].limit == 100
    assert client.ratelimits["docker.io"].source == "192.0.2.10"


def test_plain_text_429_and_long_retry_after_is_capped() -> None:
    answers = iter(
        [
            httpx.Response(
                429, text="Too Many Requests (HAP429).\n", headers={"Retry-After": "999"}
            ),
            httpx.Response(200, json={"tags": ["ok"]}),
        ]
    )
    client, recorder = make_client(lambda r: next(answers))

    assert client.list_tags(HUB).tags == ["ok"]
    assert recorder.sleeps == [5]


def test_5xx_backs_off_exponentially_and_recovers() -> None:
    answers = iter(
        [httpx.Response(502), httpx.Response(500), httpx.Response(200, json={"tags": []})]
    )
    client, recorder = make_client(lambda r: next(answers), attempts=3)

    assert client.list_tags(HUB).tags == []
    assert recorder.sleeps == [0.5, 1.0]


def test_connection_resets_become_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    client, recorder = make_client(handler, attempts=2)

    with pytest.raises(TransportError, match="ReadError"):
        client.list_tags(HUB)
    assert len(recorder.requests) == 2


# Manifests -----------------------------------------------------------------------------------


def test_manifest_unknown_keeps_status_and_codes() -> None:
    body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
    client, _ = make_client(lambda r: httpx.Response(404, json=body))

    with pytest.raises(NotFoundError) as caught:
        client.get_manifest(HUB, "nope")

    assert caught.value.codes == ("MANIFEST_UNKNOWN",)
    assert classify_http(404, caught.value.codes) == ErrorClass.MANIFEST_UNKNOWN
    assert caught.value.url == "https://registry-1.docker.io/v2/kivy/buildozer/manifests/nope"


def test_lying_digest_header_is_a_digest_mismatch() -> None:
    image = b.image_manifest()
    client, _ = make_client(lambda r: manifest_response(r, image, b.digest_of("other")))

    with pytest.raises(DigestMismatchError):
        client.get_manifest(HUB, "latest")


def test_content_not_matching_the_requested_digest_is_a_digest_mismatch() -> None:
    image, other = b.image_manifest(seed="a"), b.image_manifest(seed="b")
    client, _ = make_client(lambda r: manifest_response(r, other))

    with pytest.raises(DigestMismatchError):
        client.get_manifest(HUB, image.digest)


def test_second_resolution_of_an_unchanged_tag_makes_no_get(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    client, recorder = make_client(lambda r: manifest_response(r, image), store=store)

    first = client.fetch_tag(HUB, "latest")
    again, _ = make_client(lambda r: manifest_response(r, image), store=ManifestStore(tmp_path))
    second = again.fetch_tag(HUB, "latest")

    assert first == second == image
    assert client.manifest_gets["docker.io"] == 1
    assert again.manifest_gets["docker.io"] == 0
    assert recorder.count("HEAD", "/manifests/latest") == 1
    accept = recorder.requests[0].headers["Accept"]
    for media_type in (
        mt.OCI_INDEX,
        mt.DOCKER_MANIFEST_LIST,
        mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST,
        mt.DOCKER_SCHEMA1_SIGNED,
        mt.DOCKER_SCHEMA1,
    ):
        assert media_type in accept


def test_corrupted_store_entry_is_fetched_again(tmp_path: Path) -> None:
    image = b.image_manifest()
    store = ManifestStore(tmp_path)
    store.put(image)
    (tmp_path / "sha256" / image.digest.split(":")[1]).write_bytes(b"{}")
    client, _ = make_client(lambda r: manifest_response(r, image), store=store)

    assert client.fetch_tag(HUB, "latest") == image
    assert client.manifest_gets["docker.io"] == 1
    assert store.get(image.digest) == image


def test_signed_schema1_verifies_against_its_payload_digest() -> None:
    signed = b.schema1_signed()
    client, _ = make_client(lambda r: manifest_response(r, signed))

    assert client.get_manifest(HUB, "old").digest == signed.digest


def test_missing_blob_is_blob_unknown() -> None:
    client, _ = make_client(lambda r: httpx.Response(404))

    with pytest.raises(NotFoundError) as caught:
        client.blob_size(HUB, b.digest_of("gone"))

    assert classify_http(404, caught.value.codes) == ErrorClass.BLOB_UNKNOWN


def test_verify_blob_checks_size_and_digest() -> None:
    content = b"layer bytes"
    digest = "sha256:" + __import__("hashlib").sha256(content).hexdigest()
    client, _ = make_client(lambda r: httpx.Response(200, content=content))

    assert client.verify_blob(HUB, digest, len(content)) == len(content)
    with pytest.raises(DigestMismatchError):
        client.verify_blob(HUB, digest, len(content) + 1)
    with pytest.raises(DigestMismatchError):
        client.verify_blob(HUB, b.digest_of("else"), None)
