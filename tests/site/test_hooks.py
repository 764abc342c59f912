"""The MkDocs hooks and the `site` command: where data comes from, links, clashes, serving."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mkdocs.config import load_config

from matrix.site import hooks
from matrix.site.build import build_site
from matrix.site.model import parse_details

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "matrix" / "site" / "hooks.py"


def _project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "docs").mkdir()
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"site_name: test\ntheme:\n  name: material\n  font: false\nhooks:\n  - {HOOKS}\n{extra}"
    )
    return config


def test_the_data_dir_comes_from_the_environment_then_mkdocs_yml_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hooks.DATA_ENV, raising=False)
    config = load_config(str(_project(tmp_path, "extra:\n  pull_matrix:\n    data: shards\n")))
    assert hooks.data_dir(config) == tmp_path / "shards"
    monkeypatch.setenv(hooks.DATA_ENV, str(tmp_path / "elsewhere"))
    assert hooks.data_dir(config) == tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path / "docs")
    monkeypatch.setenv(hooks.DATA_ENV, "relative")
    assert hooks.data_dir(config) == tmp_path / "docs" / "relative"


def test_default_data_dir_is_data_beside_mkdocs_yml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(hooks.DATA_ENV, raising=False)
    config = load_config(str(_project(tmp_path)))
    assert hooks.data_dir(config) == tmp_path / "data"


@pytest.mark.parametrize(
    ("url", "root"),
    [("", "./"), ("finder/", "../"), ("matrix/kivy-buildozer/", "../../"), ("a.html", "./")],
)
def test_links_from_a_page_reach_the_site_root(url: str, root: str) -> None:
    assert hooks.relative_root(url) == root


def test_a_hand_written_page_in_place_of_a_generated_one_fails_the_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _project(tmp_path)
    (tmp_path / "docs" / "finder.md").write_text("# mine\n")
    with pytest.raises(Exception, match="Aborted"):
        build_site(tmp_path / "no-data", tmp_path / "out", config, allow_empty=True)
    assert "docs/ has files the site generates; remove them: ['finder.md']" in caplog.text


def test_format_analysis_that_is_not_a_json_object_is_shown_not_fatal() -> None:
    assert parse_details("") == {}
    assert parse_details('{"kind": "index"}') == {"kind": "index"}
    assert parse_details("[1, 2]") == {"analysis": [1, 2]}
    assert "unreadable analysis" in parse_details("{not json")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_site_serve_builds_then_serves_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "matrix",
            "site",
            "--data",
            str(tmp_path / "none"),
            "--allow-empty",
            "--out",
            str(tmp_path / "site"),
            "--serve",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        deadline = time.monotonic() + 120
        body = ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    body = answer.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "not published (yet?)" in body
    finally:
        process.terminate()
        process.wait(timeout=30)
