"""The command line as a user meets it: exit codes, help, errors."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = _run("--help")

    assert result.returncode == 0
    for name in ("probe", "classify", "show", "pull", "collect", "lab", "site"):
        assert f"  {name}" in result.stdout


def test_classify_puts_the_class_first_and_reads_stdin() -> None:
    message = "failed to register layer: ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"

    result = _run("classify", "-", stdin=message)

    assert result.returncode == 0
    assert result.stdout.split()[0] == "layer-extract-failed"
    assert len(result.stdout.strip().splitlines()) == 3


def test_a_usage_error_exits_non_zero_with_a_message() -> None:
    result = _run("probe")

    assert result.returncode == 2
    assert "REF" in result.stderr


def test_a_project_error_is_one_line_not_a_traceback(tmp_path: object) -> None:
    result = _run("collect", "--config", "/nonexistent/pull-matrix.toml", "--probe-only")

    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
