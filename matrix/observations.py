"""Observation tables: one row per attempt, one immutable CSV shard per run.

A shard is written to a temporary file in the same directory and renamed into place, so a run
that is killed, or two runs at once, can never leave a half-written or mixed file behind. Reading
loads every shard under a data directory into one DataFrame; the views below derive what the
site and the CLI show from it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from matrix.errors import DataError

log = logging.getLogger(__name__)

# The public columns, in order. The first sixteen are the core record of an attempt; the rest
# carry what the analysis made of it.
COLUMNS: tuple[str, ...] = (
    "run_id",
    "observed_at",
    "registry",
    "repository",
    "tag",
    "platform",
    "client",
    "client_version",
    "method",
    "digest",
    "outcome",
    "error_class",
    "http_status",
    "message",
    "duration_s",
    "bytes",
    # The verdict shown in the matrix: `ok`, or the class of the explained cause (which may differ
    # from `error_class`, the class of the symptom, e.g. a 500 explained as `not-an-image`).
    "verdict",
    # The explained cause in words, from the registry-side analysis of the same digest.
    "cause",
    # The verdict the capability table predicted for this client; `finding` says when it was wrong.
    "predicted",
    "finding",
    # Digest of the platform's image manifest inside an index (empty for a plain manifest).
    "platform_digest",
    # What the tag points at: image, index, schema1, not-an-image (see matrix.analysis).
    "kind",
    "media_type",
    "ratelimit_limit",
    "ratelimit_remaining",
    "ratelimit_source",
    # Compact JSON with the format analysis of the digest (platforms, layers, sizes, predictions).
    "details",
)

METHODS = ("probe", "pull")
# The longest message an observation keeps, in characters.
MAX_MESSAGE = 4096
# Beside the shards: which public registry each registry host stands in for.
ROLES_FILE = "registries.json"
# The verdict of an attempt that failed through the harness's own fault: not a class of the image.
HARNESS_ERROR = "error"
OUTCOMES = ("ok", "fail", "error")

_NUMERIC = ("http_status", "duration_s", "bytes", "ratelimit_limit", "ratelimit_remaining")
_RUN_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,80}$")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Observation:
    """One attempt to probe or pull one tag for one platform with one client."""

    run_id: str
    registry: str
    repository: str
    tag: str
    platform: str
    client: str
    client_version: str
    method: str
    outcome: str
    observed_at: str = field(default_factory=utc_now)
    digest: str = ""
    error_class: str = ""
    http_status: int | None = None
    message: str = ""
    duration_s: float | None = None
    bytes: int | None = None
    verdict: str = ""
    cause: str = ""
    predicted: str = ""
    finding: str = ""
    platform_digest: str = ""
    kind: str = ""
    media_type: str = ""
    ratelimit_limit: int | None = None
    ratelimit_remaining: int | None = None
    ratelimit_source: str = ""
    details: str = ""

    def __post_init__(self) -> None:
        if len(self.message) > MAX_MESSAGE:
            # Registries choose error texts; a record keeps the start, which names the cause.
            self.message = self.message[:MAX_MESSAGE] + " … (truncated)"
        if self.method not in METHODS:
            raise DataError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.outcome not in OUTCOMES:
            raise DataError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.outcome == "error":
            # A fault of the harness (an engine that died) says nothing about the image.
            self.verdict = HARNESS_ERROR
        elif not self.verdict:
            self.verdict = "ok" if self.outcome == "ok" else (self.error_class or "unknown")
        if self.outcome == "ok" and not self.error_class:
            self.error_class = "ok"


assert set(f.name for f in fields(Observation)) == set(COLUMNS)


def to_frame(rows: Iterable[Observation | Mapping[str, Any]]) -> pd.DataFrame:
    """Observations as a DataFrame with exactly the public columns, in order."""
    records = [asdict(row) if isinstance(row, Observation) else dict(row) for row in rows]
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return _normalise(frame)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    frame = frame[list(COLUMNS)].copy()
    for column in _NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in COLUMNS:
        if column not in _NUMERIC:
            frame[column] = frame[column].fillna("").astype(str)
    return _fill_verdicts(frame)


def _fill_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Give rows without a verdict (shards written before the column existed) the one their
    outcome and error class imply, as `Observation` does for new rows."""
    missing = frame["verdict"] == ""
    if not missing.any():
        return frame
    implied = frame["error_class"].where(frame["error_class"] != "", "unknown")
    implied = implied.where(frame["outcome"] != "ok", "ok")
    implied = implied.where(frame["outcome"] != "error", HARNESS_ERROR)
    frame.loc[missing, "verdict"] = implied[missing]
    return frame


def write_shard(
    rows: Iterable[Observation | Mapping[str, Any]], data_dir: Path, run_id: str
) -> Path:
    """Write one run's observations as an immutable shard and return its path.

    Shards live at `<data_dir>/observations/<run_id>.csv`. An existing shard is never replaced.
    """
    if not _RUN_ID.match(run_id):
        raise DataError(f"run id {run_id!r} is not a safe file name")
    target = Path(data_dir) / "observations" / f"{run_id}.csv"
    return write_observations(rows, target, replace=False)


