"""The lab proxy in the Docker Hub and GHCR roles, in front of a real registry."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest

from matrix.errors import LabError
from matrix.lab.proxy import Proxy, ProxyConfig, TagPageRequest, tag_page, tag_page_request
from matrix.lab.registries import RunningRole, start_role
from matrix.lab.registry import registry_binary
from tests.conftest import TOKEN_USERS
from tests.lab.helpers import (
    V2S2,
    bearer_challenge,
    login,
    push_blob_chunked,
    push_small_image,
    sha256,
)

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(registry_binary() is None, reason="/usr/bin/docker-registry is missing"),
]

ALICE = ("alice", TOKEN_USERS["alice"])
REPOSITORY = "lab/proxied"
TAG = "1.0"


@pytest.fixture
def hub(hub_registry: RunningRole) -> Iterator[RunningRole]:
    hub_registry.reset()
    yield hub_registry
    hub_registry.reset()


@pytest.fixture(scope="module")
def pushed(hub_registry: RunningRole) -> str:
    """REPOSITORY:TAG pushed through the proxy by a user; its manifest digest."""
    with httpx.Client() as client:
        login(client, hub_registry.url, REPOSITORY, "pull,push", auth=ALICE)
        return push_small_image(client, hub_registry.url, REPOSITORY, TAG)


def counters(role: RunningRole) -> dict:
    return httpx.get(f"{role.url}/_lab/counters").json()


@contextmanager
def anonymous(role: RunningRole, repository: str = REPOSITORY) -> Iterator[httpx.Client]:
    """A client holding an anonymous pull token for `repository`."""
    with httpx.Client(headers={"Accept": V2S2}) as client:
        login(client, role.url, repository)
        yield client


def manifest_url(role: RunningRole, reference: str = TAG) -> str:
    return f"{role.url}/v2/{REPOSITORY}/manifests/{reference}"


def test_challenge_is_hub_shaped(hub: RunningRole) -> None:
    response = httpx.get(manifest_url(hub))
    assert response.status_code == 401
    assert bearer_challenge(response) == {
        "realm": f"http://{hub.host}/token",
        "service": "registry.docker.io",
        "scope": f"repository:{REPOSITORY}:pull",
    }


def test_hub_token_answer_has_both_token_fields(hub: RunningRole) -> None:
    body = httpx.get(
        hub.realm, params={"service": "registry.docker.io", "scope": "repository:a/b:pull"}
    ).json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}


def test_pull_through_proxy_has_rate_headers(hub: RunningRole, pushed: str) -> None:
    with anonymous(hub) as client:
        response = client.get(manifest_url(hub))
    assert response.status_code == 200
    assert sha256(response.content) == pushed
    assert response.headers["Docker-Content-Digest"] == pushed
    assert response.headers["ratelimit-limit"] == "100;w=21600"
    assert response.headers["ratelimit-remaining"] == "99;w=21600"
    assert response.headers["docker-ratelimit-source"] == "127.0.0.1"


def test_get_is_counted_and_head_is_not(hub: RunningRole, pushed: str) -> None:
    with anonymous(hub) as client:
        for _ in range(3):
            assert client.head(manifest_url(hub)).status_code == 200
        assert client.get(manifest_url(hub, pushed)).status_code == 200
        client.get(f"{hub.url}/v2/{REPOSITORY}/tags/list")
    assert counters(hub)["clients"]["127.0.0.1"] == {
        "manifest_get": 1,
        "manifest_head": 3,
        "refused": 0,
    }


def test_limit_spent_gives_429_but_head_still_answers(hub: RunningRole, pushed: str) -> None:
    httpx.post(f"{hub.url}/_lab/limit", json={"pulls": 2}).raise_for_status()
    with anonymous(hub) as client:
        first = client.get(manifest_url(hub))
        second = client.get(manifest_url(hub))
        refused = client.get(manifest_url(hub))
        head = client.head(manifest_url(hub))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["ratelimit-remaining"] == "1;w=21600"
    assert second.headers["ratelimit-remaining"] == "0;w=21600"
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "pull rate limit" in refused.json()["errors"][0]["message"]
    assert refused.headers["ratelimit-limit"] == "2;w=21600"
    assert head.status_code == 200
    assert counters(hub)["clients"]["127.0.0.1"]["refused"] == 1


def test_reset_forgets_counts(hub: RunningRole, pushed: str) -> None:
    httpx.post(f"{hub.url}/_lab/limit", json={"pulls": 1}).raise_for_status()
    with anonymous(hub) as client:
        assert client.get(manifest_url(hub)).status_code == 200
        assert client.get(manifest_url(hub)).status_code == 429
        httpx.post(f"{hub.url}/_lab/reset").raise_for_status()
        assert client.get(manifest_url(hub)).status_code == 200


def test_status_fault_on_a_path_pattern(hub: RunningRole, pushed: str) -> None:
    fault = {"path": "/manifests/", "method": "GET", "status": 500, "times": 1}
    httpx.post(f"{hub.url}/_lab/faults", json=fault).raise_for_status()
    with anonymous(hub) as client:
        broken = client.get(manifest_url(hub))
        head = client.head(manifest_url(hub))
        healed = client.get(manifest_url(hub))
    assert broken.status_code == 500
    assert broken.json()["errors"][0]["code"] == "UNKNOWN"
    assert head.status_code == 200
    assert healed.status_code == 200
    assert counters(hub)["faults"][0]["applied"] == 1


def test_fault_with_a_text_body(hub: RunningRole, pushed: str) -> None:
    fault = {"path": "/manifests/", "status": 429, "body": "Too Many Requests (HAP429).\n"}
    httpx.post(f"{hub.url}/_lab/faults", json=[fault]).raise_for_status()
    with anonymous(hub) as client:
        response = client.get(manifest_url(hub))
    assert response.status_code == 429
    assert response.text == "Too Many Requests (HAP429).\n"
    assert response.headers["Content-Type"] == "text/plain"


def test_truncated_blob(hub: RunningRole, pushed: str) -> None:
    with anonymous(hub) as client:
        manifest = client.get(manifest_url(hub)).json()
        layer = manifest["layers"][0]
        fault = {"path": "/blobs/sha256:", "truncate": 5}
        httpx.post(f"{hub.url}/_lab/faults", json=fault).raise_for_status()
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{hub.url}/v2/{REPOSITORY}/blobs/{layer['digest']}")


def test_reset_connection(hub: RunningRole, pushed: str) -> None:
    httpx.post(f"{hub.url}/_lab/faults", json={"path": "/manifests/", "reset": True})
    with anonymous(hub) as client, pytest.raises(httpx.TransportError):
        client.get(manifest_url(hub))


def test_latency(hub: RunningRole, pushed: str) -> None:
    httpx.post(f"{hub.url}/_lab/faults", json={"path": "/tags/list$", "latency": 0.5})
    with anonymous(hub) as client:
        started = time.monotonic()
        response = client.get(f"{hub.url}/v2/{REPOSITORY}/tags/list")
        elapsed = time.monotonic() - started
    assert response.json()["tags"] == [TAG]
    assert elapsed >= 0.5


def test_bad_fault_is_refused(hub: RunningRole) -> None:
    response = httpx.post(f"{hub.url}/_lab/faults", json={"path": "(", "status": 500})
    assert response.status_code == 400
    response = httpx.post(f"{hub.url}/_lab/faults", json={"status": 500})
    assert response.status_code == 400
    assert counters(hub)["faults"] == []


def test_upload_location_points_at_the_proxy(hub: RunningRole) -> None:
    with httpx.Client() as client:
        login(client, hub.url, "lab/location", "pull,push", auth=ALICE)
        start = client.post(f"{hub.url}/v2/lab/location/blobs/uploads/")
    location = httpx.URL(hub.url).join(start.headers["Location"])
    assert location.netloc.decode() == hub.host


def test_large_blob_streams_both_ways(hub: RunningRole) -> None:
    blob = os.urandom(12 * 1024 * 1024 + 17)
    with httpx.Client(timeout=60) as client:
        login(client, hub.url, "lab/large", "pull,push", auth=ALICE)
        digest = push_blob_chunked(client, hub.url, "lab/large", blob)
        with client.stream("GET", f"{hub.url}/v2/lab/large/blobs/{digest}") as response:
            assert response.headers["Content-Length"] == str(len(blob))
            received = b"".join(response.iter_bytes())
    assert sha256(received) == digest


def test_anonymous_push_is_denied(hub: RunningRole) -> None:
    with httpx.Client() as client:
        login(client, hub.url, "lab/denied", "pull,push")
        response = client.post(f"{hub.url}/v2/lab/denied/blobs/uploads/")
    assert response.status_code == 401


def test_ghcr_role(ghcr_registry: RunningRole) -> None:
    with httpx.Client(headers={"Accept": V2S2}) as client:
        challenge = bearer_challenge(client.get(f"{ghcr_registry.url}/v2/"))
        assert challenge["service"] == "ghcr.io"
        login(client, ghcr_registry.url, "lab/ghcr", "pull,push", auth=ALICE)
        digest = push_small_image(client, ghcr_registry.url, "lab/ghcr", "v1")

        answer = client.get(
            challenge["realm"], params={"service": "ghcr.io", "scope": "repository:lab/ghcr:pull"}
        )
        assert list(answer.json()) == ["token"]
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        response = client.get(f"{ghcr_registry.url}/v2/lab/ghcr/manifests/v1")
    assert response.headers["Docker-Content-Digest"] == digest
    assert "ratelimit-limit" not in response.headers


def test_unknown_repository_looks_private_to_anonymous_clients(
    hub: RunningRole, pushed: str
) -> None:
    def granted(repository: str, auth: tuple[str, str] | None = None) -> list[str]:
        params = {"service": "registry.docker.io", "scope": f"repository:{repository}:pull"}
        token = httpx.get(hub.realm, params=params, auth=auth).json()["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        return list(claims["access"][0]["actions"])

    assert granted(REPOSITORY) == ["pull"]
    assert granted("lab/missing") == []
    assert granted("lab/missing", ALICE) == ["pull"]
    with anonymous(hub, "lab/missing") as client:
        response = client.get(f"{hub.url}/v2/lab/missing/manifests/latest")
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_counts_restart_after_the_window(hub: RunningRole, pushed: str) -> None:
    httpx.post(f"{hub.url}/_lab/limit", json={"pulls": 1, "window": 1}).raise_for_status()
    with anonymous(hub) as client:
        first = client.get(manifest_url(hub))
        assert first.headers["ratelimit-limit"] == "1;w=1"
        assert client.get(manifest_url(hub)).status_code == 429
        time.sleep(1.2)
        assert client.get(manifest_url(hub)).status_code == 200


def test_malformed_chunked_body_closes_only_that_connection(hub: RunningRole) -> None:
    with socket.create_connection(("127.0.0.1", hub.proxy.server.server_address[1])) as raw:
        raw.sendall(
            b"PATCH /v2/lab/x/blobs/uploads/1 HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nnot-a-size\r\n"
        )
        raw.settimeout(10)
        assert raw.recv(100) == b""
    assert httpx.get(f"{hub.url}/v2/").status_code == 401


def test_dead_upstream_gives_502(tmp_path: Path) -> None:
    with start_role(tmp_path, "docker.io") as role:
        role.registry.stop()
        response = httpx.get(f"{role.url}/v2/")
    assert response.status_code == 502
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_fault_headers_make_the_registry_lie(hub: RunningRole, pushed: str) -> None:
    wrong = "sha256:" + "0" * 64
    fault = {"path": f"/manifests/{TAG}$", "headers": {"Docker-Content-Digest": wrong}}
    httpx.post(f"{hub.url}/_lab/faults", json=fault).raise_for_status()
    with anonymous(hub) as client:
        response = client.get(manifest_url(hub))
    assert response.status_code == 200
    assert response.headers.get_list("Docker-Content-Digest") == [wrong]
    assert sha256(response.content) == pushed


def test_token_endpoint_can_fail_too(hub: RunningRole) -> None:
    fault = {"path": "^/token$", "status": 503, "body": "token service down", "times": 1}
    httpx.post(f"{hub.url}/_lab/faults", json=fault).raise_for_status()
    params = {"service": "registry.docker.io", "scope": "repository:a/b:pull"}
    assert httpx.get(hub.realm, params=params).status_code == 503
    assert httpx.get(hub.realm, params=params).status_code == 200


def test_control_api_is_never_faulted(hub: RunningRole) -> None:
    httpx.post(f"{hub.url}/_lab/faults", json={"path": "", "status": 500}).raise_for_status()
    assert httpx.get(f"{hub.url}/_lab/counters").status_code == 200
    assert httpx.get(f"{hub.url}/v2/").status_code == 500
    assert httpx.delete(f"{hub.url}/_lab/faults").json()["faults"] == []


def test_bad_limit_is_refused(hub: RunningRole) -> None:
    for body in ({"pulls": "ten"}, {"pulls": -1}, {"pulls": 1, "window": 0}, [1]):
        assert httpx.post(f"{hub.url}/_lab/limit", json=body).status_code == 400
    assert httpx.post(f"{hub.url}/_lab/limit", content=b"{not json").status_code == 400
    assert counters(hub)["limit"] is None


def test_proxy_stays_on_loopback() -> None:
    with pytest.raises(LabError, match=r"127\.0\.0\.1 only"):
        Proxy(ProxyConfig("http://192.0.2.1:5000"))
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "matrix.lab.proxy",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "127.0.0.1 only" in refused.stderr


def test_chunked_upstream_answer_is_relayed_whole(hub: RunningRole) -> None:
    repository = "lab/many-tags"
    tags = [f"tag-{number:04d}-with-a-longer-name" for number in range(120)]
    with httpx.Client() as client:
        login(client, hub.url, repository, "pull,push", auth=ALICE)
        push_small_image(client, hub.url, repository, tags[0])
        manifest = client.get(
            f"{hub.url}/v2/{repository}/manifests/{tags[0]}", headers={"Accept": V2S2}
        ).content
        for tag in tags[1:]:
            client.put(
                f"{hub.url}/v2/{repository}/manifests/{tag}",
                content=manifest,
                headers={"Content-Type": V2S2},
            ).raise_for_status()
        upstream = client.get(f"{hub.registry.url}/v2/{repository}/tags/list?n=1000")
        proxied = client.get(f"{hub.url}/v2/{repository}/tags/list")
    assert "Content-Length" not in upstream.headers
    assert proxied.headers["Transfer-Encoding"] == "chunked"
    assert proxied.content == upstream.content
    assert sorted(proxied.json()["tags"]) == sorted(tags)


# Tag list paging ------------------------------------------------------------------------------

PAGED = "lab/paged"
# Pushed out of lexical order, so a page can only come out sorted if the proxy sorts it.
PAGED_TAGS = ["v10", "latest", "1.0", "v2", "edge", "1.0-rc1", "v1"]


def test_tag_page_is_sorted_and_starts_after_last() -> None:
    ordered = sorted(PAGED_TAGS)
    assert tag_page(PAGED_TAGS, TagPageRequest(3)) == (ordered[:3], ordered[2])
    assert tag_page(PAGED_TAGS, TagPageRequest(3, ordered[2])) == (ordered[3:6], ordered[5])
    assert tag_page(PAGED_TAGS, TagPageRequest(3, ordered[5])) == (ordered[6:], None)
    assert tag_page(PAGED_TAGS, TagPageRequest(7)) == (ordered, None)
    assert tag_page(PAGED_TAGS, TagPageRequest(0)) == ([], None)
    # `last` need not be a tag: the page starts at the first tag after it.
    assert tag_page(PAGED_TAGS, TagPageRequest(2, "u")) == (["v1", "v10"], "v10")


def test_tag_page_request_reads_n_and_last() -> None:
    assert tag_page_request("") is None
    assert tag_page_request("last=v1") is None
    assert tag_page_request("n=") is None
    assert tag_page_request("n=5") == TagPageRequest(5)
    assert tag_page_request("n=5&last=1.0-rc1") == TagPageRequest(5, "1.0-rc1")
    for wrong in ("n=-1", "n=five", "n=1.5", "n=%D9%A3"):
        with pytest.raises(ValueError):
            tag_page_request(wrong)


@pytest.fixture(params=["hub", "ghcr"])
def paged_role(
    request: pytest.FixtureRequest, hub_registry: RunningRole, ghcr_registry: RunningRole
) -> Iterator[RunningRole]:
    """A role holding PAGED with every tag of PAGED_TAGS."""
    role = hub_registry if request.param == "hub" else ghcr_registry
    role.reset()
    with httpx.Client() as client:
        login(client, role.url, PAGED, "pull,push", auth=ALICE)
        for tag in PAGED_TAGS:
            push_small_image(client, role.url, PAGED, tag)
    yield role
    role.reset()


def test_tag_list_is_paged_with_next_links(paged_role: RunningRole) -> None:
    ordered = sorted(PAGED_TAGS)
    with anonymous(paged_role, PAGED) as client:
        first = client.get(f"{paged_role.url}/v2/{PAGED}/tags/list", params={"n": 3})
        second = client.get(httpx.URL(paged_role.url).join(first.links["next"]["url"]))
        third = client.get(httpx.URL(paged_role.url).join(second.links["next"]["url"]))

    assert first.status_code == 200
    assert first.json() == {"name": PAGED, "tags": ordered[:3]}
    assert first.headers["Link"] == (f'</v2/{PAGED}/tags/list?n=3&last={ordered[2]}>; rel="next"')
    assert second.json() == {"name": PAGED, "tags": ordered[3:6]}
    assert third.json() == {"name": PAGED, "tags": ordered[6:]}
    assert "Link" not in third.headers


def test_tag_page_after_last_and_at_the_end(paged_role: RunningRole) -> None:
    ordered = sorted(PAGED_TAGS)
    url = f"{paged_role.url}/v2/{PAGED}/tags/list"
    with anonymous(paged_role, PAGED) as client:
        middle = client.get(url, params={"n": 2, "last": ordered[1]})
        exact_end = client.get(url, params={"n": 2, "last": ordered[-3]})
        past_end = client.get(url, params={"n": 2, "last": ordered[-1]})
        everything = client.get(url, params={"n": 100})

    assert middle.json()["tags"] == ordered[2:4]
    assert middle.links["next"]["url"] == f"/v2/{PAGED}/tags/list?n=2&last={ordered[3]}"
    assert exact_end.json()["tags"] == ordered[-2:]
    assert "Link" not in exact_end.headers
    assert past_end.status_code == 200
    assert past_end.json()["tags"] == []
    assert "Link" not in past_end.headers
    assert everything.json()["tags"] == ordered
    assert "Link" not in everything.headers


def test_tag_list_without_n_passes_through(paged_role: RunningRole) -> None:
    with anonymous(paged_role, PAGED) as client:
        upstream = client.get(f"{paged_role.registry.url}/v2/{PAGED}/tags/list")
        proxied = client.get(f"{paged_role.url}/v2/{PAGED}/tags/list")
    assert proxied.status_code == 200
    assert proxied.content == upstream.content
    assert "Link" not in proxied.headers
    assert sorted(proxied.json()["tags"]) == sorted(PAGED_TAGS)


def test_bad_page_size_and_unknown_repository(hub: RunningRole) -> None:
    with anonymous(hub, PAGED) as client:
        wrong = client.get(f"{hub.url}/v2/{PAGED}/tags/list", params={"n": "many"})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"

    with httpx.Client() as client:
        login(client, hub.url, "lab/never-pushed", "pull", auth=ALICE)
        missing = client.get(f"{hub.url}/v2/lab/never-pushed/tags/list", params={"n": 2})
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_faults_still_apply_to_paged_tag_lists(paged_role: RunningRole) -> None:
    faults = [{"path": "/tags/list$", "headers": {"X-Lab": "lying"}, "times": 1}]
    httpx.post(f"{paged_role.url}/_lab/faults", json=faults).raise_for_status()
    with anonymous(paged_role, PAGED) as client:
        with_header = client.get(f"{paged_role.url}/v2/{PAGED}/tags/list", params={"n": 2})
        httpx.post(f"{paged_role.url}/_lab/faults", json={"path": "/tags/list$", "status": 503})
        failed = client.get(f"{paged_role.url}/v2/{PAGED}/tags/list", params={"n": 2})
    assert with_header.headers["X-Lab"] == "lying"
    assert len(with_header.json()["tags"]) == 2
    assert failed.status_code == 503
