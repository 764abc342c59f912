"""The generated part of the site: which pages exist, what each shows, and the standalone files.

MkDocs renders a handful of pages (home, one matrix per image, engines, finder, runbook,
history, data). Everything that grows with the number of tags is written as small standalone
files next to them (one HTML page per tag, badges, data downloads, the feed), so the site stays
fast to build and small on disk with thousands of tags: a Material page repeats the whole
navigation, a standalone tag page does not.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
import logging
import multiprocessing
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from matrix.classify import ErrorClass, export_rules
from matrix.errors import MatrixError
from matrix.incidents import FAILING, HEALTHY
from matrix.observations import COLUMNS
from matrix.site import render as r
from matrix.site.model import (
    GENERATED_BY,
    Block,
    Cell,
    Image,
    SiteData,
    alternatives,
    cell,
    engine_key,
    failing_now,
    parse_details,
    records,
    role_note,
)
from matrix.site.versions import slug, tag_sort_key, version_tuple

log = logging.getLogger(__name__)


@dataclass
class Page:
    """A generated MkDocs page: its source path, navigation title and how to render its body."""

    src_uri: str
    title: str
    template: str
    context: Callable[[], dict[str, Any]]
    search: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def markdown(self) -> str:
        """The page's Markdown: front matter only; the body is rendered HTML put in by the hook."""
        lines = ["---", f"title: {json.dumps(r.safe_title(self.title))}"]
        lines += ["hide:", "  - toc"]
        if not self.search:
            lines += ["search:", "  exclude: true"]
        lines += ["---", "", "<!-- pull-matrix:generated -->", ""]
        return "\n".join(lines)

    def body(self, root: str) -> str:
        return r.render(self.template, root=root, **self.context())


# --------------------------------------------------------------------------- pages and nav


def pages(data: SiteData) -> list[Page]:
    result = [
        Page("index.md", "Home", "home.html", lambda: home_context(data)),
        Page(
            "finder.md",
            "Finder",
            "finder.html",
            lambda: {"data": data, "finder": finder_data(data)},
        ),
        Page("runbook.md", "Runbook", "runbook.html", lambda: runbook_context(data), search=False),
        Page("history.md", "History", "history.html", lambda: history_context(data)),
        Page("data.md", "Data", "data.html", lambda: data_context(data)),
        Page("engines/index.md", "Engines", "engines.html", lambda: engines_context(data)),
        Page("matrix/index.md", "Matrix", "matrices.html", lambda: {"data": data}),
    ]
    for image in data.images:
        result.append(
            Page(
                f"matrix/{image.slug}.md",
                image.name,
                "matrix.html",
                _bind(lambda image: {"data": data, "image": image}, image),
                search=False,
            )
        )
    for version in data.engines:
        result.append(
            Page(
                f"engines/{slug(version)}.md",
                version,
                "engine.html",
                _bind(lambda version: engine_context(data, version), version),
                search=False,
            )
        )
    return result


def _bind(function: Callable[[Any], dict[str, Any]], value: Any) -> Callable[[], dict[str, Any]]:
    return lambda: function(value)


def nav(data: SiteData, handwritten: list[str]) -> list[Any]:
    """The navigation: a few fixed entries, one matrix per image, one page per engine version."""
    by_uri = {page.src_uri: page for page in pages(data)}
    matrices: list[Any] = ["matrix/index.md"]
    matrices += [
        {r.safe_title(by_uri[f"matrix/{i.slug}.md"].title): f"matrix/{i.slug}.md"}
        for i in data.images
    ]
    engines: list[Any] = ["engines/index.md"]
    engines += [{r.safe_title(v): f"engines/{slug(v)}.md"} for v in data.engines]
    entries: list[Any] = [{"Home": "index.md"}]
    entries.append({"Matrix": matrices})
    entries += [
        {"Finder": "finder.md"},
        {"Runbook": "runbook.md"},
        {"Engines": engines},
        {"History": "history.md"},
        {"Data": "data.md"},
    ]
    entries += [{_handwritten_title(path): path} for path in handwritten]
    return entries


