"""Real Docker engines (old and new) pulling and pushing through the lab proxy."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from matrix.classify import ErrorClass, classify
from matrix.lab import engines
from matrix.lab.images import publish_shapes
from matrix.lab.registries import RunningRole
from matrix.lab.registry import registry_binary
from matrix.lab.state import Part
from tests.conftest import TOKEN_USERS
from tests.lab.helpers import login, push_unique_image

pytestmark = [
    pytest.mark.registry,
    pytest.mark.engines,
    pytest.mark.skipif(registry_binary() is None, reason="/usr/bin/docker-registry is missing"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab's engines run as root"),
]

REPOSITORY = "lab/through-proxy"
VERSIONS = ("20.10.24", "28.5.2")
ALICE = ("alice", TOKEN_USERS["alice"])


@pytest.fixture(scope="module")
def published(hub_registry: RunningRole) -> dict[str, str]:
    credentials = ("alice", TOKEN_USERS["alice"])
    return publish_shapes(hub_registry.host, REPOSITORY, credentials=credentials)


@pytest.fixture(scope="module")
def lab_engines(hub_registry: RunningRole) -> Iterator[list[Part]]:
    directory = Path(tempfile.mkdtemp(prefix="pmp-", dir="/tmp"))
    try:
        yield engines.up(directory, insecure_registries=[hub_registry.host], versions=VERSIONS)
    finally:
        engines.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def pull(engine: Part, reference: str, tag: str) -> str:
    """Pull with the engine; its error message, or "" on success."""
    api = docker.APIClient(base_url=engine.endpoint, version="auto", timeout=300)
    try:
        events = api.pull(reference, tag=tag, platform="linux/amd64", stream=True, decode=True)
        errors = [event["error"] for event in events if "error" in event]
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    finally:
        api.close()
    return errors[-1] if errors else ""


def manifest_gets(role: RunningRole) -> int:
    clients = httpx.get(f"{role.url}/_lab/counters").json()["clients"]
    return int(clients.get("127.0.0.1", {}).get("manifest_get", 0))


def test_engines_pull_through_the_proxy_and_are_counted(
    hub_registry: RunningRole, published: dict[str, str], lab_engines: list[Part]
) -> None:
    hub_registry.reset()
    reference = f"{hub_registry.host}/{REPOSITORY}"
    for engine in lab_engines:
        before = manifest_gets(hub_registry)
        assert pull(engine, reference, "v2s2") == "", engine.role
        assert pull(engine, reference, "oci") == "", engine.role
        assert manifest_gets(hub_registry) >= before + 2


def test_engines_see_the_pull_limit(
    hub_registry: RunningRole, published: dict[str, str], lab_engines: list[Part]
) -> None:
    hub_registry.reset()
    httpx.post(f"{hub_registry.url}/_lab/limit", json={"pulls": 0}).raise_for_status()
    try:
        for engine in lab_engines:
            # An image whose manifest an engine already holds is checked with HEAD only, which
            # the limit allows (as on Docker Hub); so each engine pulls an image new to it.
            tag = f"fresh-{engine.role}"
            with httpx.Client() as client:
                login(client, hub_registry.url, REPOSITORY, "pull,push", auth=ALICE)
                push_unique_image(client, hub_registry.url, REPOSITORY, tag)
            message = pull(engine, f"{hub_registry.host}/{REPOSITORY}", tag)
            assert "toomanyrequests" in message.lower(), (engine.role, message)
            assert classify(message) == ErrorClass.RATE_LIMITED
    finally:
        hub_registry.reset()


def test_engines_see_an_unknown_repository_as_denied(
    hub_registry: RunningRole, lab_engines: list[Part]
) -> None:
    hub_registry.reset()
    for engine in lab_engines:
        message = pull(engine, f"{hub_registry.host}/lab/never-pushed", "latest")
        assert classify(message) == ErrorClass.AUTH_DENIED, (engine.role, message)


def test_engines_push_through_the_proxy(
    hub_registry: RunningRole, published: dict[str, str], lab_engines: list[Part]
) -> None:
    hub_registry.reset()
    source = f"{hub_registry.host}/{REPOSITORY}"
    for engine in lab_engines:
        assert pull(engine, source, "v2s2") == ""
        client = docker.DockerClient(base_url=engine.endpoint, version="auto", timeout=300)
        target = f"{hub_registry.host}/lab/pushed-by-{engine.role.replace('.', '-')}"
        client.images.get(f"{source}:v2s2").tag(target, "1")
        auth = {"username": "alice", "password": TOKEN_USERS["alice"]}
        events = list(client.api.push(target, tag="1", auth_config=auth, stream=True, decode=True))
        client.close()
        assert not [event for event in events if "error" in event], events
        tags = httpx.get(f"{hub_registry.url}/v2/{target.split('/', 1)[1]}/tags/list", auth=None)
        assert tags.status_code == 401
        token = httpx.get(
            hub_registry.realm,
            params={
                "service": "registry.docker.io",
                "scope": f"repository:{target.split('/', 1)[1]}:pull",
            },
        ).json()["token"]
        listed = httpx.get(
            f"{hub_registry.url}/v2/{target.split('/', 1)[1]}/tags/list",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert listed["tags"] == ["1"]
