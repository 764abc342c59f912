"""Pulling each image shape with each of the lab's real engines.

The expected classes are what these engines did on a machine of this project's kind (the image
shape cases): every cell of that table is one test here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from matrix.analysis import Analysis, analyse
from matrix.engines.model import Engine, connect, is_alive
from matrix.engines.provision import host_engines, provision
from matrix.engines.pull import analysis_key, pull_many, pull_one
from matrix.lab import engines as lab
from matrix.lab.registries import RunningRole
from matrix.lab.registry import Registry
from matrix.lab.state import Part
from matrix.observations import Observation
from matrix.reference import parse_reference
from matrix.registry import RegistryClient
from tests.cases import ENGINE_VERSIONS as VERSIONS
from tests.cases import MEASURED as EXPECTED
from tests.conftest import TOKEN_USERS
from tests.engines.conftest import SHAPES_REPOSITORY, engine_of
from tests.lab.helpers import login, push_unique_image

pytestmark = pytest.mark.engines

CELLS = [
    (shape, version, expected)
    for shape, row in EXPECTED.items()
    for version, expected in zip(VERSIONS, row, strict=True)
]
AMD64 = "linux/amd64"


def _reference(registry: Registry, shape: str) -> str:
    return f"{registry.host}/{SHAPES_REPOSITORY}:{shape}"


def _analyses(registry: Registry, references: list[str]) -> dict[tuple[str, str, str], Analysis]:
    found = {}
    with RegistryClient(insecure=[registry.host]) as client:
        for reference in references:
            parsed = parse_reference(reference)
            repository = parsed.repository
            manifest = client.fetch_tag(repository, parsed.tag or "latest")
            found[analysis_key(reference)] = analyse(
                manifest,
                lambda digest, repository=repository: client.manifest(repository, digest),
                lambda digest, size, repository=repository: client.read_blob(
                    repository, digest, size
                ),
            )
    return found


@pytest.fixture(scope="module")
def pulled(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str]
) -> dict[tuple[str, str], Observation]:
    """Every shape pulled once by every engine, with the shapes' format analysis at hand."""
    references = [_reference(registry, shape) for shape in EXPECTED]
    observations = pull_many(
        lab_engines, references, [AMD64], analyses=_analyses(registry, references)
    )
    by_cell = {}
    for observation in observations:
        version = observation.client_version.split("+", 1)[0]
        by_cell[(observation.tag, version)] = observation
    return by_cell


@pytest.mark.parametrize(("shape", "version", "expected"), CELLS)
def test_each_engine_gives_the_measured_outcome_for_each_shape(
    pulled: dict[tuple[str, str], Observation],
    shapes: dict[str, str],
    shape: str,
    version: str,
    expected: str,
) -> None:
    observation = pulled[(shape, version)]

    assert observation.error_class == expected, observation.message
    assert observation.method == "pull"
    assert observation.client == "docker"
    if expected == "ok":
        assert observation.outcome == "ok"
        assert observation.digest == shapes[shape]
        assert observation.bytes and observation.bytes > 0
        assert observation.message == ""
    else:
        assert observation.outcome == "fail"
        assert observation.message
        assert observation.digest == ""


@pytest.mark.parametrize(("shape", "version", "expected"), CELLS)
def test_predictions_from_the_tags_analysis_match_what_the_engine_did(
    pulled: dict[tuple[str, str], Observation], shape: str, version: str, expected: str
) -> None:
    observation = pulled[(shape, version)]

    assert observation.predicted == expected
    assert observation.finding == ""


ARM64_EXPECTED = {
    "arm-only": ("ok",) * 4,
    "build-cache-on-tag": EXPECTED["build-cache-on-tag"],
}
ARM64_CELLS = [
    (shape, version, expected)
    for shape, row in ARM64_EXPECTED.items()
    for version, expected in zip(VERSIONS, row, strict=True)
]


@pytest.fixture(scope="module")
def pulled_arm64(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str]
) -> dict[tuple[str, str], Observation]:
    """The index shapes pulled for linux/arm64 (engines pull any platform; nothing runs)."""
    references = [_reference(registry, shape) for shape in ARM64_EXPECTED]
    observations = pull_many(
        lab_engines, references, ["linux/arm64"], analyses=_analyses(registry, references)
    )
    return {(o.tag, o.client_version.split("+", 1)[0]): o for o in observations}


@pytest.mark.parametrize(("shape", "version", "expected"), ARM64_CELLS)
def test_index_shapes_for_arm64_give_the_measured_outcome(
    pulled_arm64: dict[tuple[str, str], Observation],
    shapes: dict[str, str],
    shape: str,
    version: str,
    expected: str,
) -> None:
    observation = pulled_arm64[(shape, version)]

    assert observation.platform == "linux/arm64"
    assert observation.error_class == expected, observation.message
    assert observation.predicted == expected
    if expected == "ok":
        # The engine resolves the tag to the index; the platform's manifest is named apart.
        assert observation.digest == shapes[shape]
        assert observation.platform_digest.startswith("sha256:")
        assert observation.platform_digest != observation.digest


