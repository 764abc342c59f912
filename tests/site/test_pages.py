"""What a reader sees on the pages, built from one day of lab-like observations (labdata)."""

from __future__ import annotations

import re
from pathlib import Path

from matrix.site import render
from matrix.site.generator import NOT_PULLED_YET, finder_data
from matrix.site.model import Cell, load_data
from matrix.site.versions import slug

from .labdata import ENGINES, GHCR, GOOD, HUB, REPOSITORY


def _read(site: Path, path: str) -> str:
    return (site / path).read_text(encoding="utf-8")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_tag_page_shows_predictions_as_runs_of_equal_verdicts(lab_site: Path) -> None:
    page = _read(lab_site, "tags/kivy-buildozer/latest.html")
    text = _text(page)
    assert "20.10–25.0 no-platform-match; 26.1–29.0 registry-error" in text
    assert "20.10–29.0 ok" in text
    assert "&#34;20.10&#34;" not in page and '{"20.10"' not in page


def test_tag_page_shows_a_nested_analysis_value_as_keys_not_json(lab_site: Path) -> None:
    text = _text(_read(lab_site, "tags/kivy-buildozer/latest.html"))
    assert "compressions: gzip" in text and "layers: 1" in text


def test_tag_page_gives_each_pull_command_once(lab_site: Path) -> None:
    page = _read(lab_site, "tags/kivy-buildozer/latest.html")
    command = f"docker pull {GHCR}/{REPOSITORY}@{GOOD}"
    assert page.count(command) == 1
    text = _text(page)
    assert f"{HUB} (docker.io role): the tag is failing" in text
    assert f"The same tag pulls from {GHCR} (ghcr.io role): use that command above." in text


def test_tag_page_links_back_and_uses_the_site_stylesheet(lab_site: Path) -> None:
    page = _read(lab_site, "tags/kivy-buildozer/latest.html")
    sheets = re.findall(r'<link rel="stylesheet" href="\.\./\.\./([^"]+)">', page)
    assert sheets[-1] == "assets/pull-matrix.css"
    assert any(re.fullmatch(r"assets/stylesheets/main\.[0-9a-f]+\.min\.css", s) for s in sheets)
    for sheet in sheets:
        assert (lab_site / sheet).is_file(), sheet
    assert '<main class="md-typeset">' in page
    for target in ("../../", "../../matrix/", "../../matrix/kivy-buildozer/", "../../finder/"):
        assert f'href="{target}"' in page, target


def test_matrix_explains_the_empty_cell_and_gives_it_a_title(lab_site: Path) -> None:
    page = _read(lab_site, "matrix/kivy-buildozer/index.html")
    legend = page[page.index('<dl class="pm-legend"') : page.index("</dl>")]
    assert render.NOT_PULLED in legend
    row = page[page.index('<tr data-tag="0.9"') :].split("</tr>")[0]
    empty = re.findall(r'<td class="c none" title="([^"]*)">–</td>', row)
    assert empty == [render.NOT_PULLED] * len(ENGINES)


def test_the_probe_cell_tooltip_names_the_registry_check_not_an_engine(lab_site: Path) -> None:
    page = _read(lab_site, "matrix/kivy-buildozer/index.html")
    row = page[page.index('<tr data-tag="latest"') :].split("</tr>")[0]
    titles = re.findall(r'title="([^"]*)"', row)
    probe, *engines = [t for t in titles if t.startswith("not-an-image")]
    assert "registry check: this tag does not point at an image" in probe
    assert "engine said" not in probe
    assert all("engine said: received unexpected HTTP status: 500" in t for t in engines)


def test_one_day_of_history_is_drawn_in_the_middle_with_one_label(lab_site: Path) -> None:
    page = _read(lab_site, "history/index.html")
    start = page.index('class="pm-chart"')
    chart = page[start : page.index("</svg>", start)]
    frame = re.search(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)
    assert frame is not None
    middle = float(frame.group(1)) + float(frame.group(2)) / 2
    labels = re.findall(
        r'<text x="([\d.]+)" y="\d+" text-anchor="(\w+)"[^>]*>([\d-]+)</text>', chart
    )
    assert [(float(x), anchor, day) for x, anchor, day in labels] == [
        (middle, "middle", "2026-12-03")
    ]
    dots = re.findall(r'<circle cx="([\d.]+)"', chart)
    assert dots and {float(x) for x in dots} == {middle}
    text = _text(page)
    assert "1 day," in text and "1 days" not in text
    assert '<code class="pm-tag-name">latest</code>' in page


def test_chart_of_several_days_labels_both_ends() -> None:
    svg = render.chart_svg([("2026-12-01", 1.0, 1.0), ("2026-12-02", 0.5, 1.0)], "t")
    anchors = re.findall(r'text-anchor="(start|end)" font-size="10">(\d{4}-\d\d-\d\d)<', svg)
    assert anchors == [("start", "2026-12-01"), ("end", "2026-12-02")]


def test_finder_data_keeps_tags_an_engine_has_not_pulled(lab_dir: Path) -> None:
    data = load_data(lab_dir)
    image = finder_data(data)["images"][0]
    hub = next(b for b in image["blocks"] if b["registry"] == HUB)
    position = image["tags"].index("0.9")
    assert [verdicts[position] for verdicts in hub["verdicts"]] == [NOT_PULLED_YET] * len(ENGINES)
    assert [guess[str(position)] for guess in hub["predicted"]] == ["ok"] * len(ENGINES)
    latest = image["tags"].index("latest")
    assert all(str(latest) not in guess for guess in hub["predicted"])


def test_engine_page_counts_untested_tags_and_pluralises(lab_site: Path) -> None:
    text = _text(_read(lab_site, f"engines/{slug(ENGINES[0])}/index.html"))
    assert "Pulled 0 of the 1 tag it tried. 1 tag of this registry and platform is not" in text
    assert "1 tags" not in text


def test_capability_notes_show_code_spans_as_code_and_escape_the_rest(lab_site: Path) -> None:
    page = _read(lab_site, f"engines/{slug(ENGINES[0])}/index.html")
    assert "<code>unexpected EOF</code>" in page
    assert "`" not in _text(page[page.index("<table") : page.index("</table>")])
    assert render.code_spans("<b>`<i>`</b>") == "&lt;b&gt;<code>&lt;i&gt;</code>&lt;/b&gt;"


def test_plural() -> None:
    assert render.plural(1, "tag") == "1 tag"
    assert render.plural(0, "tag") == "0 tags"
    assert render.plural(2, "day") == "2 days"


def test_the_probe_flag_changes_only_the_message_prefix() -> None:
    values = dict(verdict="x", error_class="x", message="m", cause="", predicted="", finding="")
    values |= dict(digest="", observed_at="")
    assert Cell(**values).title == "x — engine said: m"
    assert Cell(**values, probe=True).title == "x — registry check: m"


def test_counts_on_the_pages_agree_in_number(lab_site: Path) -> None:
    index = _text(_read(lab_site, "index.html"))
    assert "of 1 run," in index and "1 runs" not in index
    assert "2 tags on 2 registries, 2 engine versions" in index
