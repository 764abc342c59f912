"""What the site shows, derived once from the observation tables.

Everything here is plain data in a stable order (images by name, registries by name, tags
newest first, engines oldest first), so that two builds from the same data write the same
files and a new run changes only what it observed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from matrix import incidents as health
from matrix.classify import CLASS_INFO, ErrorClass
from matrix.errors import redact_message
from matrix.observations import (
    CELL_KEY,
    ROLES_FILE,
    last_known_good,
    latest,
    load,
    mirror_drift,
)
from matrix.site.versions import engine_sort_key, slug, sort_engines, sort_tags, version_tuple

log = logging.getLogger(__name__)

GENERATED_BY = "python -m matrix site"
NOT_PUBLISHED = "not published (yet?)"


@dataclass(frozen=True)
class Cell:
    """The latest observation of one tag, platform and client on one registry."""

    verdict: str
    error_class: str
    message: str
    cause: str
    predicted: str
    finding: str
    digest: str
    observed_at: str
    kind: str = ""
    # The registry-side check of the tag (the probe), not an engine's pull.
    probe: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def surprising(self) -> bool:
        """The observation contradicts the capability table's prediction."""
        return bool(self.finding) or bool(
            self.predicted and self.error_class and self.predicted != self.error_class
        )

    @property
    def title(self) -> str:
        """The hover and focus text: the cause, then the engine's or registry check's message."""
        parts = [self.verdict]
        if self.cause:
            parts.append(self.cause)
        if self.message:
            source = "registry check" if self.probe else "engine said"
            parts.append(f"{source}: {self.message}")
        if self.predicted and self.predicted != self.error_class:
            parts.append(f"predicted: {self.predicted}")
        return " — ".join(parts)


@dataclass
class Row:
    tag: str
    probe: Cell | None
    cells: list[Cell | None]
    drift: bool = False

    @property
    def failing(self) -> bool:
        cells = [*self.cells, self.probe]
        return any(cell is not None and not cell.ok for cell in cells)


@dataclass
class Block:
    """The matrix of one image on one registry for one platform."""

    registry: str
    repository: str
    platform: str
    engines: list[str]
    rows: list[Row]

    @property
    def location(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass
class Image:
    name: str
    slug: str
    locations: list[tuple[str, str]]
    tags: list[str]
    engines: list[str]
    blocks: list[Block] = field(default_factory=list)
    drift: dict[str, dict[str, str]] = field(default_factory=dict)

    def tag_slug(self, tag: str) -> str:
        return slug(tag)


@dataclass
class SiteData:
    frame: pd.DataFrame
    images: list[Image]
    engines: list[str]
    runs: pd.Series
    status: pd.DataFrame
    incidents: pd.DataFrame
    tag_status: pd.DataFrame
    pass_rate: pd.DataFrame
    last_known_good: pd.DataFrame
    pulls: pd.DataFrame
    probes: pd.DataFrame
    changes: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.frame.empty

    @property
    def last_run(self) -> str:
        return str(self.runs.max()) if len(self.runs) else ""

    @property
    def first_run(self) -> str:
        return str(self.runs.min()) if len(self.runs) else ""

    @cached_property
    def lookup(self) -> Lookup:
        return Lookup.of(self)

    def image(self, name: str) -> Image:
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)


Key = tuple[str, str, str]