def _handwritten_title(path: str) -> str:
    return Path(path).stem.replace("-", " ").capitalize()


# --------------------------------------------------------------------------- page contexts


def _status_rows(data: SiteData) -> list[dict[str, Any]]:
    slugs = {image.name: image.slug for image in data.images}
    rows = []
    for row in records(data.status):
        rows.append(
            {
                "registry": row["registry"],
                "repository": row["repository"],
                "status": row["status"],
                "since": row["since"],
                "last_run": row["last_run"],
                "failing_tags": sorted(row["failing_tags"], key=tag_sort_key),
                "image_slug": slugs.get(row["repository"], slug(row["repository"])),
            }
        )
    return rows


def _incident_rows(data: SiteData) -> list[dict[str, Any]]:
    rows = records(data.incidents)
    for row in rows:
        row["tags"] = sorted(row["tags"], key=tag_sort_key)
    return rows


def home_context(data: SiteData) -> dict[str, Any]:
    return {
        "data": data,
        "status": _status_rows(data),
        "failures": failing_now(data),
        "incidents": _incident_rows(data),
    }


def history_context(data: SiteData) -> dict[str, Any]:
    charts = []
    for (registry, repository), group in data.pass_rate.groupby(["registry", "repository"]):
        points = [
            (str(row["day"]), float(row["rate"]), float(row["health"])) for row in records(group)
        ]
        location = f"{registry}/{repository}"
        charts.append(
            {
                "location": location,
                "registry": registry,
                "svg": r.chart_svg(points, f"Daily pass rate of pulls from {location}"),
                "days": len(points),
                "attempts": int(group["attempts"].sum()),
            }
        )
    return {"data": data, "charts": charts, "incidents": _incident_rows(data)}


def _engine_counts(data: SiteData) -> dict[str, dict[str, tuple[int, int]]]:
    counts: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    pulls = data.pulls
    if pulls.empty:
        return counts
    grouped = pulls.groupby(["client_version", "registry", "repository", "platform"])
    for (version, registry, repository, platform), group in grouped:
        column = f"{registry}/{repository} {platform}"
        ok = int((group["verdict"] == "ok").sum())
        counts[str(version)][column] = (ok, len(group))
    return counts


def engines_context(data: SiteData) -> dict[str, Any]:
    counts = _engine_counts(data)
    columns = sorted({column for per in counts.values() for column in per})
    engines = [{"version": v, "counts": counts.get(v, {})} for v in data.engines]
    return {"data": data, "engines": engines, "columns": columns}


def capability_rows(version: str | None = None) -> list[dict[str, Any]]:
    """The capability table as rows, with `supported` for `version`; [] when it is not there."""
    try:
        module = importlib.import_module("matrix.capabilities")
        table = module.CAPABILITIES
    except (ImportError, AttributeError) as exc:
        log.info("no capability table: %s", exc)
        return []
    rows = []
    for cap in table:
        row = {
            "feature": cap.feature,
            "since": cap.since,
            "until": cap.until,
            "symptom": str(cap.symptom),
            "source": cap.source,
            "note": cap.note,
            "supported": True,
        }
        if version is not None:
            try:
                row["supported"] = bool(module.supports(cap.feature, version))
                row["position"] = _position(module, cap, version, row["supported"])
            except Exception as exc:  # a table row this code cannot evaluate is shown as unknown
                log.warning("capability %s for %s: %s", cap.feature, version, exc)
                row["position"] = "unknown"
        rows.append(row)
    return rows


def _position(module: Any, cap: Any, version: str, supported: bool) -> str:
    if supported:
        return "within the range"
    engine = module.parse_engine_version(version)
    if cap.since and engine < module.parse_engine_version(cap.since):
        return f"before {cap.since}"
    return f"from {cap.until} on" if cap.until else "outside the range"


