"""Registry health and incidents from observation tables."""

from __future__ import annotations

import pandas as pd

from matrix import incidents
from matrix.observations import Observation, to_frame


def _pull(run: int, tag: str, verdict: str, registry: str = "docker.io", engine: str = "28.5.2"):
    return Observation(
        run_id=f"2026120{run}T030000Z-run{run}",
        registry=registry,
        repository="kivy/buildozer",
        tag=tag,
        platform="linux/amd64",
        client="docker",
        client_version=engine,
        method="pull",
        outcome="ok" if verdict == "ok" else "fail",
        observed_at=f"2026-12-0{run}T03:00:00Z",
        error_class="" if verdict == "ok" else verdict,
        verdict=verdict,
        message="" if verdict == "ok" else f"message for {verdict}",
        digest="sha256:" + "1" * 64,
    )


def _frame(rows: list[Observation]) -> pd.DataFrame:
    return to_frame(rows)


def test_an_incident_starts_at_the_first_failing_run_and_ends_when_the_tag_pulls_again() -> None:
    frame = _frame(
        [
            _pull(1, "latest", "ok"),
            _pull(2, "latest", "not-an-image"),
            _pull(3, "latest", "not-an-image"),
            _pull(4, "latest", "ok"),
        ]
    )
    found = incidents.incidents(frame)
    assert len(found) == 1
    incident = found.iloc[0]
    assert incident["tags"] == ("latest",)
    assert incident["verdict"] == "not-an-image"
    assert incident["start"] == "2026-12-02T03:00:00Z"
    assert incident["end"] == "2026-12-04T03:00:00Z"
    assert incident["last_seen"] == "2026-12-03T03:00:00Z"
    assert incident["runs"] == 2


def test_an_incident_that_has_not_ended_is_open_and_makes_the_registry_degraded() -> None:
    frame = _frame(
        [
            _pull(1, "latest", "ok"),
            _pull(1, "1.0", "ok"),
            _pull(1, "1.1", "ok"),
            _pull(2, "latest", "not-an-image"),
            _pull(2, "1.0", "ok"),
            _pull(2, "1.1", "ok"),
            _pull(3, "latest", "not-an-image"),
            _pull(3, "1.0", "ok"),
            _pull(3, "1.1", "ok"),
        ]
    )
    found = incidents.incidents(frame)
    assert list(found["end"]) == [""]
    status = incidents.registry_status(frame).iloc[0]
    assert status["status"] == incidents.DEGRADED
    assert status["since"] == "2026-12-02T03:00:00Z"
    assert status["failing_tags"] == ["latest"]


def test_a_run_where_most_tags_fail_is_an_outage_and_becomes_one_incident() -> None:
    frame = _frame(
        [
            *[_pull(1, tag, "ok", "ghcr.io") for tag in ("a", "b", "c")],
            *[_pull(2, tag, "registry-error", "ghcr.io") for tag in ("a", "b", "c")],
        ]
    )
    status = incidents.registry_status(frame).iloc[0]
    assert status["status"] == incidents.FAILING
    found = incidents.incidents(frame)
    assert len(found) == 1
    assert found.iloc[0]["tags"] == ("a", "b", "c")


def test_engine_incompatibilities_and_missing_platforms_are_not_incidents() -> None:
    frame = _frame(
        [
            _pull(1, "old", "ok", engine="20.10.24"),
            _pull(2, "old", "schema1-removed", engine="28.5.2"),
            _pull(2, "zstd", "layer-extract-failed", engine="20.10.24"),
            _pull(2, "arm-only", "no-platform-match", engine="28.5.2"),
        ]
    )
    assert incidents.incidents(frame).empty
    assert incidents.registry_status(frame).iloc[0]["status"] == incidents.HEALTHY


def test_recovery_makes_the_registry_healthy_since_the_run_that_recovered() -> None:
    frame = _frame(
        [
            _pull(1, "a", "rate-limited"),
            _pull(1, "b", "rate-limited"),
            _pull(2, "a", "ok"),
            _pull(2, "b", "ok"),
            _pull(3, "a", "ok"),
        ]
    )
    timeline = incidents.status_timeline(frame)
    assert list(timeline["status"]) == ["failing", "healthy", "healthy"]
    status = incidents.registry_status(frame).iloc[0]
    assert (status["status"], status["since"]) == ("healthy", "2026-12-02T03:00:00Z")


def test_pass_rate_is_per_registry_and_day_and_separates_registry_failures() -> None:
    frame = _frame(
        [
            _pull(1, "a", "ok"),
            _pull(1, "b", "layer-extract-failed"),
            _pull(1, "c", "registry-error"),
            _pull(1, "d", "ok"),
            _pull(2, "a", "ok", "ghcr.io"),
        ]
    )
    rates = incidents.pass_rate(frame).set_index(["registry", "day"])
    hub = rates.loc[("docker.io", "2026-12-01")]
    assert (hub["attempts"], hub["ok"]) == (4, 2)
    assert hub["rate"] == 0.5
    assert hub["health"] == 0.75
    assert rates.loc[("ghcr.io", "2026-12-02")]["rate"] == 1.0


def test_no_observations_give_empty_tables() -> None:
    empty = to_frame([])
    assert incidents.incidents(empty).empty
    assert incidents.registry_status(empty).empty
    assert incidents.pass_rate(empty).empty
    assert incidents.tag_status(empty).empty


def test_harness_faults_are_neither_incidents_nor_attempts() -> None:
    dead_engine = Observation(
        run_id="20261202T030000Z-run2",
        registry="docker.io",
        repository="kivy/buildozer",
        tag="a",
        platform="linux/amd64",
        client="docker",
        client_version="28.5.2",
        method="pull",
        outcome="error",
        observed_at="2026-12-02T03:00:00Z",
        message="engine at unix:///tmp/x.sock died",
    )
    frame = _frame([_pull(1, "a", "ok"), dead_engine])
    assert incidents.incidents(frame).empty
    assert incidents.registry_status(frame).iloc[0]["status"] == incidents.HEALTHY
    assert list(incidents.pass_rate(frame)["attempts"]) == [1]
