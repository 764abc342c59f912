from pathlib import Path

import pandas as pd
import pytest

from matrix.observations import Observation, to_frame
from matrix.plan import (
    Plan,
    PlannedPull,
    counted_gets,
    engine_matches,
    plan_for_config,
    plan_pulls,
    tag_order,
)

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PLATFORMS = ("linux/amd64", "linux/arm64")
CONFIG = Path(__file__).resolve().parents[1] / "pull-matrix.toml"
ENGINES = [("docker", "29"), ("docker", "20.10")]


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def probe_rows(
    tags: dict[str, int],
    *,
    registry: str = "docker.io",
    media_type: str = INDEX,
    at: str = "2026-12-01T00:00:00Z",
    remaining: int | None = None,
) -> list[Observation]:
    rows = []
    for tag, digest in tags.items():
        for platform in PLATFORMS:
            rows.append(
                Observation(
                    run_id=f"probe-{at}",
                    registry=registry,
                    repository="kivy/buildozer",
                    tag=tag,
                    platform=platform,
                    client="pull-matrix",
                    client_version="0.1.0",
                    method="probe",
                    outcome="ok",
                    observed_at=at,
                    digest=_digest(digest),
                    media_type=media_type,
                    kind="index" if media_type == INDEX else "image",
                    ratelimit_remaining=remaining,
                )
            )
    return rows


def pulled(plan_items: list[PlannedPull], at: str, *, outcome: str = "ok") -> list[Observation]:
    """What the engines record after doing the planned pulls (full engine versions)."""
    return [
        Observation(
            run_id=f"pull-{at}",
            registry=pull.registry,
            repository=pull.repository,
            tag=pull.tag,
            platform=pull.platform,
            client=pull.engine,
            client_version=f"{pull.version}.1",
            method="pull",
            outcome=outcome,
            error_class="" if outcome == "ok" else "network",
            observed_at=at,
            digest=pull.digest if outcome == "ok" else "",
        )
        for pull in plan_items
    ]


def frame(*groups: list[Observation]) -> pd.DataFrame:
    return to_frame([row for group in groups for row in group])


def test_first_plan_pulls_everything_in_priority_order() -> None:
    probe = frame(probe_rows({"1.0": 1, "latest": 2, "2.10": 3, "stable": 3, "2.9": 4}))

    plan = plan_pulls(frame(), probe, ENGINES, {})

    assert plan.deferred == []
    assert len(plan.now) == 5 * 2 * 2
    order = list(dict.fromkeys(pull.tag for pull in plan.now))
    assert order == ["latest", "stable", "2.10", "2.9", "1.0"]
    assert {pull.reason for pull in plan.now} == {"new engine"}
    assert plan.gets_now == {"docker.io": 5 * 2 * 2 * 2}


def test_multi_platform_pull_is_counted_per_platform() -> None:
    assert counted_gets(INDEX, "index") == 2
    assert counted_gets(MANIFEST, "image") == 1
    assert counted_gets("", "") == 2

    plan = plan_pulls(frame(), frame(probe_rows({"latest": 1})), [("docker", "29")], {})
    assert [(pull.platform, pull.gets) for pull in plan.now] == [
        ("linux/amd64", 2),
        ("linux/arm64", 2),
    ]
    single = plan_pulls(
        frame(), frame(probe_rows({"latest": 1}, media_type=MANIFEST)), [("docker", "29")], {}
    )
    assert single.gets_now == {"docker.io": 2}


@pytest.mark.parametrize("budget", [0, 1, 7, 10, 31, 100])
def test_budget_is_never_exceeded(budget: int) -> None:
    tags = {f"1.{n}": n for n in range(12)} | {"latest": 99}
    probe = frame(
        probe_rows(tags),
        probe_rows(tags, registry="ghcr.io", media_type=MANIFEST),
    )

    plan = plan_pulls(frame(), probe, ENGINES, {"docker.io": budget})

    assert plan.gets_now.get("docker.io", 0) <= budget
    # The spare budget is smaller than one more pull: nothing is left unused needlessly.
    assert budget - plan.gets_now.get("docker.io", 0) < 2
    # ghcr.io has no limit: all of it now.
    assert plan.gets_now["ghcr.io"] == 13 * 2 * 2
    hub_total = 13 * 2 * 2 * 2
    assert plan.gets_now.get("docker.io", 0) + plan.gets_deferred.get("docker.io", 0) == hub_total


def test_ratelimit_remaining_of_latest_probe_lowers_the_budget() -> None:
    older = probe_rows({"latest": 1}, at="2026-12-01T00:00:00Z", remaining=3)
    newer = probe_rows({"latest": 1, "1.0": 2}, at="2026-12-02T00:00:00Z", remaining=9)
    # Within the latest run the count falls as the probe goes; the lowest is what is left.
    newer[-1].ratelimit_remaining = 5
    plan = plan_pulls(frame(), frame(older, newer), ENGINES, {"docker.io": 100})

    assert plan.available == {"docker.io": 5}
    assert plan.gets_now == {"docker.io": 4}
    assert [(p.tag, p.version, p.platform) for p in plan.now] == [
        ("latest", "29", "linux/amd64"),
        ("latest", "20.10", "linux/amd64"),
    ]