def engine_context(data: SiteData, version: str) -> dict[str, Any]:
    sections = []
    for image in data.images:
        for block in image.blocks:
            index = block.engines.index(version) if version in block.engines else -1
            if index < 0:
                continue
            tested = [(row.tag, row.cells[index]) for row in block.rows if row.cells[index]]
            sections.append(
                {
                    "registry": block.registry,
                    "image": image.name,
                    "image_slug": image.slug,
                    "platform": block.platform,
                    "total": len(tested),
                    "untested": len(block.rows) - len(tested),
                    "ok": [tag for tag, c in tested if c is not None and c.ok],
                    "failed": [(tag, c) for tag, c in tested if c is not None and not c.ok],
                }
            )
    return {
        "data": data,
        "engine": {"version": version, "sections": sections},
        "capabilities": capability_rows(version),
    }


# Codes in the finder's verdict lists besides class indexes.
NOT_PULLED_YET = -1  # the tag is in the block (probed or pulled), but this engine has not pulled it
NOT_IN_BLOCK = -2  # the tag was never seen on this registry and platform


def finder_data(data: SiteData) -> dict[str, Any]:
    """What the finder needs, compactly: per block and engine, one class index per tag.

    A tag of the block that the engine has not pulled yet is NOT_PULLED_YET, so that the finder
    can list it; a tag the block does not have is NOT_IN_BLOCK.
    """
    classes = sorted({str(c) for c in ErrorClass} | set(data.pulls.get("verdict", [])))
    code = {name: index for index, name in enumerate(classes)}
    images = []
    for image in data.images:
        position = {tag: index for index, tag in enumerate(image.tags)}
        blocks = []
        for block in image.blocks:
            verdicts = [[NOT_IN_BLOCK] * len(image.tags) for _ in block.engines]
            predicted: list[dict[str, str]] = [{} for _ in block.engines]
            for row in block.rows:
                for engine_index, c in enumerate(row.cells):
                    value = NOT_PULLED_YET if c is None else code[c.verdict]
                    verdicts[engine_index][position[row.tag]] = value
                    if c is None:
                        guess = _prediction(data, block, row.tag, block.engines[engine_index])
                        if guess:
                            predicted[engine_index][str(position[row.tag])] = guess
            blocks.append(
                {
                    "registry": block.registry,
                    "role": role_note(block.registry),
                    "repository": block.repository,
                    "platform": block.platform,
                    "engines": block.engines,
                    "verdicts": verdicts,
                    "predicted": predicted,
                }
            )
        images.append(
            {
                "name": image.name,
                "slug": image.slug,
                "tags": image.tags,
                "tagSlugs": [slug(tag) for tag in image.tags],
                "blocks": blocks,
            }
        )
    capabilities = [{k: v for k, v in row.items() if k != "supported"} for row in capability_rows()]
    return {
        "classes": classes,
        "titles": {name: r.class_title(name) for name in classes},
        "engines": [{"version": v, "key": engine_key(v), "slug": slug(v)} for v in data.engines],
        "images": images,
        "capabilities": capabilities,
        "last_run": data.last_run,
    }


def _prediction(data: SiteData, block: Block, tag: str, engine: str) -> str:
    """The registry check's predicted verdict of a tag for an engine, or "" when there is none.

    Predictions are kept per reference version (`20.10`, `26.1`, ...); an engine takes the one
    of the newest reference version not newer than itself.
    """
    probes = data.lookup.probes.get((block.repository, tag), [])
    for record in probes:
        if record["registry"] != block.registry or record["platform"] != block.platform:
            continue
        predictions = parse_details(record["details"]).get("predictions")
        if not isinstance(predictions, dict) or not predictions:
            return ""
        version = version_tuple(engine)
        older = [key for key in predictions if version_tuple(str(key)) <= version]
        if not older:
            return ""
        return str(predictions[max(older, key=lambda key: version_tuple(str(key)))])
    return ""


