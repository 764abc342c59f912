"""The built site in a real browser: Debian's chromium driven by Playwright, served on loopback."""

from __future__ import annotations

import csv
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matrix.classify import classify
from matrix.site.model import load_data
from matrix.site.versions import slug

from .conftest import XSS_ANNOTATION, XSS_MESSAGE, XSS_TAG

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CASES = Path(__file__).resolve().parents[1] / "cases" / "errors.tsv"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(directory: Path) -> Iterator[str]:
    """Serve a built site on a free loopback port for as long as the generator runs."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base_url(built_site: Path) -> Iterator[str]:
    yield from _serve(built_site)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


class Watched:
    """A page that records console errors, page errors, dialogs and off-site requests."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.base_url = base_url
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.offsite: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("dialog", self._dialog)
        self.page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        if not request.url.startswith((self.base_url, "data:", "blob:")):
            self.offsite.append(request.url)

    def open(self, path: str) -> Any:
        self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("load")
        return self.page

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []
        assert self.offsite == []


@pytest.fixture
def watched(browser: Any, base_url: str) -> Iterator[Watched]:
    page = Watched(browser, base_url)
    yield page
    page.page.close()


def _cell(page: Any, registry: str, platform: str, tag: str, engine: str) -> Any:
    table = page.locator(f'table.pm-matrix[data-registry="{registry}"][data-platform="{platform}"]')
    headers = table.locator("thead th").all_inner_texts()
    column = headers.index(engine)
    row = table.locator("tbody tr").filter(has=page.locator(f'th >> text="{tag}"'))
    return row.locator("th, td").nth(column)


def test_matrix_shows_the_observed_cells_and_the_message_on_focus(
    watched: Watched, sample_dir: Path
) -> None:
    page = watched.open("matrix/kivy-buildozer/")
    hub = _cell(page, "docker.io", "linux/amd64", "latest", "28.5.2+dfsg1")
    assert hub.inner_text() == "not-an-image"
    assert _cell(page, "ghcr.io", "linux/amd64", "latest", "28.5.2+dfsg1").inner_text() == "ok"

    data = load_data(sample_dir)
    pulls = data.pulls
    zstd = pulls[
        (pulls["client_version"] == "20.10.5+dfsg1")
        & (pulls["verdict"] == "layer-extract-failed")
        & (pulls["registry"] == "ghcr.io")
        & (pulls["platform"] == "linux/amd64")
    ]
    tag = zstd["tag"].iloc[0]
    cell = _cell(page, "ghcr.io", "linux/amd64", tag, "20.10.5+dfsg1")
    assert cell.inner_text() == "layer-extract-failed"
    cell.focus()
    tooltip = cell.evaluate("node => getComputedStyle(node, '::after').content")
    assert zstd["message"].iloc[0] in tooltip
    watched.assert_clean()


def test_matrix_filters_and_sorts_in_the_browser(watched: Watched) -> None:
    page = watched.open("matrix/kivy-buildozer/")
    table = page.locator('table.pm-matrix[data-registry="ghcr.io"][data-platform="linux/amd64"]')
    every = table.locator("tbody tr").count()
    page.fill('form[data-matrix-controls] input[name="filter"]', "latest")
    visible = table.locator("tbody tr:not([hidden])")
    assert visible.count() == 1 and visible.first.get_attribute("data-tag") == "latest"
    page.fill('form[data-matrix-controls] input[name="filter"]', "")
    page.check('form[data-matrix-controls] input[name="failing"]')
    failing = table.locator("tbody tr:not([hidden])")
    assert 0 < failing.count() < every
    assert all(row.get_attribute("data-failing") is not None for row in failing.all())
    page.uncheck('form[data-matrix-controls] input[name="failing"]')
    first_newest = table.locator("tbody tr").first.get_attribute("data-tag")
    page.select_option('form[data-matrix-controls] select[name="sort"]', "oldest")
    assert table.locator("tbody tr").last.get_attribute("data-tag") == first_newest
    watched.assert_clean()


def test_finder_answers_a_tested_version_with_the_tags_that_pull(
    watched: Watched, sample_dir: Path
) -> None:
    page = watched.open("finder/")
    page.fill("#pm-finder-version", "20.10.24+dfsg1")
    page.click("form[data-finder] button")
    head = page.locator("#pm-finder-result > p").first
    assert head.get_attribute("data-tested") == "yes"
    assert head.get_attribute("data-engine") == "20.10.24+dfsg1"

    pulls = load_data(sample_dir).pulls
    own = pulls[
        (pulls["client_version"] == "20.10.24+dfsg1")
        & (pulls["registry"] == "docker.io")
        & (pulls["platform"] == "linux/amd64")
    ]
    expected = set(own[own["verdict"] == "ok"]["tag"])
    block = page.locator(
        'section.pm-finder-block[data-registry="docker.io"][data-platform="linux/amd64"]'
    )
    summary = block.locator(".pm-finder-ok").inner_text()
    assert summary.startswith(f"{len(expected)} tags pull")
    shown = set(block.locator(".pm-taglist").first.locator("a").all_inner_texts())
    assert shown <= expected and "latest" not in shown
    assert block.locator('[data-verdict="layer-extract-failed"]').count() == 1
    assert block.locator('[data-verdict="not-an-image"]').count() == 1
    # Tag names are keys of the page's maps: `__proto__` among them must link like any tag.
    links = page.locator("#pm-finder-result a").evaluate_all("as => as.map(a => a.href)")
    assert links and not [href for href in links if "object" in href or "undefined" in href]
    watched.assert_clean()


