"""Sample data and built sites shared by the site tests.

`crafted` observations carry registry-supplied strings with HTML in them (tag, message, cause,
annotations), the way a hostile or broken registry could send them; the site must show them as
text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrix.observations import Observation, write_shard
from matrix.site.build import build_site
from matrix.site.sample import generate

from .labdata import write_lab_data

XSS_TAG = "<img src=x onerror=alert(1)>"
XSS_MESSAGE = "<script>alert('message')</script> received unexpected HTTP status: 500"
XSS_CAUSE = '<b onmouseover="alert(3)">cause</b>'
XSS_ANNOTATION = "<img src=x onerror=alert(4)>"
ODD_TAGS = ("../../etc/passwd", "Latest", "a b", "tag?x=1#y", "é-unicode", "__proto__")


def crafted_rows(run_id: str = "20261203T120000Z-crafted") -> list[Observation]:
    details = json.dumps(
        {"kind": "image", "annotations": {"org.opencontainers.image.title": XSS_ANNOTATION}}
    )
    rows = [
        Observation(
            run_id=run_id,
            registry="docker.io",
            repository="kivy/buildozer",
            tag=tag,
            platform="linux/amd64",
            client="probe",
            client_version="",
            method="probe",
            outcome="ok",
            observed_at="2026-12-03T12:00:00Z",
            digest="sha256:" + "ab" * 32,
            kind="image",
            details=details,
        )
        for tag in (XSS_TAG, *ODD_TAGS)
    ]
    rows.append(
        Observation(
            run_id=run_id,
            registry="docker.io",
            repository="kivy/buildozer",
            tag=XSS_TAG,
            platform="linux/amd64",
            client="docker",
            client_version="28.5.2+dfsg1",
            method="pull",
            outcome="fail",
            observed_at="2026-12-03T12:00:01Z",
            error_class="registry-error",
            verdict="registry-error",
            message=XSS_MESSAGE,
            cause=XSS_CAUSE,
            digest="sha256:" + "ab" * 32,
        )
    )
    return rows


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample: 40 tags, 10 daily runs, 8 engines, two registries, plus crafted rows."""
    directory = tmp_path_factory.mktemp("observations")
    generate(directory, tags=40, days=10)
    write_shard([*crafted_rows(), tag_list_failure()], directory, "20261203T120000Z-crafted")
    return directory


@pytest.fixture(scope="session")
def built_site(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(sample_dir, out)
    return out


@pytest.fixture(scope="session")
def empty_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("empty-site")
    build_site(tmp_path_factory.mktemp("no-data"), out)
    yield out


def tag_list_failure(run_id: str = "20261203T120000Z-crafted") -> Observation:
    """A probe that could not list the tags at all: it has no tag."""
    return Observation(
        run_id=run_id,
        registry="ghcr.io",
        repository="kivy/buildozer",
        tag="",
        platform="",
        client="probe",
        client_version="0.1.0",
        method="probe",
        outcome="error",
        observed_at="2026-12-03T12:00:02Z",
        message="probe fault: connection pool closed",
    )


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One day of lab-like observations (see labdata)."""
    return write_lab_data(tmp_path_factory.mktemp("lab-data"))


@pytest.fixture(scope="session")
def lab_site(lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lab-site") / "site"
    build_site(lab_dir, out)
    return out
