"""Registry health and incidents, derived from observation tables.

A failure counts against a registry when its class is about the image, the registry or the path
to it (`CLASS_INFO[...].about` is not `client`). An engine that cannot pull a format it does
not support (schema 1 on a new engine, zstd on an old one), or a tag without an image for the
platform asked for, is an incompatibility shown in the matrix, not an incident.

For every run, each tag a run covered on a registry is failing (at least one such failure) or
not. An incident is an uninterrupted stretch of failing runs of one tag on one registry: it
starts at the first failing run and ends at the next run that covered the tag without one;
until then it is open. Harness faults (verdict `error`) count for nothing. A registry is
`failing` in a run where at least half the tags it covered failed (an outage), `degraded`
while any tag's latest state is failing, and `healthy` otherwise.
"""

from __future__ import annotations

import logging

import pandas as pd

from matrix.classify import CLASS_INFO, ErrorClass
from matrix.observations import HARNESS_ERROR

log = logging.getLogger(__name__)

HEALTHY, DEGRADED, FAILING = "healthy", "degraded", "failing"
LOCATION = ["registry", "repository"]
TAG_KEY = [*LOCATION, "tag"]

_ABOUT = {str(cls): info.about for cls, info in CLASS_INFO.items()}


def counts_against_registry(verdict: str) -> bool:
    """True when a verdict is a failure of the image, registry or network: not of the engine,
    not of the harness (`error`: an engine that died says nothing about the registry), and not
    a platform the tag was never built for (`no-platform-match` is a property of the tag)."""
    if verdict in ("", str(ErrorClass.OK), HARNESS_ERROR, str(ErrorClass.NO_PLATFORM_MATCH)):
        return False
    return _ABOUT.get(verdict, "unknown") != "client"


def run_times(frame: pd.DataFrame) -> pd.Series:
    """When each run started: the earliest `observed_at` of its observations."""
    return frame.groupby("run_id")["observed_at"].min()


