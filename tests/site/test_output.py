"""Where the site may be written, and what a missing data directory does.

A build empties its output directory first, so `site --out` must refuse a directory that holds
anything but an earlier build, and a mistyped `--data` must not publish an empty matrix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from matrix.errors import ConfigError
from matrix.site.build import MARKER, build_site, check_output
from matrix.site.model import NOT_PUBLISHED

ROOT = Path(__file__).resolve().parents[2]


def _site(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matrix", "site", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _project(tmp_path: Path) -> Path:
    """A directory that looks like a checkout: source files next to each other."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "README.md").write_text("# mine\n")
    return project


def test_out_that_holds_other_files_is_refused_and_left_alone(
    sample_dir: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path)
    result = _site("--data", str(sample_dir), "--out", ".", cwd=project)
    assert result.returncode != 0
    assert "refusing to build the site into" in result.stderr and MARKER in result.stderr
    assert (project / "src" / "main.py").read_text() == "print('mine')\n"
    assert (project / "README.md").exists()


def test_out_that_holds_the_data_directory_is_refused(sample_dir: Path) -> None:
    shards = sorted(p.name for p in sample_dir.iterdir())
    result = _site("--data", str(sample_dir), "--out", str(sample_dir.parent))
    assert result.returncode != 0
    assert "which it reads" in result.stderr
    assert sorted(p.name for p in sample_dir.iterdir()) == shards


def test_out_equal_to_the_data_directory_is_refused_even_with_the_marker(
    sample_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "shard.csv").write_text("x\n")
    (data / MARKER).write_text("")
    with pytest.raises(ConfigError, match="which it reads"):
        check_output(data, (data,))
    assert (data / "shard.csv").exists()


def test_an_earlier_build_is_marked_and_replaced(sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(sample_dir, out)
    assert (out / MARKER).is_file()
    (out / "stale.html").write_text("old")
    build_site(sample_dir, out)
    assert not (out / "stale.html").exists()
    assert (out / "index.html").exists() and (out / MARKER).is_file()


def test_an_empty_out_directory_is_used(sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    build_site(sample_dir, out)
    assert (out / "index.html").exists()


def test_plain_mkdocs_build_refuses_a_foreign_site_dir(sample_dir: Path, tmp_path: Path) -> None:
    project = _project(tmp_path)
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(project)],
        cwd=ROOT,
        env=dict(os.environ, PULL_MATRIX_DATA=str(sample_dir)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "refusing to build the site into" in result.stderr
    assert (project / "src" / "main.py").exists() and (project / "README.md").exists()


def test_a_missing_data_directory_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = _site("--data", str(tmp_path / "typo"), "--out", str(out))
    assert result.returncode != 0
    assert "there is no data directory" in result.stderr and "--allow-empty" in result.stderr
    assert not out.exists()


def test_allow_empty_builds_the_not_published_site_from_a_missing_directory(
    tmp_path: Path,
) -> None:
    out = tmp_path / "site"
    result = _site("--data", str(tmp_path / "typo"), "--out", str(out), "--allow-empty")
    assert result.returncode == 0, result.stderr
    assert NOT_PUBLISHED in (out / "index.html").read_text(encoding="utf-8")


def test_mkdocs_build_with_a_missing_data_directory_in_the_environment_fails(
    tmp_path: Path,
) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = dict(os.environ, PULL_MATRIX_DATA=str(tmp_path / "typo"))
    env.pop("PULL_MATRIX_ALLOW_EMPTY", None)
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "there is no data directory" in result.stderr


def test_mkdocs_build_strict_takes_a_relative_data_dir_from_the_working_directory(
    lab_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(lab_dir, tmp_path / "lab-data")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    command = [
        str(mkdocs),
        "build",
        "--strict",
        "-f",
        str(ROOT / "mkdocs.yml"),
        "-d",
        str(tmp_path / "site"),
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=dict(os.environ, PULL_MATRIX_DATA="lab-data"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "127.0.0.1:5101" in index and NOT_PUBLISHED not in index
    assert (tmp_path / "site" / MARKER).is_file()


def test_check_output_accepts_new_empty_marked_and_older_builds_only(tmp_path: Path) -> None:
    check_output(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty")
    older = tmp_path / "older"
    (older / "assets").mkdir(parents=True)
    (older / "assets" / "pull-matrix.css").write_text("")
    (older / "index.html").write_text("")
    check_output(older)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        check_output(foreign)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        check_output(tmp_path / "file")


def test_a_build_that_fails_half_way_can_be_replaced_by_the_next(
    lab_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    config = project / "mkdocs.yml"
    hooks = ROOT / "matrix" / "site" / "hooks.py"
    config.write_text(
        f"site_name: t\ntheme:\n  name: material\n  font: false\nhooks:\n  - {hooks}\n"
    )
    (project / "docs" / "finder.md").write_text("# mine\n")
    with pytest.raises(Exception, match="Aborted"):
        build_site(lab_dir, out, config)
    (out / "partial.html").write_text("half-written")
    (project / "docs" / "finder.md").unlink()
    build_site(lab_dir, out, config)
    assert not (out / "partial.html").exists() and (out / "index.html").exists()