def write_observations(
    rows: Iterable[Observation | Mapping[str, Any]], path: Path, *, replace: bool = True
) -> Path:
    """Write observations as CSV to exactly `path`, atomically: a reader sees the old file or
    the whole new one, never a part. With `replace=False` an existing file is an error."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Replacing it would swap a device, a directory or a link's target for a CSV file.
        raise DataError(f"{path} exists and is not a regular file; not writing observations there")
    frame = to_frame(rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        raise DataError(f"cannot write observations to {path}: {exc}") from exc
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            frame.to_csv(stream, index=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; observations are published data
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails instead of overwriting, unlike rename
    except FileExistsError as exc:
        raise DataError(f"shard {path} exists already; shards are never overwritten") from exc
    except OSError as exc:
        raise DataError(f"cannot write observations to {path}: {exc}") from exc
    finally:
        Path(temporary).unlink(missing_ok=True)
    log.info("wrote %d observations to %s", len(frame), path)
    return path


def write_roles(data_dir: Path, roles: Mapping[str, str]) -> None:
    """Record which public registry each registry host stands in for (the lab's loopback ones),
    so that pages can say `127.0.0.1:5101 (docker.io role)`. Replaced on every run."""
    path = Path(data_dir) / ROLES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{ROLES_FILE}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(dict(sorted(roles.items())), stream, indent=2)
        stream.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def shard_paths(sources: Iterable[Path]) -> list[Path]:
    """CSV shards named directly or found under data directories, sorted by name."""
    paths: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            paths.extend(p for p in source.rglob("*.csv") if not p.name.startswith("."))
        elif source.exists():
            paths.append(source)
        else:
            raise DataError(f"no observation file or directory at {source}")
    return sorted(set(paths), key=lambda p: (p.name, str(p)))


def read_shard(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read observations from {path}: {exc}") from exc
    missing = {"run_id", "registry", "repository", "tag", "client", "outcome"} - set(frame.columns)
    if missing:
        raise DataError(f"{path} is not an observation file: missing {sorted(missing)}")
    return _normalise(frame)


def load(sources: Iterable[Path]) -> pd.DataFrame:
    """Every observation from the given shards or data directories, as one DataFrame.

    A shard that cannot be read is skipped with a warning, so one bad file loses nothing else.
    """
    frames = []
    for path in shard_paths(sources):
        try:
            frames.append(_without_future(read_shard(path), path))
        except DataError as exc:
            log.warning("%s", exc)
    if not frames:
        return to_frame([])
    return pd.concat(frames, ignore_index=True)


# How far ahead of this machine's clock an observation may be dated (clocks differ a little).
CLOCK_SKEW = timedelta(hours=1)


def _without_future(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop observations dated in the future: one wrong clock must not hide all later history,
    since the latest observation of a cell is the one that counts."""
    limit = (datetime.now(UTC) + CLOCK_SKEW).isoformat(timespec="seconds").replace("+00:00", "Z")
    future = frame["observed_at"] > limit
    if future.any():
        log.warning(
            "%s: ignoring %d observations dated after %s (a wrong clock?)",
            path,
            int(future.sum()),
            limit,
        )
        frame = frame[~future].reset_index(drop=True)
    return frame


CELL_KEY = ["registry", "repository", "tag", "platform", "client", "client_version"]


def latest(frame: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """The latest observation per (registry, repository, tag, platform, client, version)."""
    if method is not None:
        frame = frame[frame["method"] == method]
    ordered = frame.sort_values(["observed_at", "run_id"], kind="stable")
    return ordered.drop_duplicates(CELL_KEY, keep="last").reset_index(drop=True)


def last_known_good(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (registry, repository, tag): the digest of the newest successful pull or probe."""
    good = frame[(frame["outcome"] == "ok") & (frame["digest"] != "")]
    good = good.sort_values(["observed_at", "run_id"], kind="stable")
    keys = ["registry", "repository", "tag"]
    result = good.drop_duplicates(keys, keep="last")[[*keys, "digest", "observed_at", "client"]]
    return result.sort_values(keys).reset_index(drop=True)


def mirror_drift(frame: pd.DataFrame, images: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """Tags of one image whose latest probed digest differs between its registries, or is missing.

    `images` maps an image name to its `registry/repository` locations. The result has one row per
    (image, tag) that drifts, with the digest seen at each location ("" where the tag is missing).
    """
    probes = latest(frame, method="probe")
    probes = probes[probes["tag"] != ""]
    probes = probes.assign(location=probes["registry"] + "/" + probes["repository"])
    parts = []
    for image, locations in sorted(images.items()):
        locations = list(locations)
        subset = probes[probes["location"].isin(locations)]
        if subset.empty:
            continue
        seen = subset[subset["digest"] != ""][["tag", "location", "digest"]].drop_duplicates()
        seen = seen.sort_values("digest", kind="stable")
        digests = seen.groupby(["tag", "location"])["digest"].agg(",".join).unstack("location")
        table = digests.reindex(index=sorted(set(subset["tag"])), columns=locations).fillna("")
        drifting = table[table.nunique(axis=1) > 1]
        if not drifting.empty:
            drifting = drifting.rename_axis(index="tag", columns=None).reset_index()
            drifting.insert(0, "image", image)
            parts.append(drifting)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)
