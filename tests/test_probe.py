"""The probe against a real distribution registry on loopback, and its failure handling."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from matrix.lab.images import SHAPES, publish_shapes
from matrix.observations import read_shard, write_observations
from matrix.probe import Prober, probe_repository
from matrix.reference import parse_repository
from matrix.registry import CredentialStore, ManifestStore, RegistryClient
from tests.conftest import TokenRegistry
from tests.registry import builders as b
from tests.registry.fake import make_client, manifest_response

pytestmark = pytest.mark.registry

PLATFORMS = ["linux/amd64", "linux/arm64"]


@pytest.fixture(scope="module")
def shapes(registry) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    name = "probe/shapes"
    return f"{registry.host}/{name}", publish_shapes(registry.host, name)


def client_for(host: str, store: Path | None = None) -> RegistryClient:
    return RegistryClient(
        insecure=[host],
        credentials=CredentialStore(environ={"HOME": "/nonexistent"}),
        store=ManifestStore(store) if store else None,
    )


def by_tag_and_platform(run_observations: list) -> dict[tuple[str, str], object]:  # type: ignore[type-arg]
    return {(o.tag, o.platform): o for o in run_observations}


def test_probe_of_every_shape_matches_the_registry(shapes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, published = shapes
    repository = parse_repository(reference)

    with client_for(repository.registry, tmp_path) as client:
        run = probe_repository(client, repository, "t1", PLATFORMS)

    seen = by_tag_and_platform(run.observations)
    assert {tag for tag, _ in seen} == set(SHAPES)
    for tag, digest in published.items():
        assert seen[(tag, "linux/amd64")].digest == digest  # type: ignore[attr-defined]

    amd = {tag: seen[(tag, "linux/amd64")] for tag in SHAPES}
    assert {t: o.kind for t, o in amd.items()} == {  # type: ignore[attr-defined]
        "v2s2": "image",
        "oci": "image",
        "schema1": "schema1",
        "zstd": "image",
        "arm-only": "index",
        "build-cache-on-tag": "not-an-image",
    }
    assert {t: o.verdict for t, o in amd.items()} == {  # type: ignore[attr-defined]
        "v2s2": "ok",
        "oci": "ok",
        "schema1": "ok",
        "zstd": "ok",
        "arm-only": "no-platform-match",
        "build-cache-on-tag": "not-an-image",
    }
    cache = amd["build-cache-on-tag"]
    assert cache.cause.startswith("this tag does not point at an image")  # type: ignore[attr-defined]
    arm = seen[("arm-only", "linux/arm64")]
    assert arm.outcome == "ok" and arm.platform_digest  # type: ignore[attr-defined]


def test_predictions_in_details_match_the_measured_engines(shapes) -> None:  # type: ignore[no-untyped-def]
    reference, _ = shapes
    repository = parse_repository(reference)
    with client_for(repository.registry) as client:
        run = probe_repository(client, repository, "t2", ["linux/amd64"])

    predicted = {o.tag: json.loads(o.details)["predictions"] for o in run.observations}
    measured = {  # 20.10.x and 26.1.x / 28.5.x columns of the measured table
        "v2s2": ("ok", "ok", "ok"),
        "oci": ("ok", "ok", "ok"),
        "schema1": ("ok", "schema1-disabled", "schema1-removed"),
        "zstd": ("layer-extract-failed", "ok", "ok"),
        "arm-only": ("no-platform-match",) * 3,
        "build-cache-on-tag": ("no-platform-match", "registry-error", "registry-error"),
    }
    for tag, (old, middle, new) in measured.items():
        assert (predicted[tag]["20.10"], predicted[tag]["26.1"], predicted[tag]["28.5"]) == (
            old,
            middle,
            new,
        ), tag


def test_second_probe_of_unchanged_tags_makes_no_manifest_get(shapes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, _ = shapes
    repository = parse_repository(reference)

    with client_for(repository.registry, tmp_path) as first:
        probe_repository(first, repository, "t3", PLATFORMS)
    with client_for(repository.registry, tmp_path) as second:
        run = probe_repository(second, repository, "t4", PLATFORMS)

    assert first.manifest_gets[repository.registry] >= len(SHAPES)
    assert second.manifest_gets[repository.registry] == 0
    assert second.manifest_heads[repository.registry] == len(SHAPES)
    assert {o.tag for o in run.observations} == set(SHAPES)


def test_verify_blobs_downloads_and_checks_layers(shapes) -> None:  # type: ignore[no-untyped-def]
    reference, _ = shapes
    repository = parse_repository(reference)
    with client_for(repository.registry) as client:
        run = probe_repository(
            client, repository, "t5", ["linux/amd64"], tags=["oci", "zstd"], verify_blobs=True
        )

    assert [o.outcome for o in run.observations] == ["ok", "ok"]


def test_unknown_tag_is_recorded_as_manifest_unknown(shapes) -> None:  # type: ignore[no-untyped-def]
    reference, _ = shapes
    repository = parse_repository(reference)
    with client_for(repository.registry) as client:
        run = probe_repository(client, repository, "t6", ["linux/amd64"], tags=["nope", "oci"])

    missing, present = run.observations
    assert (missing.outcome, missing.error_class, missing.http_status) == (
        "fail",
        "manifest-unknown",
        404,
    )
    assert present.outcome == "ok"


def test_token_registry_is_probed_through_the_bearer_flow(
    token_registry: TokenRegistry, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    user, password = next(iter(token_registry.users.items()))
    publish_shapes(token_registry.host, "probe/tokens", credentials=(user, password))
    repository = parse_repository(f"{token_registry.host}/probe/tokens")
    caplog.set_level(logging.DEBUG, logger="matrix")

    with client_for(repository.registry) as client:
        run = probe_repository(client, repository, "t7", ["linux/amd64"])
    out = write_observations(run.observations, tmp_path / "obs.csv")

    verdicts = {o.tag: o.verdict for o in run.observations}
    assert verdicts["oci"] == "ok" and verdicts["build-cache-on-tag"] == "not-an-image"
    assert password not in caplog.text and password not in out.read_text()
    assert "Bearer " not in caplog.text and "Bearer " not in out.read_text()


# Failures that a real registry does not produce on request ------------------------------------


def test_a_lying_registry_is_recorded_and_the_run_goes_on() -> None:
    good = b.image_manifest(seed="good")

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": ["liar", "broken", "good"]})
        if path.endswith("/manifests/liar"):
            return manifest_response(request, good, b.digest_of("a different digest"))
        if path.endswith("/manifests/broken"):
            return httpx.Response(500, json={"errors": [{"code": "UNKNOWN", "message": "boom"}]})
        if "/manifests/" in path:
            return manifest_response(request, good)
        if "/blobs/" in path:
            return httpx.Response(200, headers={"Content-Length": "1"})
        return httpx.Response(404)

    client, _ = make_client(handler, attempts=1)
    repository = parse_repository("registry.test/team/app")
    prober = Prober(client, "t8", ["linux/amd64"])
    for tag in prober.list_tags(repository):
        prober.probe_tag(repository, tag)

    seen = {o.tag: o for o in prober.run.observations}
    assert seen["liar"].error_class == "digest-mismatch" and seen["liar"].outcome == "fail"
    assert seen["broken"].error_class == "registry-error" and seen["broken"].http_status == 500
    assert seen["good"].outcome == "ok"


def test_failed_tag_list_is_recorded(tmp_path: Path) -> None:
    client, _ = make_client(lambda r: httpx.Response(401, json={"errors": [{"code": "DENIED"}]}))
    repository = parse_repository("registry.test/private/app")

    run = probe_repository(client, repository, "t9", PLATFORMS)
    path = write_observations(run.observations, tmp_path / "obs.csv")

    frame = read_shard(path)
    assert list(frame["tag"]) == ["", ""]
    assert set(frame["error_class"]) == {"auth-denied"}
    assert set(frame["outcome"]) == {"fail"}


def test_missing_layer_blob_is_blob_unknown() -> None:
    image = b.image_manifest(seed="no-layer")

    def handler(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return manifest_response(request, image)
        return httpx.Response(404)

    client, _ = make_client(handler)
    repository = parse_repository("registry.test/team/app")
    run = probe_repository(client, repository, "t10", ["linux/amd64"], tags=["1.0"])

    [observation] = run.observations
    assert (observation.outcome, observation.error_class) == ("fail", "blob-unknown")
    assert observation.kind == "image"


def test_write_observations_replaces_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "obs.csv"
    target.write_text("old content")
    client, _ = make_client(lambda r: httpx.Response(404))

    run = probe_repository(client, parse_repository("r.test/a/b"), "t11", ["linux/amd64"])
    write_observations(run.observations, target)

    assert read_shard(target)["run_id"].tolist() == ["t11"]
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["obs.csv"]


# Against the lab's Docker Hub stand-in: pull limit headers, counted GETs, 429, faults ----------


@pytest.fixture(scope="module")
def hub_shapes(hub_registry) -> str:  # type: ignore[no-untyped-def]
    from tests.conftest import TOKEN_USERS

    user = next(iter(TOKEN_USERS))
    publish_shapes(hub_registry.host, "probe/hub", credentials=(user, TOKEN_USERS[user]))
    return f"{hub_registry.host}/probe/hub"


def hub_counters(hub_registry) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return httpx.get(f"{hub_registry.url}/_lab/counters").json()["clients"].get("127.0.0.1", {})


def quick_client(host: str, store: Path | None = None) -> RegistryClient:
    from matrix.registry import RetryPolicy

    return RegistryClient(
        insecure=[host],
        credentials=CredentialStore(environ={"HOME": "/nonexistent"}),
        store=ManifestStore(store) if store else None,
        retry=RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.05),
    )


def test_hub_gets_are_counted_like_the_hub_counts_them(  # type: ignore[no-untyped-def]
    hub_registry, hub_shapes: str, tmp_path: Path
) -> None:
    hub_registry.reset()
    repository = parse_repository(hub_shapes)

    with quick_client(repository.registry, tmp_path) as first:
        run = probe_repository(first, repository, "h1", ["linux/amd64"])
    counted = hub_counters(hub_registry)["manifest_get"]
    with quick_client(repository.registry, tmp_path) as second:
        probe_repository(second, repository, "h2", ["linux/amd64"])

    assert first.manifest_gets[repository.registry] == counted
    assert hub_counters(hub_registry)["manifest_get"] == counted  # the second run GETs nothing
    assert second.manifest_gets[repository.registry] == 0
    oci = next(o for o in run.observations if o.tag == "oci")
    assert oci.ratelimit_limit == 100
    assert oci.ratelimit_remaining is not None and oci.ratelimit_remaining < 100
    assert oci.ratelimit_source == "127.0.0.1"


def test_spent_pull_limit_is_recorded_as_rate_limited(  # type: ignore[no-untyped-def]
    hub_registry, hub_shapes: str, tmp_path: Path
) -> None:
    hub_registry.reset()
    httpx.post(f"{hub_registry.url}/_lab/limit", json={"pulls": 0}).raise_for_status()
    repository = parse_repository(hub_shapes)
    try:
        with quick_client(repository.registry, tmp_path) as client:
            run = probe_repository(client, repository, "h3", ["linux/amd64"], tags=["oci", "v2s2"])
    finally:
        hub_registry.reset()

    for observation in run.observations:
        assert (observation.outcome, observation.error_class) == ("fail", "rate-limited")
        assert observation.http_status == 429
        assert observation.ratelimit_remaining == 0


def test_one_registry_500_is_retried_and_a_reset_connection_recorded(  # type: ignore[no-untyped-def]
    hub_registry, hub_shapes: str
) -> None:
    hub_registry.reset()
    faults = [
        {"path": "/manifests/oci$", "status": 500, "times": 1},
        {"path": "/manifests/v2s2$", "reset": True},
    ]
    httpx.post(f"{hub_registry.url}/_lab/faults", json=faults).raise_for_status()
    repository = parse_repository(hub_shapes)
    try:
        with quick_client(repository.registry) as client:
            run = probe_repository(client, repository, "h4", ["linux/amd64"], tags=["oci", "v2s2"])
    finally:
        hub_registry.reset()

    seen = {o.tag: o for o in run.observations}
    assert seen["oci"].outcome == "ok"
    assert (seen["v2s2"].outcome, seen["v2s2"].error_class) == ("fail", "network")


def test_ghcr_role_is_probed_with_its_token_shape(ghcr_registry) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import TOKEN_USERS

    user = next(iter(TOKEN_USERS))
    publish_shapes(ghcr_registry.host, "probe/ghcr", credentials=(user, TOKEN_USERS[user]))
    repository = parse_repository(f"{ghcr_registry.host}/probe/ghcr")

    with quick_client(repository.registry) as client:
        run = probe_repository(client, repository, "g1", ["linux/amd64"], tags=["oci", "zstd"])

    assert [o.verdict for o in run.observations] == ["ok", "ok"]
    assert run.observations[1].details and "zstd" in run.observations[1].details
