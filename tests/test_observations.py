"""Observation tables: immutable shards, loading, and the views derived from them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from matrix.errors import DataError
from matrix.observations import (
    COLUMNS,
    Observation,
    last_known_good,
    latest,
    load,
    mirror_drift,
    write_shard,
)


def _obs(**fields: object) -> Observation:
    base: dict[str, object] = {
        "run_id": "r1",
        "registry": "docker.io",
        "repository": "kivy/buildozer",
        "tag": "latest",
        "platform": "linux/amd64",
        "client": "docker",
        "client_version": "28.5.2",
        "method": "pull",
        "outcome": "ok",
        "digest": "sha256:" + "a" * 64,
        "observed_at": "2026-12-01T00:00:00Z",
    }
    base.update(fields)
    return Observation(**base)  # type: ignore[arg-type]


def test_a_shard_round_trips_with_every_column(tmp_path: Path) -> None:
    path = write_shard([_obs(message='<b>odd</b>, "quoted"\nsecond line')], tmp_path, "r1")

    frame = load([tmp_path])

    assert list(frame.columns) == list(COLUMNS)
    assert frame.loc[0, "message"] == '<b>odd</b>, "quoted"\nsecond line'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_shard_is_never_overwritten_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_shard([_obs()], tmp_path, "r1")

    with pytest.raises(DataError, match="never overwritten"):
        write_shard([_obs(outcome="fail", error_class="network")], tmp_path, "r1")

    assert [p.name for p in (tmp_path / "observations").iterdir()] == ["r1.csv"]
    assert load([tmp_path]).loc[0, "outcome"] == "ok"


def test_an_unreadable_shard_loses_nothing_else(tmp_path: Path) -> None:
    write_shard([_obs()], tmp_path, "r1")
    (tmp_path / "observations" / "r2.csv").write_text("not,an\nobservation,file\n")

    assert len(load([tmp_path])) == 1


@pytest.mark.parametrize("run_id", ["../escape", "", "a/b", "x" * 200])
def test_unsafe_run_ids_are_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(DataError):
        write_shard([_obs()], tmp_path, run_id)


def test_a_harness_error_is_not_a_verdict_about_the_image() -> None:
    observation = _obs(outcome="error", message="engine is gone")

    assert observation.verdict == "error"
    assert observation.error_class == ""


def test_latest_and_last_known_good(tmp_path: Path) -> None:
    good = _obs(run_id="r1", observed_at="2026-12-01T00:00:00Z")
    bad = _obs(
        run_id="r2",
        observed_at="2026-12-02T00:00:00Z",
        outcome="fail",
        error_class="registry-error",
        digest="sha256:" + "b" * 64,
    )
    write_shard([good], tmp_path, "r1")
    write_shard([bad], tmp_path, "r2")
    frame = load([tmp_path])

    assert latest(frame)["verdict"].tolist() == ["registry-error"]
    assert last_known_good(frame)["digest"].tolist() == ["sha256:" + "a" * 64]


def test_mirror_drift_names_a_tag_that_differs_or_is_missing() -> None:
    from matrix.observations import to_frame

    frame = to_frame(
        [
            _obs(method="probe", client="probe", registry="docker.io", tag="latest"),
            _obs(
                method="probe",
                client="probe",
                registry="ghcr.io",
                tag="latest",
                digest="sha256:" + "c" * 64,
            ),
            _obs(method="probe", client="probe", registry="docker.io", tag="1.0"),
            _obs(method="probe", client="probe", registry="ghcr.io", tag="1.0"),
            _obs(method="probe", client="probe", registry="docker.io", tag="only-hub"),
        ]
    )

    drift = mirror_drift(
        frame, {"buildozer": ["docker.io/kivy/buildozer", "ghcr.io/kivy/buildozer"]}
    )

    assert sorted(drift["tag"]) == ["latest", "only-hub"]
    only_hub = drift[drift["tag"] == "only-hub"].iloc[0]
    assert only_hub["ghcr.io/kivy/buildozer"] == ""


def test_out_refuses_anything_but_a_regular_file(tmp_path: Path) -> None:
    from matrix.observations import write_observations

    target = tmp_path / "real.csv"
    target.write_text("keep me\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)

    for path in (link, tmp_path):
        with pytest.raises(DataError, match="not a regular file"):
            write_observations([_obs()], path)
    assert target.read_text() == "keep me\n"


def test_a_huge_message_is_kept_truncated() -> None:
    observation = _obs(outcome="fail", error_class="unknown", message="x" * 100_000)

    assert observation.message.startswith("x" * 4096)
    assert observation.message.endswith("(truncated)") and len(observation.message) < 4200


def test_a_shard_dated_in_the_future_does_not_hide_later_history(tmp_path: Path) -> None:
    write_shard(
        [_obs(outcome="fail", error_class="registry-error", observed_at="2099-01-01T00:00:00Z")],
        tmp_path,
        "r-future",
    )
    write_shard([_obs(observed_at="2026-12-01T00:00:00Z")], tmp_path, "r-now")

    frame = load([tmp_path])

    assert latest(frame)["verdict"].tolist() == ["ok"]


def test_shards_of_the_older_layout_get_their_verdicts(tmp_path: Path) -> None:
    directory = tmp_path / "observations"
    directory.mkdir()
    core = ",".join(COLUMNS[:16])
    (directory / "old.csv").write_text(
        f"{core}\n"
        "r0,2026-11-01T00:00:00Z,docker.io,a/b,1.0,linux/amd64,docker,20.10.5,pull,sha256:1,ok,,,,1,2\n"
        "r0,2026-11-01T00:00:00Z,docker.io,a/b,2.0,linux/amd64,docker,20.10.5,pull,,fail,"
        "network,,EOF,1,\n"
        "r0,2026-11-01T00:00:00Z,docker.io,a/b,3.0,linux/amd64,docker,20.10.5,pull,,error,,,gone,1,\n"
    )

    assert load([tmp_path])["verdict"].tolist() == ["ok", "network", "error"]