def test_engine_messages_are_kept_word_for_word(
    pulled: dict[tuple[str, str], Observation],
) -> None:
    for version in ("20.10.5", "20.10.24"):
        assert pulled[("zstd", version)].message == (
            "failed to register layer: ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"
        )
    assert pulled[("schema1", "26.1.5")].message.startswith(
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
        "schema 1 support is disabled by default"
    )
    assert pulled[("schema1", "28.5.2")].message.startswith(
        "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been "
        "removed."
    )
    for version in ("26.1.5", "28.5.2"):
        message = pulled[("build-cache-on-tag", version)].message
        assert "received unexpected HTTP status: 500 Internal Server Error" in message


def test_a_build_cache_export_on_a_tag_is_explained_on_every_engine(
    pulled: dict[tuple[str, str], Observation],
) -> None:
    for version in VERSIONS:
        observation = pulled[("build-cache-on-tag", version)]
        assert observation.verdict == "not-an-image"
        assert "does not point at an image" in observation.cause
        assert observation.kind == "not-an-image"


def test_pulls_leave_no_image_behind(
    pulled: dict[tuple[str, str], Observation], lab_engines: list[Engine], registry: Registry
) -> None:
    for engine in lab_engines:
        client = docker.APIClient(base_url=engine.endpoint, version="auto")
        try:
            assert client.images(name=f"{registry.host}/{SHAPES_REPOSITORY}") == []
        finally:
            client.close()


def test_transient_failures_are_retried_unless_the_tag_explains_them(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str]
) -> None:
    engine = engine_of(lab_engines, "28.5.2")
    reference = _reference(registry, "build-cache-on-tag")
    pauses: list[float] = []

    blind = pull_one(engine, reference, AMD64, pauses=(0.1, 0.2), sleep=pauses.append)
    assert blind.error_class == "registry-error"
    assert pauses == [0.1, 0.2]

    pauses.clear()
    analysis = _analyses(registry, [reference])[analysis_key(reference)]
    explained = pull_one(
        engine, reference, AMD64, analysis=analysis, pauses=(0.1, 0.2), sleep=pauses.append
    )
    assert explained.verdict == "not-an-image"
    assert pauses == []


def test_host_engines_report_the_version_they_run(lab_engines: list[Engine]) -> None:
    endpoints = [engine.endpoint for engine in lab_engines]
    found = host_engines(endpoints)
    assert [engine.version for engine in found] == [engine.version for engine in lab_engines]
    assert connect(endpoints[0]).version == lab_engines[0].version


# Dead engines -----------------------------------------------------------------------------------


@pytest.fixture
def refusing_socket() -> Iterator[str]:
    """A Unix socket that exists but refuses connections, as a crashed engine leaves it."""
    directory = Path(tempfile.mkdtemp(prefix="pm-dead-", dir="/tmp"))
    path = directory / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()
    try:
        yield f"unix://{path}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_dead_engines_give_errors_and_the_others_go_on(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str], refusing_socket: str
) -> None:
    alive = engine_of(lab_engines, "20.10.24")
    gone = Engine("unix:///tmp/pm-no-such-dir/docker.sock", "27.3.1", name="gone")
    refusing = Engine(refusing_socket, "26.1.5", name="refusing")
    references = [_reference(registry, "v2s2"), _reference(registry, "oci")]

    observations = pull_many([gone, alive, refusing], references, [AMD64])

    assert len(observations) == 6
    by_engine = {
        version: [o for o in observations if o.client_version == version]
        for version in (alive.version, "27.3.1", "26.1.5")
    }
    assert [o.outcome for o in by_engine[alive.version]] == ["ok", "ok"]
    for version in ("27.3.1", "26.1.5"):
        for observation in by_engine[version]:
            assert observation.outcome == "error"
            assert observation.error_class == ""
            assert observation.message


def test_an_engine_that_dies_between_pulls_gets_errors_for_the_rest(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str]
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    try:
        [part] = lab.up(directory, [], versions=["20.10.24"])
        doomed = Engine(part.endpoint, part.version, name="doomed")
        references = [_reference(registry, shape) for shape in ("v2s2", "oci", "zstd")]

        def kill_after_first(observation: Observation) -> None:
            if observation.client_version == doomed.version and observation.tag == "v2s2":
                os.kill(part.pids[-1], signal.SIGKILL)
                lab._wait_gone([part.pids[-1]], 10)

        survivor = engine_of(lab_engines, "26.1.5")
        observations = pull_many(
            [doomed, survivor], references, [AMD64], on_observation=kill_after_first
        )
    finally:
        lab.down(directory)
        shutil.rmtree(directory, ignore_errors=True)

    doomed_outcomes = [o.outcome for o in observations if o.client_version == doomed.version]
    survivor_outcomes = [o.outcome for o in observations if o.client_version == survivor.version]
    assert doomed_outcomes == ["ok", "error", "error"]
    assert survivor_outcomes == ["ok", "ok", "ok"]