def test_nothing_changed_means_nothing_to_pull() -> None:
    probe = frame(probe_rows({"latest": 1, "1.0": 2}))
    first = plan_pulls(frame(), probe, ENGINES, {"docker.io": 100})
    history = frame(probe_rows({"latest": 1, "1.0": 2}), pulled(first.now, "2026-12-01T01:00:00Z"))

    second = plan_pulls(history, probe, ENGINES, {"docker.io": 100})

    assert second.now == [] and second.deferred == []
    assert second.gets_now == {}


def test_failed_pull_without_digest_counts_as_a_verdict_for_the_probed_digest() -> None:
    probe = frame(probe_rows({"latest": 1}))
    first = plan_pulls(frame(), probe, [("docker", "29")], {})
    failures = [
        Observation(
            **{
                **row.__dict__,
                "outcome": "fail",
                "error_class": "registry-error",
                "verdict": "not-an-image",
                "digest": "",
            }
        )
        for row in pulled(first.now, "2026-12-01T01:00:00Z")
    ]
    history = frame(probe_rows({"latest": 1}), failures)

    assert plan_pulls(history, probe, [("docker", "29")], {}).now == []


def test_transient_failures_are_tried_again_until_they_last() -> None:
    probe = frame(probe_rows({"latest": 1}))
    first = plan_pulls(frame(), probe, [("docker", "29")], {})
    ok = pulled(first.now, "2026-12-01T01:00:00Z")
    outage = [
        Observation(**{**row.__dict__, "error_class": "registry-error", "verdict": ""})
        for row in pulled(first.now, "2026-12-01T02:00:00Z", outcome="fail")
    ]

    during = plan_pulls(frame(probe_rows({"latest": 1}), ok, outage), probe, [("docker", "29")], {})
    assert {(p.platform, p.reason) for p in during.now} == {
        ("linux/amd64", "retry"),
        ("linux/arm64", "retry"),
    }

    recovered = pulled(first.now, "2026-12-01T03:00:00Z")
    history = frame(probe_rows({"latest": 1}), ok, outage, recovered)
    assert plan_pulls(history, probe, [("docker", "29")], {}).now == []


def test_harness_errors_and_rate_limits_are_retried() -> None:
    probe = frame(probe_rows({"latest": 1}))
    first = plan_pulls(frame(), probe, [("docker", "29")], {})
    errors = pulled(first.now[:1], "2026-12-01T01:00:00Z", outcome="error")
    limited = [
        Observation(**{**row.__dict__, "error_class": "rate-limited", "verdict": ""})
        for row in pulled(first.now[1:], "2026-12-01T01:00:00Z", outcome="fail")
    ]

    again = plan_pulls(
        frame(probe_rows({"latest": 1}), errors, limited), probe, [("docker", "29")], {}
    )

    assert [pull.platform for pull in again.now] == list(PLATFORMS)


def test_new_engine_pulls_what_others_already_judged() -> None:
    probe = frame(probe_rows({"latest": 1}))
    first = plan_pulls(frame(), probe, ENGINES, {})
    history = frame(probe_rows({"latest": 1}), pulled(first.now, "2026-12-01T01:00:00Z"))

    plan = plan_pulls(history, probe, [*ENGINES, ("docker", "26.1")], {})

    assert {(p.version, p.reason) for p in plan.now} == {("26.1", "new engine")}
    assert len(plan.now) == 2


def test_changed_digest_is_pulled_again_and_unchanged_tags_are_not() -> None:
    history_probe = probe_rows({"latest": 1, "1.0": 2})
    first = plan_pulls(frame(), frame(history_probe), ENGINES, {})
    history = frame(history_probe, pulled(first.now, "2026-12-01T01:00:00Z"))
    moved = frame(probe_rows({"latest": 3, "1.0": 2, "1.1": 4}, at="2026-12-02T00:00:00Z"))

    plan = plan_pulls(history, moved, ENGINES, {})

    assert {(p.tag, p.reason) for p in plan.now} == {("latest", "new digest"), ("1.1", "new tag")}
    assert {p.digest for p in plan.now if p.tag == "latest"} == {_digest(3)}
    assert len(plan.now) == 2 * 2 * 2


def test_deferred_pulls_are_carried_over_to_later_runs() -> None:
    tags = {f"1.{n}": n for n in range(5)} | {"latest": 50, "stable": 51}
    probe_list = probe_rows(tags)
    history_rows: list[Observation] = list(probe_list)
    done: list[PlannedPull] = []
    budget = {"docker.io": 10}

    for run in range(20):
        plan = plan_pulls(frame(history_rows), frame(probe_list), ENGINES, budget)
        assert plan.gets_now.get("docker.io", 0) <= 10
        if not plan.now:
            break
        if run == 0:
            assert [p.tag for p in plan.now] == ["latest"] * 4 + ["stable"]
            assert plan.deferred[0].tag == "stable"
        done.extend(plan.now)
        history_rows.extend(pulled(plan.now, f"2026-12-01T{run + 1:02d}:00:00Z"))

    assert run == 6  # 7 tags x 2 platforms x 2 engines x 2 GETs = 56 GETs at 10 per run
    assert len(done) == len(set(done)) == 7 * 2 * 2