def runbook_context(data: SiteData) -> dict[str, Any]:
    seen: dict[str, dict[str, Any]] = {}
    pulls = data.pulls
    failed = pulls[pulls["verdict"] != "ok"] if not pulls.empty else pulls
    for verdict, group in failed.groupby("verdict") if not failed.empty else []:
        locations = {
            f"{registry}/{repository}": sorted(set(sub["tag"]), key=tag_sort_key)
            for (registry, repository), sub in group.groupby(["registry", "repository"])
        }
        seen[str(verdict)] = {"cells": len(group), "locations": locations}
    engines = []
    for version in data.engines:
        own = pulls[pulls["client_version"] == version]
        failures = Counter(own[own["verdict"] != "ok"]["verdict"])
        engines.append(
            {
                "version": version,
                "ok": int((own["verdict"] == "ok").sum()),
                "total": len(own),
                "failures": sorted(failures.items()),
            }
        )
    good = data.last_known_good.copy()
    if not good.empty:
        good["order"] = good["tag"].map(tag_sort_key)
        good = good.sort_values(["repository", "order", "registry"]).drop(columns="order")
    failing = failing_now(data)
    return {
        "data": data,
        "status": _status_rows(data),
        "failures": failing,
        "engines": engines,
        "seen_by_class": seen,
        "good": good.to_dict("records"),
        "rules": export_rules(),
        "runbook": {
            "healthy": [
                f"{s['registry']}/{s['repository']}"
                for s in _status_rows(data)
                if s["status"] == HEALTHY
            ],
            "seen": seen,
            "failing": [
                {
                    "location": f"{f.registry}/{f.repository}",
                    "tag": f.tag,
                    "verdict": f.verdict,
                    "symptoms": _symptoms(data, f.registry, f.repository, f.tag),
                    "alternatives": [a.command for a in f.alternatives],
                }
                for f in failing
            ],
        },
    }


def _symptoms(data: SiteData, registry: str, repository: str, tag: str) -> list[str]:
    """The classes of the engines' messages for a tag: what a user of the tag has seen."""
    pulls = data.pulls
    own = pulls[
        (pulls["registry"] == registry)
        & (pulls["repository"] == repository)
        & (pulls["tag"] == tag)
    ]
    return sorted(set(own["error_class"]) - {"", "ok"})


def data_context(data: SiteData) -> dict[str, Any]:
    schema = json_schema()
    columns = list(schema["$defs"]["observation"]["properties"].items())
    badges = []
    for image in data.images[:1]:
        badges.append(f"badges/{image.slug}.svg")
        for registry, _ in image.locations:
            badges.append(f"badges/{image.slug}/{slug(registry)}.svg")
            if image.tags:
                badges.append(f"badges/{image.slug}/{slug(registry)}/{slug(image.tags[0])}.svg")
    return {"data": data, "files": DATA_FILES, "columns": columns, "badges": badges}


DATA_FILES = [
    {"path": "data/observations.csv.gz", "about": "Every observation (gzip-compressed CSV)."},
    {"path": "data/observations.json.gz", "about": "Every observation (gzip-compressed JSON)."},
    {
        "path": "data/matrix.csv.gz",
        "about": "The latest observation of every cell: the matrix (gzip-compressed CSV).",
    },
    {"path": "data/matrix.json", "about": "The latest matrix as JSON."},
    {"path": "data/last-known-good.csv", "about": "The last digest of each tag that pulled."},
    {"path": "data/last-known-good.json", "about": "The same as JSON."},
    {"path": "data/incidents.json", "about": "Every incident with start and end."},
    {"path": "data/schema.json", "about": "JSON Schema of the JSON files above."},
    {"path": "feed.xml", "about": "Atom feed of incidents."},
]


# --------------------------------------------------------------------------- standalone files

