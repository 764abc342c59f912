"""Jinja2 rendering for the site: page fragments, standalone tag pages, badges, charts, feed.

Autoescaping is always on, whatever the template's extension: every string that comes from a
registry or an engine (tag, digest, annotation, message, cause) is data and is escaped. JSON for
the browser goes through the `tojson` filter, which escapes `<`, `>`, `&` and quotes.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup

from matrix.classify import CLASS_INFO, ErrorClass
from matrix.observations import HARNESS_ERROR
from matrix.site.model import (
    GENERATED_BY,
    NOT_PUBLISHED,
    Cell,
    class_title,
    registry_label,
    role_note,
)
from matrix.site.versions import engine_sort_key, slug

# Verdicts with their own colour: the classes, and `error` for a fault of the harness.
_KNOWN_CLASSES = {str(cls) for cls in ErrorClass} | {HARNESS_ERROR}
_STATUS_COLOURS = {"healthy": "#2e7d32", "degraded": "#b26a00", "failing": "#c62828"}


def verdict_css(verdict: str) -> str:
    """A CSS class for a verdict; verdicts outside the known classes share one class."""
    return f"v-{verdict}" if verdict in _KNOWN_CLASSES else "v-unknown"


# What an empty cell means, in the matrix legend and in the cell's title.
NOT_PULLED = "not pulled yet: deferred by the rate-limit budget, or the engine has not run"
NOT_PROBED = "not checked yet: the registry check has not reached this tag on this platform"
_NOT_PULLED_CELL = Markup('<td class="c none" title="{}">–</td>').format(NOT_PULLED)
_NOT_PROBED_CELL = Markup('<td class="c none" title="{}">–</td>').format(NOT_PROBED)


def cell_html(cell: Cell | None, probe: bool = False) -> Markup:
    """One matrix cell as HTML. Written in Python rather than as a template macro because a
    matrix has tens of thousands of cells; every value is escaped. `probe` says which column
    an empty cell is in: the registry check's or an engine's."""
    if cell is None:
        return _NOT_PROBED_CELL if probe else _NOT_PULLED_CELL
    if cell.ok:
        return Markup('<td class="c v-ok">ok</td>')
    classes = f"c {verdict_css(cell.verdict)}" + (" surprise" if cell.surprising else "")
    return Markup('<td class="{}" tabindex="0" title="{}">{}</td>').format(
        classes, cell.title, cell.verdict
    )


def verdict_html(verdict: str) -> Markup:
    """A verdict as a coloured label (a filter: faster than a macro in long tables)."""
    return Markup('<span class="pm-verdict {}">{}</span>').format(verdict_css(verdict), verdict)


def tag_label(tag: str) -> str:
    """How a tag is named in text; a probe of the tag list itself has no tag."""
    return tag if tag else "(the tag list)"


def when(text: str) -> str:
    """`2026-12-03T03:00:01Z` -> `2026-12-03 03:00 UTC`; other text unchanged."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def day(text: str) -> str:
    return str(text)[:10]


def short_digest(digest: str) -> str:
    """`sha256:0123456789ab…` for display; the full digest stays in commands and titles."""
    algorithm, _, value = str(digest).partition(":")
    return f"{algorithm}:{value[:12]}…" if value else str(digest)


