"""The site model from sample observations: what the pages will show."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix.incidents import DEGRADED, HEALTHY
from matrix.site import generator
from matrix.site.model import SiteData, failing_now, image_slugs, load_data


@pytest.fixture(scope="module")
def data(sample_dir: Path) -> SiteData:
    return load_data(sample_dir)


def test_the_hub_latest_build_cache_is_failing_and_ghcr_is_the_alternative(data: SiteData) -> None:
    failures = {(f.registry, f.tag): f for f in failing_now(data, "kivy/buildozer")}
    latest = failures[("docker.io", "latest")]
    assert latest.verdict == "not-an-image"
    ghcr = [a for a in latest.alternatives if a.registry == "ghcr.io"]
    assert ghcr and ghcr[0].command.startswith("docker pull ghcr.io/kivy/buildozer@sha256:")
    probes = data.probes
    ghcr_digest = probes[(probes["registry"] == "ghcr.io") & (probes["tag"] == "latest")]["digest"]
    assert ghcr[0].digest == ghcr_digest.iloc[0]
    assert ("ghcr.io", "latest") not in failures


def test_registry_status_names_the_hub_degraded_and_ghcr_healthy(data: SiteData) -> None:
    status = data.status.set_index("registry")["status"].to_dict()
    assert status == {"docker.io": DEGRADED, "ghcr.io": HEALTHY}


def test_matrix_blocks_are_per_registry_and_platform_with_tags_newest_first(data: SiteData) -> None:
    image = data.image("kivy/buildozer")
    assert [(b.registry, b.platform) for b in image.blocks] == [
        ("docker.io", "linux/amd64"),
        ("docker.io", "linux/arm64"),
        ("ghcr.io", "linux/amd64"),
        ("ghcr.io", "linux/arm64"),
    ]
    rows = image.blocks[0].rows
    tags = [row.tag for row in rows]
    releases = [tag for tag in tags if tag[0].isdigit()]
    assert tags.index("latest") < tags.index("stable") < tags.index(releases[0])
    assert releases == sorted(releases, key=lambda t: tuple(map(int, t.split("."))), reverse=True)
    hub_latest = rows[tags.index("latest")]
    assert {c.verdict for c in hub_latest.cells if c} == {"not-an-image"}
    assert hub_latest.drift
    old_engine = image.engines.index("20.10.5+dfsg1")
    zstd = [
        row
        for row in rows
        if row.cells[old_engine]
        and not row.cells[old_engine].ok
        and row.cells[old_engine].verdict == "layer-extract-failed"
    ]
    assert zstd, "the sample's zstd tags fail on 20.10"


def test_finder_data_answers_per_engine_for_every_tag(data: SiteData) -> None:
    finder = generator.finder_data(data)
    image = finder["images"][0]
    block = image["blocks"][0]
    engine = block["engines"].index("20.10.5+dfsg1")
    verdicts = {
        image["tags"][i]: finder["classes"][code]
        for i, code in enumerate(block["verdicts"][engine])
        if code >= 0
    }
    assert verdicts["latest"] == "not-an-image"
    assert "ok" in verdicts.values() and "layer-extract-failed" in verdicts.values()
    assert len(image["tagSlugs"]) == len(image["tags"])


def test_image_slugs_are_readable_and_unique() -> None:
    assert image_slugs(["kivy/buildozer"]) == {"kivy/buildozer": "kivy-buildozer"}
    slugs = image_slugs(["a/b", "a-b"])
    assert len(set(slugs.values())) == 2