_DESCRIPTIONS = {
    "run_id": "The run that made the observation: UTC start time plus a random suffix.",
    "observed_at": "When the attempt finished (UTC, ISO 8601).",
    "registry": "The registry, as people write it (docker.io, ghcr.io, host:port).",
    "repository": "The repository on the registry, e.g. kivy/buildozer.",
    "tag": "The tag as the registry lists it.",
    "platform": "os/architecture[/variant] asked for.",
    "client": "`probe` for the registry-side check, `docker` for an engine pull.",
    "client_version": "The engine version as `docker version` prints it; empty for probes.",
    "method": "`probe` or `pull`.",
    "digest": "The manifest digest the tag pointed at.",
    "outcome": "`ok`, `fail` (the pull failed) or `error` (the harness failed).",
    "error_class": "The class of the symptom (the engine's or registry's message).",
    "http_status": "HTTP status of the registry's answer, when known.",
    "message": "The engine's or registry's message, as it was.",
    "duration_s": "Seconds the attempt took.",
    "bytes": "Bytes downloaded.",
    "verdict": "What the matrix shows: `ok` or the class of the explained cause.",
    "cause": "The explained cause in words.",
    "predicted": "The class the capability table predicted for this engine.",
    "finding": "Set when the observation contradicts the prediction.",
    "platform_digest": "Digest of the platform's manifest inside an index.",
    "kind": "What the tag points at: image, index, schema1, not-an-image.",
    "media_type": "Media type of the tag's manifest.",
    "ratelimit_limit": "The registry's pull limit, when it said.",
    "ratelimit_remaining": "Pulls left in the window, when it said.",
    "ratelimit_source": "Where the limit came from (headers of which request).",
    "details": "Compact JSON of the format analysis (probe rows).",
}
_NUMERIC_COLUMNS = {"http_status", "duration_s", "bytes", "ratelimit_limit", "ratelimit_remaining"}


def json_schema() -> dict[str, Any]:
    properties: dict[str, dict[str, Any]] = {
        name: {
            "type": ["number", "null"] if name in _NUMERIC_COLUMNS else "string",
            "description": _DESCRIPTIONS.get(name, ""),
        }
        for name in COLUMNS
    }
    observation = {
        "type": "object",
        "required": list(COLUMNS),
        "additionalProperties": False,
        "properties": properties,
    }
    matrix = {
        "type": "object",
        "required": ["generated_by", "columns", "rows"],
        "properties": {
            "generated_by": {"type": "string"},
            "columns": {"const": list(MATRIX_COLUMNS)},
            "rows": {
                "type": "array",
                "description": "One array per cell, in the order of `columns`.",
                "items": {
                    "type": "array",
                    "prefixItems": [properties[c] for c in MATRIX_COLUMNS],
                    "minItems": len(MATRIX_COLUMNS),
                    "maxItems": len(MATRIX_COLUMNS),
                },
            },
        },
    }
    observations = {
        "type": "object",
        "required": ["generated_by", "rows"],
        "properties": {
            "generated_by": {"type": "string"},
            "rows": {"type": "array", "items": {"$ref": "#/$defs/observation"}},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "data/schema.json",
        "title": "pull-matrix data",
        "description": "observations.json.gz holds `observations`; matrix.json holds `matrix`, "
        "the latest observation of every cell.",
        "anyOf": [{"$ref": "#/$defs/observations"}, {"$ref": "#/$defs/matrix"}],
        "$defs": {"observation": observation, "observations": observations, "matrix": matrix},
    }


MATRIX_COLUMNS = (
    "registry",
    "repository",
    "tag",
    "platform",
    "client",
    "client_version",
    "method",
    "observed_at",
    "digest",
    "kind",
    "verdict",
    "error_class",
    "predicted",
    "finding",
    "message",
    "cause",
)


def _sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["repository", "registry", "tag", "platform", "client", "client_version", "observed_at"]
    return frame.sort_values([*keys, "run_id"], kind="stable")


def csv_text(frame: pd.DataFrame) -> str:
    """The frame as CSV, as `DataFrame.to_csv(index=False)` writes it, in less time."""
    columns = [str(column) for column in frame.columns]
    values = [frame[column].tolist() for column in columns]
    for index, column in enumerate(columns):
        if frame[column].dtype.kind == "f":
            values[index] = ["" if value != value else value for value in values[index]]
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*values, strict=True))
    return stream.getvalue()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _document(frame: pd.DataFrame, key: str) -> str:
    """`{"generated_by": ..., key: [records]}` with pandas' fast JSON writer for the records."""
    rows = frame.to_json(orient="records", force_ascii=False) if len(frame) else "[]"
    return f'{{"generated_by":{json.dumps(GENERATED_BY)},"{key}":{rows}}}'


