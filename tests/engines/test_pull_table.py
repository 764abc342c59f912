"""The summary table `pull` prints: one column per engine, whole lines when not on a terminal."""

from __future__ import annotations

import tempfile
from pathlib import Path

from click.testing import CliRunner

from matrix.cli import cli
from tests.engines.fake_engine import GARBLE, faulty_engine

REFERENCE = "127.0.0.1:1/demo/app:1.0"


def test_each_engine_gets_a_column_and_an_unreachable_one_is_named_by_its_endpoint(
    tmp_path: Path,
) -> None:
    # Short paths, so that a whole heading fits in a column of a 200-column table.
    nowhere = tempfile.mkdtemp(prefix="pm-", dir="/tmp")
    first_gone = f"unix://{nowhere}/first.sock"
    second_gone = f"unix://{nowhere}/second.sock"
    out = tmp_path / "pulls.csv"

    with faulty_engine(GARBLE) as answering:
        result = CliRunner().invoke(
            cli,
            [
                "pull",
                REFERENCE,
                "--engine",
                first_gone,
                "--engine",
                answering,
                "--engine",
                second_gone,
                "--platform",
                "linux/amd64",
                "--no-analysis",
                "--out",
                str(out),
            ],
            obj={},
        )

    Path(nowhere).rmdir()
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    [header] = [line for line in lines if "reference" in line and "platform" in line]
    # Written to a pipe, the table is not folded at 80 columns: every heading is whole.
    assert f"unreachable {first_gone}" in header
    assert f"unreachable {second_gone}" in header
    assert "99.0.0-fake" in header
    assert header.index(first_gone) < header.index("99.0.0-fake") < header.index(second_gone)
    [row] = [line for line in lines if REFERENCE in line]
    assert row.count("engine error") == 3