def test_platform_filter_and_order() -> None:
    probe = frame(probe_rows({"latest": 1}))
    plan = plan_pulls(frame(), probe, [("docker", "29")], {}, platforms=["linux/arm64"])
    assert [pull.platform for pull in plan.now] == ["linux/arm64"]


def test_tag_order() -> None:
    tags = ["edge", "1.0", "v2.0.1", "latest", "2.0", "10.0", "stable", "abc", "2.0.1-py3"]
    assert sorted(tags, key=tag_order) == [
        "latest",
        "stable",
        "10.0",
        "2.0.1-py3",
        "v2.0.1",
        "2.0",
        "1.0",
        "abc",
        "edge",
    ]


def test_plan_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_pulls(
        frame(), frame(probe_rows({"latest": 1, "1.0": 2})), ENGINES, {"docker.io": 6}
    )
    path = tmp_path / "plan.json"
    plan.write(path)

    again = Plan.read(path)

    assert again == plan
    assert [p.reference for p in again.for_engine("29")] == ["docker.io/kivy/buildozer:latest"] * 2


def test_plan_command_writes_and_lists_the_plan(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from matrix.cli import cli
    from matrix.observations import write_shard

    data = tmp_path / "data"
    write_shard(probe_rows({"latest": 1, "1.0": 2}, remaining=9), data, "probe1")
    write_shard(probe_rows({"latest": 1}, registry="quay.io"), data, "other-image")
    runner = CliRunner()
    plan_path = tmp_path / "plan.json"

    made = runner.invoke(
        cli,
        [
            "-q",
            "plan",
            "--config",
            str(CONFIG),
            "--data",
            str(data),
            "--engine",
            "29",
            "--out",
            str(plan_path),
        ],
    )
    listed = runner.invoke(
        cli,
        [
            "plan",
            "--config",
            str(CONFIG),
            "--from",
            str(plan_path),
            "--engine",
            "29",
            "--image",
            "kivy/buildozer",
            "--list",
        ],
    )

    assert made.exit_code == 0, made.output
    assert listed.exit_code == 0, listed.output
    # 9 GETs remaining: four 2-GET pulls of the configured image, nothing of quay.io.
    assert listed.output.splitlines() == [
        "linux/amd64 docker.io/kivy/buildozer:latest",
        "linux/arm64 docker.io/kivy/buildozer:latest",
        "linux/amd64 docker.io/kivy/buildozer:1.0",
        "linux/arm64 docker.io/kivy/buildozer:1.0",
    ]
    assert Plan.read(plan_path).available == {"docker.io": 9}


def test_engine_versions_match_by_series_and_debian_build() -> None:
    assert engine_matches("27", "27.5.1")
    assert engine_matches("20.10.24", "20.10.24+dfsg1")
    assert engine_matches("26.1", "26.1.5")
    assert not engine_matches("2", "20.10.5")
    assert not engine_matches("26.1", "26.10.0")
    assert not engine_matches("20.10.2", "20.10.24")


def test_plan_for_config_uses_its_images_engines_and_budgets() -> None:
    from matrix.config import load_config
    from matrix.errors import ConfigError

    config = load_config(CONFIG)
    probe = frame(
        probe_rows({"latest": 1, "1.0": 2}, remaining=50),
        probe_rows({"latest": 1}, registry="ghcr.io"),
        probe_rows({"latest": 1}, registry="quay.io"),
    )

    plan = plan_for_config(config, frame(), probe, versions=["29", "20.10"])

    assert {p.registry for p in plan.now + plan.deferred} == {"docker.io", "ghcr.io"}
    assert {p.version for p in plan.now} == {"29", "20.10"}
    assert plan.available == {"docker.io": 50}
    assert plan.gets_now["docker.io"] == 2 * 2 * 2 * 2
    with pytest.raises(ConfigError, match="not in the config"):
        plan_for_config(config, frame(), probe, versions=["19.03"])


def test_gets_spent_by_the_probe_come_off_the_budget() -> None:
    probe = frame(probe_rows({"latest": 1, "1.0": 2}))

    plan = plan_pulls(frame(), probe, ENGINES, {"docker.io": 10}, spent={"docker.io": 7})

    assert plan.available == {"docker.io": 3}
    assert plan.gets_now == {"docker.io": 2}
    counted = frame(probe_rows({"latest": 1}, remaining=40))
    assert plan_pulls(
        frame(), counted, ENGINES, {"docker.io": 100}, spent={"docker.io": 7}
    ).available == {"docker.io": 40}