def write_data(data: SiteData, out: Path) -> None:
    directory = out / "data"
    directory.mkdir(parents=True, exist_ok=True)
    frame = _sorted_frame(data.frame)[list(COLUMNS)]
    cells = _sorted_frame(pd.concat([data.probes, data.pulls], ignore_index=True))
    cells = cells[list(MATRIX_COLUMNS)]
    # mtime=0 keeps the compressed files identical from build to build.
    with gzip.GzipFile(directory / "observations.csv.gz", "wb", compresslevel=6, mtime=0) as stream:
        stream.write(csv_text(frame).encode())
    with gzip.GzipFile(
        directory / "observations.json.gz", "wb", compresslevel=6, mtime=0
    ) as stream:
        stream.write(_document(frame, "rows").encode())
    with gzip.GzipFile(directory / "matrix.csv.gz", "wb", compresslevel=6, mtime=0) as stream:
        stream.write(csv_text(cells).encode())
    (directory / "matrix.json").write_text(
        _json(
            {
                "generated_by": GENERATED_BY,
                "columns": list(MATRIX_COLUMNS),
                "rows": cells.to_numpy().tolist(),
            }
        ),
        encoding="utf-8",
    )
    good = data.last_known_good
    (directory / "last-known-good.csv").write_text(csv_text(good), encoding="utf-8")
    (directory / "last-known-good.json").write_text(_document(good, "rows"), encoding="utf-8")
    incidents = [dict(row, tags=list(row["tags"])) for row in records(data.incidents)]
    (directory / "incidents.json").write_text(
        _json({"generated_by": GENERATED_BY, "incidents": incidents}), encoding="utf-8"
    )
    (directory / "schema.json").write_text(
        json.dumps(json_schema(), indent=1, sort_keys=True), encoding="utf-8"
    )


def write_feed(data: SiteData, out: Path, site_url: str = "") -> None:
    entries = []
    for row in records(data.incidents):
        tags = sorted(row["tags"], key=tag_sort_key)
        named = ", ".join(tags[:3]) + (f" and {len(tags) - 3} more" if len(tags) > 3 else "")
        state = f"ended {row['end']}" if row["end"] else "open"
        location = f"{row['registry']}/{row['repository']}"
        entries.append(
            {
                "id": f"urn:pull-matrix:incident:{slug(location)}:{slug(row['verdict'])}:"
                f"{row['start']}:{slug(','.join(tags))}",
                "title": f"{location}: {named}: {row['verdict']} ({state})",
                "updated": row["end"] or row["last_seen"],
                "start": row["start"],
                "link": "history/#incidents",
                "summary": f"{r.class_title(row['verdict'])} from {row['start']} "
                f"({state}). {row['cause'] or row['message']}",
            }
        )
    updated = max([e["updated"] for e in entries], default=data.last_run or "1970-01-01T00:00:00Z")
    text = r.render(
        "feed.xml",
        title="pull-matrix incidents",
        feed_id="urn:pull-matrix:incidents",
        updated=updated,
        site_url=site_url,
        entries=entries,
    )
    (out / "feed.xml").write_text(text, encoding="utf-8")


def _badge_colour(status: str) -> str:
    return r._STATUS_COLOURS.get(status, "#777")


def write_badges(data: SiteData, out: Path) -> None:
    tag_status = data.lookup.status
    status = {(r["registry"], r["repository"]): r for r in data.status.to_dict("records")}
    for image in data.images:
        directory = out / "badges" / image.slug
        directory.mkdir(parents=True, exist_ok=True)
        worst = _worst([status[loc]["status"] for loc in image.locations if loc in status])
        (out / "badges" / f"{image.slug}.svg").write_text(
            r.badge_svg(image.name, worst, _badge_colour(worst)), encoding="utf-8"
        )
        for registry, repository in image.locations:
            location = status.get((registry, repository))
            value = location["status"] if location else "unknown"
            (directory / f"{slug(registry)}.svg").write_text(
                r.badge_svg(registry, value, _badge_colour(value)), encoding="utf-8"
            )
            tag_dir = directory / slug(registry)
            tag_dir.mkdir(exist_ok=True)
            for tag in image.tags:
                row = tag_status.get((registry, repository, tag))
                if row is None:
                    message, colour = "not tested", "#777"
                elif row["status"] == HEALTHY:
                    message, colour = "pulls", _badge_colour(HEALTHY)
                else:
                    message, colour = row["verdict"], _badge_colour(FAILING)
                (tag_dir / f"{slug(tag)}.svg").write_text(
                    r.badge_svg(f"{registry} {tag}", message, colour), encoding="utf-8"
                )