def test_finder_marks_an_untested_version_as_inferred(watched: Watched) -> None:
    page = watched.open("finder/?version=24.0.7")
    head = page.locator("#pm-finder-result > p").first
    assert head.get_attribute("data-tested") == "no"
    assert "Inferred (not tested)" in head.inner_text()
    assert head.get_attribute("data-engine") == "24.0.9"
    page.fill("#pm-finder-version", "not a version")
    assert "does not look like a Docker version" in page.inner_text("#pm-finder-result")
    watched.assert_clean()


def test_runbook_classifier_agrees_with_python_on_every_shared_case(watched: Watched) -> None:
    if not CASES.exists():
        pytest.skip(f"{CASES} is not here")
    with CASES.open(encoding="utf-8") as stream:
        cases = [(row["message"], row["class"]) for row in csv.DictReader(stream, delimiter="\t")]
    assert cases
    page = watched.open("runbook/")
    messages = [message for message, _ in cases]
    in_browser = page.evaluate("list => list.map(m => window.pullMatrix.classify(m))", messages)
    python = [str(classify(message)) for message in messages]
    assert in_browser == python
    assert python == [expected for _, expected in cases]
    watched.assert_clean()


def test_runbook_classifies_a_pasted_message_and_points_at_a_good_digest(watched: Watched) -> None:
    page = watched.open("runbook/")
    page.fill(
        "#pm-runbook-message",
        "Error response from daemon: received unexpected HTTP status: 500 Internal Server Error",
    )
    page.click("form[data-runbook] button")
    answer = page.locator(".pm-answer")
    assert answer.get_attribute("data-class") == "registry-error"
    text = answer.inner_text()
    assert "Registry error" in text
    assert "docker.io/kivy/buildozer:latest" in text
    assert "docker pull ghcr.io/kivy/buildozer@sha256:" in text
    watched.assert_clean()


@pytest.mark.parametrize(
    "path",
    ["", "history/", "data/", "engines/", "about/", "tags/kivy-buildozer/latest.html"],
)
def test_pages_load_without_console_errors_or_requests_to_other_hosts(
    watched: Watched, path: str
) -> None:
    page = watched.open(path)
    assert page.locator("h1").count() >= 1
    watched.assert_clean()


def test_registry_supplied_html_is_shown_as_text_and_never_runs(watched: Watched) -> None:
    page = watched.open("matrix/kivy-buildozer/")
    assert page.locator("img[src=x]").count() == 0
    assert page.get_by_text(XSS_TAG, exact=True).count() >= 1

    page = watched.open(f"tags/kivy-buildozer/{slug(XSS_TAG)}.html")
    assert page.locator("img[src=x], script:not([src])").count() == 0
    body = page.inner_text("body")
    assert XSS_TAG in body and XSS_ANNOTATION in body and XSS_MESSAGE in body

    page = watched.open("finder/?version=28.5.2")
    assert page.get_by_text(XSS_TAG, exact=True).count() >= 1
    assert page.locator("#pm-finder-result img").count() == 0

    page = watched.open("runbook/")
    page.fill("#pm-runbook-message", XSS_MESSAGE)
    page.click("form[data-runbook] button")
    assert page.locator("#pm-runbook-result script, #pm-runbook-result img").count() == 0
    page.wait_for_timeout(200)
    watched.assert_clean()


def test_site_search_shows_registry_supplied_html_as_text(watched: Watched) -> None:
    page = watched.open("")
    page.click("input.md-search__input")
    page.keyboard.type("onerror", delay=20)  # Material searches on key events
    results = page.locator(".md-search-result__item")
    results.first.wait_for(timeout=15_000)
    assert "<img src=x onerror=alert(1)>" in page.inner_text(".md-search-result")
    assert page.locator(".md-search-result img").count() == 0
    page.wait_for_timeout(300)
    watched.assert_clean()


@pytest.fixture(scope="module")
def lab_url(lab_site: Path) -> Iterator[str]:
    yield from _serve(lab_site)


def test_finder_lists_tags_the_engine_has_not_pulled_so_the_counts_add_up(
    browser: Any, lab_url: str
) -> None:
    watched = Watched(browser, lab_url)
    try:
        page = watched.open("finder/?version=20.10.24%2Bdfsg1")
        block = page.locator(
            'section.pm-finder-block[data-registry="127.0.0.1:5101"][data-platform="linux/amd64"]'
        )
        assert block.locator(".pm-finder-ok").inner_text() == "0 tags pull."
        untested = block.locator(".pm-finder-untested")
        assert untested.inner_text().startswith("1 tag not tested yet")
        listed = block.locator(".pm-finder-untested + .pm-taglist a").all_inner_texts()
        assert listed == ["0.9"]
        predicted = block.locator('.pm-finder-predicted[data-predicted="ok"]')
        assert predicted.inner_text() == (
            "Predicted, not observed: the registry check expects ok for 0.9."
        )
        summary = page.locator(".pm-finder-summary li").all_inner_texts()
        hub = "127.0.0.1:5101/kivy/buildozer (docker.io role) · linux/amd64"
        assert f"{hub}: 0 tags pull, 1 fail, 1 not tested yet" in summary
        assert (
            "127.0.0.1:5102/kivy/buildozer (ghcr.io role) · linux/amd64: 2 tags pull, 0 fail"
            in summary
        )
        watched.assert_clean()
    finally:
        watched.page.close()