@dataclass
class Lookup:
    """Records keyed by (registry, repository, tag) or (repository, tag), built once, so that
    pages for thousands of tags do not filter DataFrames once per tag."""

    pulls: dict[tuple[str, str], list[dict[str, Any]]]
    probes: dict[tuple[str, str], list[dict[str, Any]]]
    history: dict[tuple[str, str], list[dict[str, Any]]]
    status: dict[Key, dict[str, Any]]
    digest: dict[Key, str]
    good: dict[Key, dict[str, Any]]
    locations: dict[tuple[str, str], list[str]]

    @classmethod
    def of(cls, data: SiteData) -> Lookup:
        pulls = _by_tag(data.pulls)
        probes = _by_tag(data.probes)
        digest: dict[Key, str] = {}
        for group in probes.values():
            for record in sorted(group, key=lambda r: r["observed_at"]):
                if record["digest"]:
                    digest[(record["registry"], record["repository"], record["tag"])] = record[
                        "digest"
                    ]
        status = {(r["registry"], r["repository"], r["tag"]): r for r in records(data.tag_status)}
        locations: dict[tuple[str, str], list[str]] = defaultdict(list)
        for registry, repository, tag in sorted(status):
            locations[(repository, tag)].append(registry)
        good = {
            (r["registry"], r["repository"], r["tag"]): r for r in records(data.last_known_good)
        }
        return cls(pulls, probes, _by_tag(data.changes), status, digest, good, dict(locations))


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a DataFrame as dicts; faster than `to_dict("records")` on string columns."""
    columns = [str(column) for column in frame.columns]
    values = [frame[column].tolist() for column in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _by_tag(frame: pd.DataFrame) -> dict[tuple[str, str], list[dict[str, Any]]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    if frame.empty:
        return grouped
    for record in records(frame):
        grouped[(record["repository"], record["tag"])].append(record)
    return grouped


def cell(record: dict[str, Any]) -> Cell:
    """A matrix cell from an observation record (a row as a dict)."""
    return Cell(
        verdict=record["verdict"] or "unknown",
        error_class=record["error_class"],
        message=record["message"],
        cause=record["cause"],
        predicted=record["predicted"],
        finding=record["finding"],
        digest=record["digest"],
        observed_at=record["observed_at"],
        kind=record["kind"],
        probe=record["method"] == "probe",
    )


def image_slugs(names: Iterable[str]) -> dict[str, str]:
    """A readable slug per image name (`kivy/buildozer` -> `kivy-buildozer`), unique in the set."""
    names = sorted(set(names))
    plain = {name: name.replace("/", "-") for name in names}
    taken = list(plain.values())
    return {
        name: text if slug(text) == text and taken.count(text) == 1 else slug(name)
        for name, text in plain.items()
    }


def build(frame: pd.DataFrame) -> SiteData:
    """Derive everything the pages show from an observation DataFrame."""
    pulls = latest(frame, method="pull")
    probes = latest(frame, method="probe")
    runs = health.run_times(frame) if not frame.empty else pd.Series(dtype=str)
    slugs = image_slugs(frame["repository"])
    images = [_image(name, slugs[name], frame, pulls, probes) for name in sorted(slugs)]
    engines = sort_engines(set(pulls["client_version"]) - {""}) if not pulls.empty else []
    tag_runs = health.tag_runs(frame)
    data = SiteData(
        frame=frame,
        images=images,
        engines=engines,
        runs=runs,
        status=health.registry_status(frame, tag_runs),
        incidents=health.incidents(frame, tag_runs),
        tag_status=health.tag_status(frame, tag_runs),
        pass_rate=health.pass_rate(frame),
        last_known_good=last_known_good(frame),
        pulls=pulls,
        probes=probes,
        changes=changes(frame),
    )
    log.info("site model: %d observations, %d images", len(frame), len(images))
    return data


# Registry host -> the public registry it stands in for (the lab's loopback registries), from
# `<data>/registries.json` as `collect` writes it. Shown beside the host; never used in commands.
REGISTRY_ROLES: dict[str, str] = {}


def role_note(registry: str) -> str:
    """` (docker.io role)` for a registry that stands in for another, else empty."""
    role = REGISTRY_ROLES.get(registry, "")
    return f" ({role} role)" if role and role != registry else ""


def registry_label(registry: str) -> str:
    return f"{registry}{role_note(registry)}"


def load_roles(data_dir: Path | None) -> dict[str, str]:
    """The registry roles recorded beside the observations; a file that is not valid is ignored."""
    path = Path(data_dir) / ROLES_FILE if data_dir else None
    if path is None or not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str) and len(v) <= 100}


def load_data(data_dir: Path | None) -> SiteData:
    """The site model of every shard under `data_dir` (an empty model when there is none)."""
    REGISTRY_ROLES.clear()
    REGISTRY_ROLES.update(load_roles(data_dir))
    if data_dir is None or not Path(data_dir).exists():
        from matrix.observations import to_frame

        return build(to_frame([]))
    return build(_redacted(load([Path(data_dir)])))


def _redacted(frame: pd.DataFrame) -> pd.DataFrame:
    """Messages and causes with credentials removed once more before anything is published:
    shards merged from elsewhere, or written by an older version, may still carry them."""
    for column in ("message", "cause"):
        values = frame[column].unique()
        cleaned = {value: redact_message(value) for value in values if value}
        frame[column] = [cleaned.get(value, value) for value in frame[column]]
    return frame


def _image(
    name: str, image_slug: str, frame: pd.DataFrame, pulls: pd.DataFrame, probes: pd.DataFrame
) -> Image:
    own = frame[frame["repository"] == name]
    locations = sorted({(r, name) for r in own["registry"]})
    own_pulls = pulls[pulls["repository"] == name]
    own_probes = probes[probes["repository"] == name]
    # A probe of the tag list itself has no tag: it counts for the registry's health, but has
    # no row in the matrix and no tag page.
    tags = sort_tags(set(own["tag"]) - {""})
    engines = sort_engines(set(own_pulls["client_version"]) - {""})
    candidates = _drift_candidates(own_probes, locations)
    drift_frame = mirror_drift(
        own[own["tag"].isin(candidates)], {name: [f"{r}/{n}" for r, n in locations]}
    )
    drift = {
        row["tag"]: {loc: row[loc] for loc in drift_frame.columns if loc not in ("image", "tag")}
        for _, row in drift_frame.iterrows()
    }
    image = Image(name, image_slug, locations, tags, engines, drift=drift)
    order = {tag: index for index, tag in enumerate(tags)}
    for registry, _ in locations:
        image.blocks.extend(_blocks(image, registry, own_pulls, own_probes, order))
    return image


def _drift_candidates(probes: pd.DataFrame, locations: list[tuple[str, str]]) -> set[str]:
    """Tags that may drift: their digests differ between registries, or a registry lacks them.

    `mirror_drift` decides; this only spares it the tags that cannot drift, which matters with
    thousands of tags.
    """
    if probes.empty or len(locations) < 2:
        return set()
    seen = probes[probes["digest"] != ""]
    per = seen.groupby(["tag", "registry"])["digest"].agg(lambda s: ",".join(sorted(set(s))))
    table = per.unstack()
    table = table.reindex(columns=[registry for registry, _ in locations])
    varies = table.isna().any(axis=1) | (table.nunique(axis=1) > 1)
    return set(table.index[varies]) | (set(probes["tag"]) - set(seen["tag"]))


def _blocks(
    image: Image, registry: str, pulls: pd.DataFrame, probes: pd.DataFrame, order: dict[str, int]
) -> list[Block]:
    pull_records = [r for r in records(pulls[pulls["registry"] == registry]) if r["tag"] in order]
    probe_records = [
        r for r in records(probes[probes["registry"] == registry]) if r["tag"] in order
    ]
    platforms = sorted(
        {r["platform"] for r in pull_records} | {r["platform"] for r in probe_records}
    )
    blocks = []
    for platform in platforms:
        cells = {
            (r["tag"], r["client_version"]): cell(r)
            for r in pull_records
            if r["platform"] == platform
        }
        probe_cells = {r["tag"]: cell(r) for r in probe_records if r["platform"] == platform}
        tags = sorted({tag for tag, _ in cells} | set(probe_cells), key=order.__getitem__)
        rows = [
            Row(
                tag,
                probe_cells.get(tag),
                [cells.get((tag, engine)) for engine in image.engines],
                drift=tag in image.drift,
            )
            for tag in tags
        ]
        blocks.append(Block(registry, image.name, platform, image.engines, rows))
    return blocks


def changes(frame: pd.DataFrame) -> pd.DataFrame:
    """The history worth showing: each cell's first observation and every change of its verdict
    or digest, oldest first."""
    if frame.empty:
        return frame.assign(previous="")
    ordered = frame.sort_values([*CELL_KEY, "observed_at", "run_id"], kind="stable")
    state = ordered["verdict"] + "@" + ordered["digest"]
    previous_state = ordered.assign(state=state).groupby(CELL_KEY, sort=False)["state"].shift()
    changed = previous_state.isna() | (previous_state != state)
    result = ordered[changed].copy()
    result["previous"] = previous_state[changed].fillna("").str.split("@").str[0]
    return result.sort_values(["observed_at", *CELL_KEY], kind="stable").reset_index(drop=True)


def parse_details(text: str) -> dict[str, Any]:
    """The format analysis kept on a probe row, or {} when it is missing or not a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable analysis": text[:200]}
    return value if isinstance(value, dict) else {"analysis": value}