def tag_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (registry, repository, tag, run): whether the tag was failing in that run.

    Columns: the tag key, `run_id`, `at` (the run's start), `failing`, and for failing rows the
    most frequent failing `verdict` with one of its `message`s and `cause`s.
    """
    columns = [*TAG_KEY, "run_id", "at", "failing", "verdict", "message", "cause"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    work = frame[[*TAG_KEY, "run_id", "method", "verdict", "message", "cause"]].copy()
    work["bad"] = work["verdict"].map(counts_against_registry)
    work["at"] = work["run_id"].map(run_times(frame))
    failing = work.groupby([*TAG_KEY, "run_id", "at"], sort=False)["bad"].any()
    summary = failing.rename("failing").reset_index()

    # The engines' own words first: a pull's message says what a user of the tag sees.
    bad = work[work["bad"].astype(bool)].sort_values("method", ascending=False, kind="stable")
    if bad.empty:
        detail = pd.DataFrame(columns=[*TAG_KEY, "run_id", "verdict", "message", "cause"])
    else:
        counted = bad.groupby([*TAG_KEY, "run_id", "verdict"], sort=True).agg(
            n=("bad", "size"), message=("message", "first"), cause=("cause", _first_nonempty)
        )
        counted = counted.reset_index().sort_values("n", ascending=False, kind="stable")
        detail = counted.drop_duplicates([*TAG_KEY, "run_id"]).drop(columns="n")
    result = summary.merge(detail, on=[*TAG_KEY, "run_id"], how="left")
    result[["verdict", "message", "cause"]] = result[["verdict", "message", "cause"]].fillna("")
    result.loc[~result["failing"], "verdict"] = "ok"
    return result.sort_values([*TAG_KEY, "at", "run_id"], kind="stable").reset_index(drop=True)[
        columns
    ]


def _first_nonempty(values: pd.Series) -> str:
    for value in values:
        if value:
            return str(value)
    return ""


def _blocks(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` (sorted as tag_runs returns it) with a `block` number per stretch of equal state."""
    runs = runs.copy()
    grouped = runs.groupby(TAG_KEY, sort=False)
    runs["next_at"] = grouped["at"].shift(-1).fillna("")
    previous = grouped["failing"].shift()
    runs["block"] = (previous.isna() | (previous != runs["failing"])).cumsum()
    return runs


def incidents(frame: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every incident, newest first: registry, repository, `tags` (sorted tuple), verdict, start,
    end ("" while open), last_seen, runs, message, cause.

    Tags of one registry that failed with the same verdict over the same stretch of runs (an
    outage, a rate limit) make one incident, not one per tag.
    """
    columns = [
        *LOCATION,
        "tags",
        "verdict",
        "start",
        "end",
        "last_seen",
        "runs",
        "message",
        "cause",
    ]
    runs = tag_runs(frame) if runs is None else runs
    if runs.empty or not runs["failing"].any():
        return pd.DataFrame(columns=columns)
    runs = _blocks(runs)
    failing = runs[runs["failing"]]
    per_tag = failing.groupby([*TAG_KEY, "block"], sort=False).agg(
        verdict=("verdict", lambda s: s.value_counts().index[0]),
        start=("at", "min"),
        last_seen=("at", "max"),
        end=("next_at", "last"),
        runs=("at", "size"),
        message=("message", _first_nonempty),
        cause=("cause", _first_nonempty),
    )
    per_tag = per_tag.reset_index().sort_values(TAG_KEY, kind="stable")
    shared = [*LOCATION, "verdict", "start", "end"]
    result = per_tag.groupby(shared, sort=False).agg(
        tags=("tag", lambda s: tuple(sorted(s))),
        last_seen=("last_seen", "max"),
        runs=("runs", "max"),
        message=("message", _first_nonempty),
        cause=("cause", _first_nonempty),
    )
    result = result.reset_index().sort_values(
        ["start", *LOCATION, "tags"], ascending=[False, True, True, True], kind="stable"
    )
    return result.reset_index(drop=True)[columns]


def tag_status(frame: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (registry, repository, tag): `status` (healthy or failing) from its latest run,
    `since` (when that state began), `verdict`, `message`, `cause` and `last_run`."""
    columns = [*TAG_KEY, "status", "since", "verdict", "message", "cause", "last_run"]
    runs = tag_runs(frame) if runs is None else runs
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs = _blocks(runs)
    starts = runs.groupby("block")["at"].min()
    last = runs.drop_duplicates(TAG_KEY, keep="last").copy()
    last["since"] = last["block"].map(starts)
    last["status"] = last["failing"].map({True: FAILING, False: HEALTHY})
    last["last_run"] = last["at"]
    return last.sort_values(TAG_KEY).reset_index(drop=True)[columns]


def status_timeline(frame: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (registry, repository, run): status, covered tags, failed tags, tags failing now."""
    columns = [*LOCATION, "run_id", "at", "status", "covered", "failed", "failing_now"]
    runs = tag_runs(frame) if runs is None else runs
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (registry, repository), group in runs.groupby(LOCATION, sort=True):
        state = group.pivot_table(index="at", columns="tag", values="failing", aggfunc="max")
        covered = state.notna().sum(axis=1)
        failed = state.fillna(False).astype(bool).sum(axis=1)
        carried = state.astype("float").ffill().fillna(0).sum(axis=1)
        run_ids = group.drop_duplicates("at").set_index("at")["run_id"]
        for at in state.index:
            if covered[at] and failed[at] * 2 >= covered[at]:
                status = FAILING
            elif carried[at] > 0:
                status = DEGRADED
            else:
                status = HEALTHY
            rows.append(
                (
                    registry,
                    repository,
                    run_ids[at],
                    at,
                    status,
                    int(covered[at]),
                    int(failed[at]),
                    int(carried[at]),
                )
            )
    return pd.DataFrame(rows, columns=columns)


def registry_status(frame: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (registry, repository): `status`, `since`, `last_run`, `failing_tags` (sorted list).

    `runs` is `tag_runs(frame)` when the caller has it already; every function here takes it.
    """
    columns = [*LOCATION, "status", "since", "last_run", "failing_tags"]
    runs = tag_runs(frame) if runs is None else runs
    timeline = status_timeline(frame, runs)
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    tags = tag_status(frame, runs)
    rows = []
    for (registry, repository), group in timeline.groupby(LOCATION, sort=True):
        statuses = group["status"].tolist()
        since_index = len(statuses) - 1
        while since_index > 0 and statuses[since_index - 1] == statuses[-1]:
            since_index -= 1
        failing = tags[
            (tags["registry"] == registry)
            & (tags["repository"] == repository)
            & (tags["status"] == FAILING)
        ]["tag"]
        rows.append(
            (
                registry,
                repository,
                statuses[-1],
                group["at"].iloc[since_index],
                group["at"].iloc[-1],
                sorted(failing),
            )
        )
    log.info("health of %d registry locations computed", len(rows))
    return pd.DataFrame(rows, columns=columns)


def pass_rate(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily pulls per (registry, repository): attempts, ok, `rate` (ok / attempts) and
    `health` (the share of attempts without a failure that counts against the registry).
    Attempts the harness failed (outcome `error`) are left out."""
    columns = [*LOCATION, "day", "attempts", "ok", "rate", "health"]
    pulls = frame[(frame["method"] == "pull") & (frame["outcome"] != "error")]
    if pulls.empty:
        return pd.DataFrame(columns=columns)
    work = pulls[LOCATION].copy()
    work["day"] = pulls["observed_at"].str.slice(0, 10)
    work["ok"] = pulls["verdict"] == "ok"
    work["bad"] = pulls["verdict"].map(counts_against_registry)
    result = work.groupby([*LOCATION, "day"], sort=True).agg(
        attempts=("ok", "size"), ok=("ok", "sum"), bad=("bad", "sum")
    )
    result = result.reset_index()
    result["rate"] = result["ok"] / result["attempts"]
    result["health"] = 1 - result["bad"] / result["attempts"]
    return result[columns]