SLOW_REPOSITORY = "engines/slow-blobs"
ALICE = ("alice", TOKEN_USERS["alice"])
BLOB_LATENCY = 10.0


def _kill_when_blobs_are_held(role: RunningRole, part: Part, killed: threading.Event) -> None:
    """SIGKILL the engine's dockerd once the proxy holds back a blob answer of the slow tag.

    Both engines ask for the slow tag's blobs at about the same time; one second after the
    first delayed answer, the doomed engine is waiting on its own (ten seconds long).
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        faults = role.proxy.state.snapshot()["faults"]
        if faults and faults[0]["applied"] >= 1:
            time.sleep(1.0)
            os.kill(part.pids[-1], signal.SIGKILL)
            killed.set()
            return
        time.sleep(0.05)


def test_an_engine_killed_in_the_middle_of_a_pull_gets_an_error_and_the_run_goes_on(
    lab_engines: list[Engine],
    registry: Registry,
    shapes: dict[str, str],
    hub_registry: RunningRole,
) -> None:
    hub_registry.reset()
    with httpx.Client() as client:
        login(client, hub_registry.url, SLOW_REPOSITORY, "pull,push", auth=ALICE)
        digest = push_unique_image(client, hub_registry.url, SLOW_REPOSITORY, "slow")
    references = [f"{hub_registry.host}/{SLOW_REPOSITORY}:slow", _reference(registry, "v2s2")]
    directory = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    killed = threading.Event()
    try:
        [part] = lab.up(directory, [], versions=["28.5.2"])
        doomed = Engine(part.endpoint, part.version, name="doomed", client="doomed")
        survivor = engine_of(lab_engines, "26.1.5")
        fault = {"path": f"/{SLOW_REPOSITORY}/blobs/", "method": "GET", "latency": BLOB_LATENCY}
        httpx.post(f"{hub_registry.url}/_lab/faults", json=fault).raise_for_status()
        killer = threading.Thread(
            target=_kill_when_blobs_are_held, args=(hub_registry, part, killed), daemon=True
        )
        killer.start()

        observations = pull_many([doomed, survivor], references, [AMD64])
        killer.join()
    finally:
        hub_registry.reset()
        lab.down(directory)
        shutil.rmtree(directory, ignore_errors=True)

    assert killed.is_set()
    dying, after = [o for o in observations if o.client == "doomed"]
    assert dying.outcome == "error"
    assert dying.error_class == ""
    assert dying.message.startswith(f"engine at {doomed.endpoint} stopped answering")
    # It was in the middle of the pull, waiting for a held-back blob, when it died.
    assert dying.duration_s >= 1.0
    assert after.outcome == "error"
    assert after.message.startswith("not pulled: ")
    kept = [o for o in observations if o.client_version == survivor.version]
    assert [(o.outcome, o.digest) for o in kept] == [("ok", digest), ("ok", shapes["v2s2"])]


def test_a_pull_starts_without_the_image_and_removes_it_with_every_tag(
    lab_engines: list[Engine], registry: Registry, shapes: dict[str, str]
) -> None:
    engine = engine_of(lab_engines, "26.1.5")
    reference = _reference(registry, "oci")
    client = docker.APIClient(base_url=engine.endpoint, version="auto")
    try:
        client.pull(f"{registry.host}/{SHAPES_REPOSITORY}", tag="oci", platform=AMD64)
        client.tag(reference, "local/copy", "kept")
        assert client.images(name="local/copy")

        observation = pull_one(engine, reference, AMD64)

        assert observation.outcome == "ok"
        assert observation.digest == shapes["oci"]
        assert client.images(name="local/copy") == []
        assert client.images(name=f"{registry.host}/{SHAPES_REPOSITORY}") == []
    finally:
        client.close()


def test_lab_provisioner_reuses_the_running_engines_under_the_client_name_given(
    lab_engines: list[Engine], engine_lab_dir: Path
) -> None:
    with provision(
        "lab", versions=["20.10.5", "sid"], lab_dir=engine_lab_dir, client="moby"
    ) as got:
        assert [engine.client for engine in got] == ["moby", "moby"]
        assert [engine.endpoint for engine in got] == [
            engine_of(lab_engines, "20.10.5").endpoint,
            engine_of(lab_engines, "28.5.2").endpoint,
        ]
    # The lab's engines outlive the block; `lab down` stops them.
    assert is_alive(got[0].endpoint)