def class_title(verdict: str) -> str:
    try:
        return CLASS_INFO[ErrorClass(verdict)].title
    except ValueError:
        return verdict


def engine_key(version: str) -> list[int]:
    """The numeric part of an engine version as JSON-friendly data for the finder."""
    return list(version_tuple(version)) or [0]


def engine_order(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=engine_sort_key)


@dataclass(frozen=True)
class Alternative:
    """A digest to pull instead of a failing tag, and why it is a good one."""

    registry: str
    repository: str
    tag: str
    digest: str
    why: str
    observed_at: str

    @property
    def command(self) -> str:
        return f"docker pull {self.registry}/{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Failure:
    """A tag failing now on one registry, with what to pull instead."""

    registry: str
    repository: str
    tag: str
    verdict: str
    since: str
    message: str
    cause: str
    alternatives: list[Alternative]
    # What engines said when they pulled the tag last: (message, engine versions), as a user
    # of the tag sees it.
    reports: list[tuple[str, list[str]]] = field(default_factory=list)


def _when(text: str) -> str:
    return str(text).replace("T", " ")[:16] + " UTC" if text else ""


def current_digest(data: SiteData, registry: str, repository: str, tag: str) -> str:
    """The digest the tag pointed at in its latest probe on this registry ("" if never probed)."""
    return data.lookup.digest.get((registry, repository, tag), "")