def _worst(statuses: list[str]) -> str:
    for value in ("failing", "degraded", "healthy"):
        if value in statuses:
            return value
    return "unknown"


def write_tag_pages(data: SiteData, out: Path, stylesheets: tuple[str, ...] = ()) -> int:
    """One standalone HTML page per tag of each image; returns how many were written.

    `stylesheets` are the theme's stylesheets (paths from the site root), so that the tag pages
    read like the rest of the site.
    """
    template = r.environment().get_template("tag.html")
    written = 0
    for image in data.images:
        directory = out / "tags" / image.slug
        directory.mkdir(parents=True, exist_ok=True)
        for tag in image.tags:
            context = _tag_context(data, image, tag)
            text = template.render(root="../../", stylesheets=stylesheets, **context)
            (directory / f"{slug(tag)}.html").write_text(text, encoding="utf-8")
            written += 1
    return written


def _tag_context(data: SiteData, image: Image, tag: str) -> dict[str, Any]:
    lookup = data.lookup
    pulls = lookup.pulls.get((image.name, tag), [])
    probes = lookup.probes.get((image.name, tag), [])
    sections = []
    for registry, repository in image.locations:
        own_probes = sorted(
            (p for p in probes if p["registry"] == registry), key=lambda p: p["platform"]
        )
        own_pulls = [p for p in pulls if p["registry"] == registry]
        status = lookup.status.get((registry, repository, tag))
        if status is None and not own_probes and not own_pulls:
            continue
        digest = lookup.digest.get((registry, repository, tag), "")
        if not digest and own_pulls:
            digest = max(own_pulls, key=lambda p: p["observed_at"])["digest"]
        probe_rows = [(p["platform"], cell(p), parse_details(p["details"])) for p in own_probes]
        first = probe_rows[0][2] if probe_rows else {}
        by_platform: dict[str, dict[str, Cell]] = defaultdict(dict)
        for record in own_pulls:
            by_platform[record["platform"]][record["client_version"]] = cell(record)
        pull_rows = [
            (platform, _alike([(v, cells[v]) for v in image.engines if v in cells]))
            for platform, cells in sorted(by_platform.items())
        ]
        if "platforms" in first:
            platforms = list(first["platforms"]) or ["none"]
        elif first.get("platform"):
            platforms = [first["platform"]]
        else:
            platforms = sorted(by_platform)
        sections.append(
            {
                "registry": registry,
                "repository": repository,
                "status": status,
                "digest": digest,
                "kind": own_probes[0]["kind"] if own_probes else "",
                "media_type": own_probes[0]["media_type"] if own_probes else "",
                "platforms": platforms,
                "image_size": first.get("image_size"),
                "size": first.get("size"),
                "probes": probe_rows,
                "pulls": pull_rows,
                "ok_count": sum(1 for p in own_pulls if p["verdict"] == "ok"),
                "pull_count": len(own_pulls),
                "pullable": bool(digest) and status is not None and status["status"] == HEALTHY,
                "alternatives": alternatives(data, registry, repository, tag),
            }
        )
    _split_alternatives(sections)
    return {
        "data": data,
        "image": image,
        "tag": tag,
        "sections": sections,
        "history": tag_history(lookup.history.get((image.name, tag), []), len(image.engines)),
        "drift": image.drift.get(tag, {}),
    }


def _split_alternatives(sections: list[dict[str, Any]]) -> None:
    """Keep each pull command once on a tag page.

    A failing registry's alternative that is another section's own pull command (the same tag
    where it pulls) moves to `pulls_from`, a list of those registries; the rest stay.
    """
    shown = {
        f"docker pull {s['registry']}/{s['repository']}@{s['digest']}": s["registry"]
        for s in sections
        if s["pullable"]
    }
    for section in sections:
        if section["pullable"]:
            section["pulls_from"] = []
            continue
        alternatives = section["alternatives"]
        section["pulls_from"] = [shown[a.command] for a in alternatives if a.command in shown]
        section["alternatives"] = [a for a in alternatives if a.command not in shown]


