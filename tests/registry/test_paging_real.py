"""More than a page of tags on the lab's Hub and GHCR roles: the client and the probe see them all.

The registry behind each role sends every tag at once; the lab proxy pages the list as Docker
Hub does, so these tests cross real `Link` headers between real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from matrix.lab.imagebuild import build_image
from matrix.lab.images import AMD64
from matrix.lab.push import Pusher
from matrix.lab.registries import RunningRole
from matrix.lab.registry import registry_binary
from matrix.observations import load
from matrix.reference import parse_repository
from matrix.registry import CredentialStore, RegistryClient
from tests.conftest import TOKEN_USERS

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(registry_binary() is None, reason="/usr/bin/docker-registry is missing"),
]

REPOSITORY = "paging/many"
# More than Docker Hub's default page of 100, with names whose push order is not lexical.
TAGS = [f"build-{number}" for number in range(130)]


@pytest.fixture(scope="module", params=["docker.io", "ghcr.io"])
def many_tags(request: pytest.FixtureRequest) -> str:
    """REPOSITORY with every tag of TAGS on one role; its reference `host/repository`."""
    fixture = "hub_registry" if request.param == "docker.io" else "ghcr_registry"
    role: RunningRole = request.getfixturevalue(fixture)
    role.reset()
    user = next(iter(TOKEN_USERS))
    image = build_image(AMD64, "paging", oci=False)
    with Pusher(role.host, credentials=(user, TOKEN_USERS[user])) as pusher:
        pusher.push(REPOSITORY, TAGS[0], image)
        for tag in TAGS[1:]:
            pusher.push_manifest(REPOSITORY, tag, image)
    return f"{role.host}/{REPOSITORY}"


def anonymous_client(host: str, page_size: int) -> RegistryClient:
    return RegistryClient(
        insecure=[host],
        credentials=CredentialStore(environ={"HOME": "/nonexistent"}),
        page_size=page_size,
    )


@pytest.mark.parametrize(("page_size", "pages"), [(100, 2), (40, 4), (130, 1)])
def test_every_tag_is_listed_across_pages(many_tags: str, page_size: int, pages: int) -> None:
    repository = parse_repository(many_tags)
    with anonymous_client(repository.registry, page_size) as client:
        listed = client.list_tags(repository)

    assert listed.pages == pages
    assert listed.incomplete == ""
    assert listed.tags == sorted(TAGS)


def test_probe_records_one_observation_per_tag(many_tags: str, tmp_path: Path) -> None:
    host = many_tags.split("/", 1)[0]
    out = tmp_path / "probe.csv"
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("PULL_MATRIX_")
    }
    environment["HOME"] = str(tmp_path / "home")
    arguments = ["-v", "probe", many_tags, "--insecure", host, "--out", str(out)]
    arguments += ["--platform", "linux/amd64", "--data", str(tmp_path / "data")]
    finished = subprocess.run(
        [sys.executable, "-m", "matrix", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    # The probe's page size is Docker Hub's 100, so it had to follow one `Link`.
    assert f"listed {len(TAGS)} tags of {many_tags} in 2 pages" in finished.stderr

    observations = load([out])
    assert len(observations) == len(TAGS)
    assert sorted(observations["tag"]) == sorted(TAGS)
    assert set(observations["platform"]) == {"linux/amd64"}
    assert set(observations["registry"]) == {host}
    assert set(observations["outcome"]) == {"ok"}