def alternatives(data: SiteData, registry: str, repository: str, tag: str) -> list[Alternative]:
    """The same tag on registries where it is healthy, then the last known good digest here."""
    lookup = data.lookup
    result = []
    for other in lookup.locations.get((repository, tag), []):
        status = lookup.status[(other, repository, tag)]
        if other == registry or status["status"] != health.HEALTHY:
            continue
        digest = current_digest(data, other, repository, tag)
        if digest:
            where = f"{other}{role_note(other)}"
            why = f"the same tag on {where}, where it pulls (since {_when(status['since'])})"
            result.append(Alternative(other, repository, tag, digest, why, status["last_run"]))
    good = lookup.good.get((registry, repository, tag))
    if good is not None:
        when = _when(good["observed_at"])
        why = f"the last digest of this tag that pulled from {registry} ({when})"
        result.append(
            Alternative(registry, repository, tag, good["digest"], why, good["observed_at"])
        )
    return result


def engine_reports(
    data: SiteData, registry: str, repository: str, tag: str
) -> list[tuple[str, list[str]]]:
    """The messages of the latest failed pulls of a tag, each with the engines that said it."""
    said: dict[str, set[str]] = defaultdict(set)
    for record in data.lookup.pulls.get((repository, tag), []):
        if record["registry"] == registry and record["verdict"] != "ok" and record["message"]:
            said[record["message"]].add(record["client_version"])
    return [(message, sort_engines(engines)) for message, engines in sorted(said.items())]


def failing_now(data: SiteData, repository: str | None = None) -> list[Failure]:
    """Tags whose latest run failed in a way that counts against the registry, newest first."""
    failures = [
        Failure(
            r["registry"],
            r["repository"],
            r["tag"],
            r["verdict"],
            r["since"],
            r["message"],
            r["cause"],
            alternatives(data, r["registry"], r["repository"], r["tag"]),
            engine_reports(data, r["registry"], r["repository"], r["tag"]),
        )
        for r in data.lookup.status.values()
        if r["status"] == health.FAILING and repository in (None, r["repository"])
    ]
    failures.sort(key=lambda f: (f.since, f.registry, f.tag), reverse=True)
    return failures