def _alike(cells: list[tuple[str, Cell]]) -> list[tuple[list[str], Cell, str]]:
    """Engines whose latest observation says the same thing, as one row: (engines, cell, when).

    `when` is the span of the engines' observation times.
    """
    groups: dict[tuple[str, ...], list[tuple[str, Cell]]] = {}
    for version, c in cells:
        key = (c.predicted, c.error_class, c.verdict, c.finding, c.message, c.cause)
        groups.setdefault(key, []).append((version, c))
    rows = []
    for members in groups.values():
        times = sorted(c.observed_at for _, c in members)
        when = (
            r.when(times[0])
            if times[0] == times[-1]
            else f"{r.when(times[0])} – {r.when(times[-1])}"
        )
        rows.append(([version for version, _ in members], members[-1][1], when))
    return rows


def tag_history(changes: list[dict[str, Any]], engine_count: int) -> list[dict[str, Any]]:
    """Changes of one tag, newest first, with the engines that changed alike in one run joined.

    A run that moved every engine from one verdict to another reads as one line, not eight.
    """
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        key = (
            change["run_id"],
            change["registry"],
            change["platform"],
            change["method"],
            change["previous"],
            change["verdict"],
            change["digest"],
        )
        grouped[key].append(change)
    rows = []
    for group in grouped.values():
        first = min(group, key=lambda c: c["observed_at"])
        versions = sorted(
            {c["client_version"] for c in group if c["client_version"]}, key=engine_key
        )
        if first["method"] == "probe":
            client = "probe"
        elif len(versions) == engine_count and engine_count > 1:
            client = f"all {engine_count} engines"
        else:
            client = ", ".join(versions)
        rows.append(dict(first, client_version=client))
    rows.sort(key=lambda c: (c["observed_at"], c["registry"], c["platform"]), reverse=True)
    return rows


def write_standalone(
    data: SiteData, out: Path, site_url: str = "", stylesheets: tuple[str, ...] = ()
) -> None:
    """Tag pages, data downloads, badges and the feed, into the built site at `out`."""
    start_standalone(data, out, site_url, parallel=False, stylesheets=stylesheets)()


def _write_tag_pages(
    data: SiteData, out: Path, site_url: str, stylesheets: tuple[str, ...]
) -> None:
    count = write_tag_pages(data, out, stylesheets)
    log.info("wrote %d tag pages to %s", count, out)


def _write_downloads(
    data: SiteData, out: Path, site_url: str, stylesheets: tuple[str, ...]
) -> None:
    write_data(data, out)
    write_badges(data, out)
    write_feed(data, out, site_url)
    log.info("wrote data, badges and feed to %s", out)


def start_standalone(
    data: SiteData,
    out: Path,
    site_url: str = "",
    parallel: bool = True,
    stylesheets: tuple[str, ...] = (),
) -> Callable[[], None]:
    """Start writing the standalone files and return a function that waits for them.

    Where processes can be forked, two child processes write them (tag pages; data, badges
    and feed) while the caller goes on, which is how MkDocs renders its pages meanwhile. The
    children share the already-built model by copy-on-write. The waiting function raises
    MatrixError when a child failed.
    """
    out.mkdir(parents=True, exist_ok=True)
    jobs = (_write_tag_pages, _write_downloads)
    _ = data.lookup  # build the lookups once here, not once per child
    if not parallel or "fork" not in multiprocessing.get_all_start_methods():
        for job in jobs:
            job(data, out, site_url, stylesheets)
        return lambda: None
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=job, args=(data, out, site_url, stylesheets)) for job in jobs
    ]
    for child in children:
        child.start()

    def wait() -> None:
        for child in children:
            child.join()
        failed = [job.__name__ for job, child in zip(jobs, children, strict=True) if child.exitcode]
        if failed:
            raise MatrixError(f"writing the standalone files failed in {', '.join(failed)}")

    return wait