def percent(value: float) -> str:
    return f"{100 * float(value):.0f}%"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 tag`, `3 tags`: the count with the noun in the right number."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def human_size(value: Any) -> str:
    try:
        size = float(value)
    except (TypeError, ValueError):
        return str(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(value)


def display_value(value: Any) -> str:
    """A value from the format analysis as readable text."""
    if isinstance(value, list):
        if all(isinstance(item, str | int | float) for item in value):
            return ", ".join(str(item) for item in value) or "none"
        return json.dumps(value, sort_keys=True)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def prediction_runs(predicted: Any) -> list[tuple[str, str, str]]:
    """Engine versions with the same predicted verdict, as runs: (first, last, verdict).

    `{"20.10": "a", "23.0": "a", "24.0": "b"}` -> `[("20.10", "23.0", "a"), ("24.0", "24.0", "b")]`,
    oldest version first. Anything but a mapping gives no runs.
    """
    if not isinstance(predicted, dict):
        return []
    runs: list[tuple[str, str, str]] = []
    for version in sorted(predicted, key=lambda v: engine_sort_key(str(v))):
        verdict = str(predicted[version])
        if runs and runs[-1][2] == verdict:
            runs[-1] = (runs[-1][0], str(version), verdict)
        else:
            runs.append((str(version), str(version), verdict))
    return runs


def predictions_html(predicted: Any) -> Markup:
    """Predicted verdicts per engine version as runs: `20.10–25.0 no-platform-match; …`."""
    runs = prediction_runs(predicted)
    if not runs:
        return Markup("{}").format(display_value(predicted))
    parts = [
        Markup("{} {}").format(first if first == last else f"{first}–{last}", verdict_html(v))
        for first, last, v in runs
    ]
    return Markup('<span class="pm-predictions">{}</span>').format(Markup("; ").join(parts))


def mapping_html(value: dict[str, Any]) -> Markup:
    """A small mapping from the format analysis as `key: value` lines, every part escaped."""
    lines = [
        Markup('<li><span class="pm-key">{}</span>: {}</li>').format(key, display_value(item))
        for key, item in sorted(value.items())
    ]
    return Markup('<ul class="pm-mapping">{}</ul>').format(Markup("").join(lines))


_CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: str) -> Markup:
    """Plain text with Markdown code spans (`like this`) as HTML: escaped first, then
    each backtick span becomes <code>. Nothing else in the text is interpreted."""
    escaped = str(Markup.escape(str(text)))
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", escaped))


_SAFE_TITLE = re.compile(r"[^A-Za-z0-9 ._:/+@-]")


def safe_title(text: str) -> str:
    """A page title for MkDocs navigation, which is rendered outside this module's templates."""
    return _SAFE_TITLE.sub("", text)[:80] or "page"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("matrix.site", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        verdict_css=verdict_css,
        cell_html=cell_html,
        verdict_html=verdict_html,
        tag_label=tag_label,
        when=when,
        day=day,
        short_digest=short_digest,
        percent=percent,
        human_size=human_size,
        display_value=display_value,
        predictions_html=predictions_html,
        mapping_html=mapping_html,
        code_spans=code_spans,
        plural=plural,
        slug=slug,
        class_title=class_title,
        registry_label=registry_label,
        role_note=role_note,
    )
    env.globals.update(
        GENERATED_BY=GENERATED_BY,
        NOT_PUBLISHED=NOT_PUBLISHED,
        CLASS_INFO={str(cls): info for cls, info in CLASS_INFO.items()},
        STATUS_COLOURS=_STATUS_COLOURS,
        NOT_PULLED=NOT_PULLED,
        NOT_PROBED=NOT_PROBED,
    )
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def chart_svg(points: list[tuple[str, float, float]], title: str) -> str:
    """A small line chart of daily pass rate (`rate`) and health per day, as inline SVG.

    `points` are (day, rate, health) with values from 0 to 1, oldest first. A single day has no
    line to draw: its values sit in the middle of the chart, labelled.
    """
    width, height, left, bottom, top = 640, 180, 36, 24, 10
    inner_w, inner_h = width - left - 8, height - bottom - top
    count = len(points) - 1

    def x_of(index: int) -> float:
        return left + (inner_w / 2 if count < 1 else inner_w * index / count)

    def xy(index: int, value: float) -> str:
        return f"{x_of(index):.1f},{top + inner_h * (1 - value):.1f}"

    if count < 1:
        ticks = [(x_of(0), points[0][0], "middle")] if points else []
    else:
        ticks = [(x_of(0), points[0][0], "start"), (x_of(count), points[-1][0], "end")]
    return render(
        "chart.svg",
        title=title,
        width=width,
        height=height,
        left=left,
        top=top,
        inner_w=inner_w,
        inner_h=inner_h,
        rate=" ".join(xy(i, p[1]) for i, p in enumerate(points)),
        healthy=" ".join(xy(i, p[2]) for i, p in enumerate(points)),
        points=[(xy(i, p[1]), xy(i, p[2]), p) for i, p in enumerate(points)],
        single=count == 0,
        ticks=ticks,
    )


_BADGE = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
    'aria-label="{label}: {message}">\n<title>{label}: {message}</title>\n'
    '<rect width="{label_w}" height="20" fill="#555"/>\n'
    '<rect x="{label_w}" width="{message_w}" height="20" fill="{colour}"/>\n'
    '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
    'font-size="11">\n<text x="{label_x}" y="14">{label}</text>\n'
    '<text x="{message_x}" y="14">{message}</text>\n</g>\n</svg>\n'
)


def badge_svg(label: str, message: str, colour: str) -> str:
    """A flat badge: `label` on grey, `message` on `colour`; widths estimated from text length.

    A format string rather than a template, since there is one badge per tag and registry.
    """
    label_w = 6 * len(label) + 12
    message_w = 6 * len(message) + 12
    return str(
        Markup(_BADGE).format(
            width=label_w + message_w,
            label=label,
            message=message,
            colour=colour,
            label_w=label_w,
            message_w=message_w,
            label_x=label_w / 2,
            message_x=label_w + message_w / 2,
        )
    )
