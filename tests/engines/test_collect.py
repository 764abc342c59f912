"""The main job end to end: the lab's two registry roles, the image family, the four engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix.collect import collect
from matrix.config import Config, EngineConfig, ImageConfig, RegistryConfig
from matrix.engines.model import Engine
from matrix.lab.images import publish_family
from matrix.lab.registries import RunningRole
from matrix.observations import load
from tests.conftest import TOKEN_USERS

pytestmark = pytest.mark.engines

REPOSITORY = "kivy/buildozer"
USER = next(iter(TOKEN_USERS.items()))


def _gets(role: RunningRole) -> int:
    clients = role.proxy.state.snapshot()["clients"]
    return sum(count["manifest_get"] for count in clients.values())


def _config(hub: RunningRole, ghcr: RunningRole, engines: list[Engine], data: Path) -> Config:
    return Config(
        images=(
            ImageConfig(
                name=REPOSITORY,
                refs=(f"{hub.host}/{REPOSITORY}", f"{ghcr.host}/{REPOSITORY}"),
                platforms=("linux/amd64",),
            ),
        ),
        engines=EngineConfig(
            provisioner="host", versions=tuple(e.version for e in engines), endpoint=""
        ),
        registries={
            hub.host: RegistryConfig(hub.host, insecure=True, role="docker.io"),
            ghcr.host: RegistryConfig(ghcr.host, insecure=True, role="ghcr.io"),
        },
        data_dir=data,
    )


def test_collect_explains_the_incident_and_a_second_run_costs_nothing(
    hub_registry: RunningRole,
    ghcr_registry: RunningRole,
    lab_engines: list[Engine],
    tmp_path: Path,
) -> None:
    hub_registry.reset()
    ghcr_registry.reset()
    credentials = {hub_registry.host: USER, ghcr_registry.host: USER}
    publish_family(hub_registry.host, ghcr_registry.host, REPOSITORY, credentials=credentials)
    config = _config(hub_registry, ghcr_registry, lab_engines, tmp_path / "data")
    endpoints = [engine.endpoint for engine in lab_engines]

    first = collect(config, endpoints=endpoints)

    pulls = load([tmp_path / "data"])
    pulls = pulls[pulls["method"] == "pull"]
    assert first.shard is not None and len(pulls) == len(first.pulls) > 0
    assert set(pulls["outcome"]) <= {"ok", "fail"}, "no engine may fail as a harness error"
    hub_latest = pulls[(pulls["registry"] == hub_registry.host) & (pulls["tag"] == "latest")]
    ghcr_latest = pulls[(pulls["registry"] == ghcr_registry.host) & (pulls["tag"] == "latest")]
    assert len(hub_latest) == len(ghcr_latest) == len(lab_engines)
    assert set(hub_latest["verdict"]) == {"not-an-image"}
    assert "build" in " ".join(hub_latest["cause"]).lower()
    symptoms = dict(zip(hub_latest["client_version"], hub_latest["error_class"], strict=True))
    for version, symptom in symptoms.items():
        expected = "no-platform-match" if version.startswith("20.10") else "registry-error"
        assert symptom == expected, version
    assert set(ghcr_latest["verdict"]) == {"ok"}
    assert not pulls["finding"].str.startswith("tag-moved").any(), "digests moved in a still lab"

    gets_before = _gets(hub_registry) + _gets(ghcr_registry)
    second = collect(config, endpoints=endpoints)
    gets_after = _gets(hub_registry) + _gets(ghcr_registry)

    assert second.pulls == [] and second.plan.now == []
    assert second.counted_gets() == 0
    assert gets_after == gets_before, "the registries counted manifest GETs on an unchanged run"
    assert len(second.probes) == len(first.probes)
